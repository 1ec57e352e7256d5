//! Probes the driver sends, and what their outcomes do to the membership.

use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use super::{Event, Member, Membership, Status};
use crate::wire::{Gossip, MemberState, NodeInfo};

/// What a probe achieved, as the driver saw it.
#[derive(Clone, Debug)]
pub enum ProbeOutcome {
    /// The node answered.
    Reply(Gossip),
    /// The connection was refused: nothing listens at that address.
    Refused,
    /// Timeout, reset, or an invalid answer.
    Failed,
}

/// A probe the driver must send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Where to.
    pub addr: String,
    /// The member expected there; `None` for a discovery probe.
    pub member: Option<String>,
    /// Send the whole member list (and ask for theirs).
    pub full: bool,
    /// Deadline for the answer.
    pub timeout: Duration,
}

/// Ask these members (addresses) to probe `target_addr` for us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectProbe {
    /// The member that missed its probe.
    pub member: String,
    /// Its address.
    pub target_addr: String,
    /// Addresses of the members asked to help.
    pub helpers: Vec<String>,
    /// Deadline for each helper's answer.
    pub timeout: Duration,
}

/// Events for a member `old` removed because `direct` contact found another node at its
/// address: a `Joined` of the newcomer becomes one `Replaced`.
pub(super) fn merge_replacement(old: Option<NodeInfo>, mut direct: Vec<Event>) -> Vec<Event> {
    let Some(old) = old else {
        return direct;
    };
    match direct.first() {
        Some(Event::Joined(new)) => {
            let new = new.clone();
            direct[0] = Event::Replaced { old, new };
            direct
        }
        _ => {
            direct.insert(0, Event::Dead(old));
            direct
        }
    }
}

impl Membership {
    /// Report the outcome of a probe from [`Membership::tick`]. May ask for indirect probes.
    pub fn probe_result(
        &mut self,
        probe: &Probe,
        outcome: ProbeOutcome,
        now: Instant,
    ) -> (Vec<Event>, Option<IndirectProbe>) {
        if let Some(id) = &probe.member {
            self.probing.remove(id);
        }
        let (min, max) = (self.cfg.min_backoff, self.cfg.max_backoff);
        if let Some(t) = self.targets.get_mut(&probe.addr) {
            t.in_flight = false;
            t.probed = true;
        }
        match outcome {
            ProbeOutcome::Reply(reply) => {
                if reply.from.id == self.me.id {
                    if let Some(t) = self.targets.get_mut(&probe.addr) {
                        t.is_self = true;
                    }
                    return (Vec::new(), None);
                }
                self.health = self.health.saturating_sub(1);
                if self.me.host.is_empty() && !reply.observed.is_empty() {
                    self.me.host = reply.observed.clone();
                }
                if let Some(t) = self.targets.get_mut(&probe.addr) {
                    t.answered = true;
                }
                // The member itself says, at its own address, that it leaves: proof.
                if reply.leaving {
                    self.leave_claims.remove(&reply.from.id);
                    let here = self
                        .members
                        .get(&reply.from.id)
                        .is_some_and(|m| m.is_live() && m.peer.addr() == probe.addr);
                    if here {
                        return (self.mark_down(&reply.from.id, MemberState::Left, now), None);
                    }
                    return (Vec::new(), None);
                }
                self.leave_claims.remove(&reply.from.id);
                // Somebody else answers at a live member's address: the member is gone.
                let replaced = self
                    .members
                    .iter()
                    .find(|(id, m)| {
                        **id != reply.from.id && m.is_live() && m.peer.addr() == probe.addr
                    })
                    .map(|(id, _)| id.clone());
                let old = replaced.and_then(|id| {
                    let info = self.members.get(&id).map(|m| m.peer.info.clone());
                    self.mark_down(&id, MemberState::Dead, now);
                    info
                });
                let direct = self.on_direct(&probe.addr, &reply, now);
                let contacted = self
                    .targets
                    .get_mut(&probe.addr)
                    .is_some_and(|t| std::mem::take(&mut t.contacted));
                // Full lists at once only with a node found at a configured address: one
                // that contacted us sends its own, and one learned from a list came with
                // the rest of that list.
                let learned = self.targets.get(&probe.addr).is_some_and(|t| t.learned);
                let exchanged = self.sent_full.contains(&reply.from.id);
                if !probe.full
                    && !contacted
                    && !learned
                    && !exchanged
                    && direct
                        .iter()
                        .any(|e| matches!(e, Event::Joined(n) if n.id == reply.from.id))
                {
                    self.full_soon.push((reply.from.id.clone(), now));
                }
                let events = merge_replacement(old, direct);
                if let Some(t) = self.targets.get_mut(&probe.addr) {
                    t.backoff = Duration::ZERO;
                    t.peer = Some(reply.from.id.clone());
                    // An alias of a member reached elsewhere: check it only now and then.
                    t.next_probe = now + max;
                }
                (events, None)
            }
            ProbeOutcome::Refused | ProbeOutcome::Failed if probe.member.is_none() => {
                if let Some(t) = self.targets.get_mut(&probe.addr) {
                    let max = if t.peer.is_some() {
                        max
                    } else {
                        self.cfg.max_scan_backoff.max(max)
                    };
                    t.backoff = (t.backoff * 2).clamp(min, max);
                    t.next_probe = now + t.backoff;
                }
                (Vec::new(), None)
            }
            ProbeOutcome::Refused => {
                let id = probe.member.clone().unwrap_or_default();
                let here = self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.is_live() && m.peer.addr() == probe.addr);
                if !here {
                    return (Vec::new(), None);
                }
                // Nothing listens at its address: after its own claim of leaving, it left.
                let state = if self.leave_claims.remove(&id) {
                    MemberState::Left
                } else {
                    MemberState::Dead
                };
                (self.mark_down(&id, state, now), None)
            }
            ProbeOutcome::Failed => {
                let id = probe.member.clone().unwrap_or_default();
                if !self.members.get(&id).is_some_and(Member::is_live) || self.shares_fate(&id) {
                    // A member of our own process is slow, not dead: it lives as long as
                    // we do, and a closed port (refused) or a restart (new id at its
                    // address) is what shows it gone.
                    return (Vec::new(), None);
                }
                if self.members.get(&id).is_some_and(|m| m.peer.suspect) {
                    // Already suspect: it is probed again soon (see `tick`) and its
                    // suspicion runs; more failures say nothing about our own health.
                    return (Vec::new(), None);
                }
                self.health = (self.health + 1).min(self.cfg.max_health);
                let mut helpers: Vec<String> = self
                    .members
                    .iter()
                    .filter(|(mid, m)| **mid != id && matches!(m.status, Status::Alive))
                    .map(|(_, m)| m.peer.addr())
                    .collect();
                helpers.sort();
                helpers.shuffle(&mut self.rng);
                helpers.truncate(self.cfg.indirect_probes);
                if helpers.is_empty() {
                    return (self.suspect(&id, None, now), None);
                }
                let plan = IndirectProbe {
                    member: id,
                    target_addr: probe.addr.clone(),
                    helpers,
                    timeout: self.scaled(self.cfg.probe_timeout) * 2,
                };
                (Vec::new(), Some(plan))
            }
        }
    }

    /// Report whether any helper of an [`IndirectProbe`] reached the member.
    /// A helper's "reached" is not direct contact: it spares the member suspicion for now
    /// but does not refresh when it was last heard from (see [`Membership::stale_after`]).
    pub fn indirect_result(&mut self, member: &str, reached: bool, now: Instant) -> Vec<Event> {
        if reached {
            return Vec::new();
        }
        self.suspect(member, None, now)
    }
}
