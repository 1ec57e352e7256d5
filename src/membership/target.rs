//! Discovery targets: addresses to probe where no member may be known yet.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::{split_addr, Member, Membership};

#[derive(Debug)]
pub(super) struct Target {
    pub(super) next_probe: Instant,
    pub(super) backoff: Duration,
    /// Node id last seen answering at this address.
    pub(super) peer: Option<String>,
    /// The address answered with our own id: never probe it again.
    pub(super) is_self: bool,
    pub(super) in_flight: bool,
    /// Probed at least once.
    pub(super) probed: bool,
    /// Learned from a message (a candidate), not from configuration: bounded, evictable.
    pub(super) learned: bool,
    /// A node answered here at least once.
    pub(super) answered: bool,
    /// When it was added (eviction order of candidates).
    pub(super) added: Instant,
    /// The node there contacted us first: it exchanges full lists with us itself, so its
    /// answer to our probe needs no full exchange of ours.
    pub(super) contacted: bool,
}

impl Target {
    pub(super) fn new(now: Instant, learned: bool) -> Self {
        Target {
            next_probe: now,
            backoff: Duration::ZERO,
            peer: None,
            is_self: false,
            in_flight: false,
            probed: false,
            learned,
            answered: false,
            added: now,
            contacted: false,
        }
    }
}

/// True when `addr` is a discovery address still to be probed: not ourselves, no probe
/// in flight, and no live member reached at exactly this address (members are probed by
/// the member schedule instead).
pub(super) fn discovery_pending(members: &HashMap<String, Member>, addr: &str, t: &Target) -> bool {
    let owned = || {
        t.peer.as_ref().is_some_and(|id| {
            members.get(id).is_some_and(|m| {
                m.is_live() && split_addr(addr) == Some((m.peer.host(), m.peer.info.port))
            })
        })
    };
    !t.is_self && !t.in_flight && !owned()
}

impl Membership {
    /// Add an address to probe. New addresses are due at once; known ones are untouched.
    pub fn add_target(&mut self, addr: String, now: Instant) {
        match self.targets.get_mut(&addr) {
            // Configured now: no longer an evictable candidate.
            Some(t) => t.learned = false,
            None => {
                self.targets.insert(addr, Target::new(now, false));
            }
        }
    }
}
