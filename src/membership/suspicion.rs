//! Suspicion, refutation by incarnation, and declaring members dead.

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::Instant;

use super::{Event, Membership, Status};
use crate::wire::{MemberState, Update};

/// True when `a` and `b` are nodes of one process (see [`crate::ids::failure_domain`]).
pub(super) fn shares_fate(a: &str, b: &str) -> bool {
    crate::ids::failure_domain(a) == crate::ids::failure_domain(b)
}

impl Membership {
    pub(super) fn suspicion_timeout(&self, confirmations: usize) -> Duration {
        // Lifeguard: each independent confirmation shortens the wait, down to the minimum.
        let (min, max) = (
            self.scaled(self.cfg.suspicion_min),
            self.scaled(self.cfg.suspicion_max),
        );
        let expected = self.cfg.indirect_probes.max(1) as f64;
        let c = confirmations.saturating_sub(1) as f64;
        let frac = ((c + 1.0).ln() / (expected + 1.0).ln()).min(1.0);
        max.saturating_sub((max.saturating_sub(min)).mul_f64(frac))
            .max(min)
    }

    pub(super) fn suspect(&mut self, id: &str, by: Option<&str>, now: Instant) -> Vec<Event> {
        if self.shares_fate(id) {
            return Vec::new();
        }
        let me = self.me.id.clone();
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        if !matches!(m.status, Status::Alive) {
            return Vec::new();
        }
        let mut confirmations = HashSet::new();
        confirmations.insert(by.unwrap_or(&me).to_string());
        m.status = Status::Suspect {
            since: now,
            confirmations,
        };
        m.peer.suspect = true;
        let (u, info) = (m.update(), m.peer.info.clone());
        self.broadcast(u);
        vec![Event::Suspected(info)]
    }

    /// News about ourselves: refute suspicion or death by raising our incarnation.
    pub(super) fn refute(&mut self, u: &Update) {
        let accused = matches!(
            u.state,
            MemberState::Suspect | MemberState::Dead | MemberState::Left
        );
        if accused && u.incarnation >= self.incarnation {
            // Our own number plus one, not the accuser's: a forged accusation at a huge
            // incarnation must not push ours to the end of the range. Saturating: at
            // u64::MAX we still answer probes, which is what refutes (see `on_direct`).
            self.incarnation = self.incarnation.saturating_add(1);
            self.health = (self.health + 1).min(self.cfg.max_health);
            self.broadcast(Update {
                node: self.me.clone(),
                incarnation: self.incarnation,
                state: MemberState::Alive,
            });
        }
    }

    pub(super) fn mark_down(&mut self, id: &str, state: MemberState, now: Instant) -> Vec<Event> {
        let Some(m) = self.members.get_mut(id) else {
            return Vec::new();
        };
        if !m.is_live() {
            return Vec::new();
        }
        m.status = Status::Down { state, since: now };
        m.peer.suspect = false;
        let (u, info, addr) = (m.update(), m.peer.info.clone(), m.peer.addr());
        self.broadcast(u);
        self.probing.remove(id);
        let min = self.cfg.min_backoff;
        if let Some(t) = self.targets.get_mut(&addr) {
            t.backoff = min;
            t.next_probe = t.next_probe.max(now + min);
        }
        vec![match state {
            MemberState::Left => Event::Left(info),
            _ => Event::Dead(info),
        }]
    }

    /// True for members of this node's own process: they are never suspected or
    /// declared dead for slowness (see [`crate::ids`]).
    pub(super) fn shares_fate(&self, id: &str) -> bool {
        shares_fate(&self.me.id, id)
    }
}
