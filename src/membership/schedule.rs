//! The probe schedule: what to probe at each tick, and when the next tick is due.

use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{discovery_pending, Event, Member, Membership, Probe, Status};
use crate::wire::MemberState;

impl Membership {
    /// Probes due now, and members declared dead because their suspicion ran out.
    pub fn tick(&mut self, now: Instant) -> (Vec<Probe>, Vec<Event>) {
        let mut events = Vec::new();
        // Suspicions that ran out.
        let expired: Vec<String> = self
            .members
            .iter()
            .filter_map(|(id, m)| match &m.status {
                Status::Suspect {
                    since,
                    confirmations,
                } if now >= *since + self.suspicion_timeout(confirmations.len()) => {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect();
        for id in expired {
            events.extend(self.mark_down(&id, MemberState::Dead, now));
        }
        // Members not heard from directly for too long (helpers may claim to reach them,
        // but nothing proves it): suspect, so they stop counting for quorum.
        let stale_after = self.stale_after();
        let stale: Vec<String> = self
            .members
            .iter()
            .filter(|(id, m)| {
                matches!(m.status, Status::Alive)
                    && now.saturating_duration_since(m.peer.last_seen) > stale_after
                    && !self.shares_fate(id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            events.extend(self.suspect(&id, None, now));
        }
        // Forget old tombstones.
        let ttl = self.cfg.tombstone_ttl;
        self.members.retain(|_, m| match m.status {
            Status::Down { since, .. } => now.saturating_duration_since(since) < ttl,
            _ => true,
        });

        let mut probes = Vec::new();
        let timeout = self.scaled(self.cfg.probe_timeout);
        // Discovery: addresses without a live member behind them, a bounded number at a
        // time, in random order.
        let in_flight = self.targets.values().filter(|t| t.in_flight).count();
        let room = self.cfg.max_discovery_in_flight.saturating_sub(in_flight);
        if room > 0 {
            // An address where a live member is reached is probed by the member schedule,
            // not here. It is looked at again after a short while rather than at every tick
            // (the lookups cost a 100-node start a sixth of its CPU), and never later than
            // a lost member's address is retried anyway (see `mark_down`).
            let recheck = now + self.cfg.probe_interval.min(self.cfg.min_backoff);
            let members = &self.members;
            let mut due: Vec<&String> = Vec::new();
            for (addr, t) in self.targets.iter_mut() {
                if t.next_probe > now || t.is_self || t.in_flight {
                    continue;
                }
                if discovery_pending(members, addr, t) {
                    due.push(addr);
                } else {
                    t.next_probe = recheck;
                }
            }
            due.sort();
            due.shuffle(&mut self.rng);
            due.truncate(room);
            let chosen: Vec<String> = due.into_iter().cloned().collect();
            for addr in chosen {
                let Some(t) = self.targets.get_mut(&addr) else {
                    continue;
                };
                t.in_flight = true;
                // Where a peer we lost answered before (it may be back), full both ways
                // at once. Other addresses are mostly unused ports or another address of
                // a live member: a small message, and a full exchange follows if a new
                // node answers (see `full_soon`).
                let members = &self.members;
                let full = t
                    .peer
                    .as_ref()
                    .is_some_and(|id| !members.get(id).is_some_and(Member::is_live));
                probes.push(Probe {
                    addr,
                    member: None,
                    full,
                    timeout,
                });
            }
        }
        // Full exchanges with members just found by a small discovery probe. They also
        // count as this interval's member probe.
        for (id, _) in std::mem::take(&mut self.full_soon) {
            let Some(m) = self.members.get(&id).filter(|m| m.is_live()) else {
                continue;
            };
            if self.probing.insert(id.clone()) {
                probes.push(Probe {
                    addr: m.peer.addr(),
                    member: Some(id),
                    full: true,
                    timeout,
                });
                if now >= self.next_member_probe {
                    self.next_member_probe = now + self.cfg.probe_interval;
                }
            }
        }
        // Members whose claims only their own answer can prove, and suspects (whose
        // own answer is the only way back).
        let mut verify: Vec<String> = self.verify_soon.drain().map(|(id, _)| id).collect();
        let interval = self.cfg.probe_interval;
        for (id, m) in self.members.iter_mut() {
            if matches!(m.status, Status::Suspect { .. }) && now >= m.next_check {
                m.next_check = now + interval;
                verify.push(id.clone());
            }
        }
        verify.dedup();
        verify.sort();
        for id in verify {
            let Some(m) = self.members.get(&id).filter(|m| m.is_live()) else {
                continue;
            };
            if self.probing.insert(id.clone()) {
                probes.push(Probe {
                    addr: m.peer.addr(),
                    member: Some(id),
                    full: false,
                    timeout,
                });
            }
        }
        // One member per probe interval, in shuffled round-robin order.
        if now >= self.next_member_probe {
            let full = now >= self.next_full_sync;
            if let Some(id) = self.next_probe_target() {
                self.next_member_probe = now + self.cfg.probe_interval;
                if full {
                    self.next_full_sync = now + self.cfg.full_sync_interval;
                }
                self.probing.insert(id.clone());
                probes.push(Probe {
                    addr: self.members[&id].peer.addr(),
                    member: Some(id),
                    full,
                    timeout,
                });
            }
        }
        (probes, events)
    }

    pub(super) fn next_probe_target(&mut self) -> Option<String> {
        for _ in 0..2 {
            while let Some(id) = self.probe_order.pop() {
                let live = self.members.get(&id).is_some_and(Member::is_live);
                if live && !self.probing.contains(&id) {
                    return Some(id);
                }
            }
            // Start a new round over the current live members.
            self.probe_order = self
                .members
                .iter()
                .filter(|(_, m)| m.is_live())
                .map(|(id, _)| id.clone())
                .collect();
            self.probe_order.sort();
            self.probe_order.shuffle(&mut self.rng);
        }
        None
    }

    /// Earliest instant at which [`Membership::tick`] may have work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let member_probe = (!self.is_empty())
            .then_some(self.next_member_probe)
            .into_iter()
            .chain(self.full_soon.iter().map(|(_, at)| *at))
            .chain(self.verify_soon.values().copied());
        let suspicions = self.members.values().filter_map(|m| match &m.status {
            Status::Suspect {
                since,
                confirmations,
            } => Some((*since + self.suspicion_timeout(confirmations.len())).min(m.next_check)),
            _ => None,
        });
        let mut next = member_probe.chain(suspicions).min();
        // While the discovery window is full, the next completion (not a timer) is due.
        let in_flight = self.targets.values().filter(|t| t.in_flight).count();
        if in_flight < self.cfg.max_discovery_in_flight {
            for (addr, t) in &self.targets {
                // The time test first: it rules out most addresses without the lookup.
                if next.map_or(true, |n| t.next_probe < n)
                    && discovery_pending(&self.members, addr, t)
                {
                    next = Some(t.next_probe);
                }
            }
        }
        next
    }
}
