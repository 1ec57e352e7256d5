//! The membership events a node remembers for `/cluster` and the dashboard.

use crate::clock::now_ms;
use crate::membership::{fmt_addr, Event};

use super::Node;

/// Most recent membership events kept per node (for `/cluster` and the dashboard).
pub const EVENT_HISTORY: usize = 100;

/// A membership change as remembered for display.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MembershipEvent {
    /// Wall-clock ms when this node saw it.
    pub at_ms: u64,
    /// `joined`, `left`, `dead`, `replaced`, `suspected` or `recovered`.
    pub kind: &'static str,
    /// The peer concerned (the new id for `replaced`).
    pub peer: String,
    /// Its address.
    pub address: String,
    /// For `replaced`: the id it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

impl Node {
    /// The latest membership events, oldest first.
    pub fn recent_events(&self) -> Vec<MembershipEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    pub(super) fn remember(&self, event: &Event) {
        let (kind, p, replaced) = match event {
            Event::Joined(p) => ("joined", p, None),
            Event::Left(p) => ("left", p, None),
            Event::Dead(p) => ("dead", p, None),
            Event::Replaced { old, new } => ("replaced", new, Some(old.id.clone())),
            Event::Suspected(p) => ("suspected", p, None),
            Event::Recovered(p) => ("recovered", p, None),
        };
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == EVENT_HISTORY {
            events.pop_front();
        }
        events.push_back(MembershipEvent {
            at_ms: now_ms(),
            kind,
            peer: p.id.clone(),
            address: fmt_addr(&p.host, p.port),
            replaced,
        });
    }
}
