//! Bounds on what messages can make this node remember: candidates and members.

use std::time::Duration;

use tokio::time::Instant;

use super::{Membership, Status, Target};

/// Most unknown addresses one message can make candidates (a sender's own address
/// included). Big enough that full exchanges still spread a large mesh quickly (every new
/// member gets a full exchange of its own), small enough that one forged message with
/// thousands of fake members costs a handful of probes.
pub const MAX_NEW_PER_MESSAGE: usize = 8;
/// Most candidate addresses learned from messages (not configured) waiting to be probed.
/// When full, the oldest candidate that never answered is evicted.
pub const MAX_CANDIDATES: usize = 256;
/// Most members (live and tombstones) remembered. When full, the oldest tombstone goes;
/// with none, a new member is not admitted until one does. Flux runs at most 100
/// instances of at most 5 nodes each.
pub const MAX_MEMBERS: usize = 1024;

impl Membership {
    /// Add an address learned from a message (a candidate to probe), if the message still
    /// has `budget` left and there is room; true when it is known now. A known address
    /// backing off is probed at once when `hurry` (a node there just sent us a message:
    /// one probe per message received, never more), else left to its schedule.
    pub(super) fn add_candidate(
        &mut self,
        addr: String,
        hurry: bool,
        budget: &mut usize,
        now: Instant,
    ) -> bool {
        if let Some(t) = self.targets.get_mut(&addr) {
            if hurry && !t.in_flight && !t.is_self {
                t.next_probe = t.next_probe.min(now);
                t.backoff = Duration::ZERO;
                t.contacted = true;
            }
            return true;
        }
        if *budget == 0 {
            return false;
        }
        let learned = self.targets.values().filter(|t| t.learned).count();
        if learned >= MAX_CANDIDATES {
            let oldest = self
                .targets
                .iter()
                .filter(|(_, t)| t.learned && !t.answered && !t.in_flight)
                .min_by_key(|(a, t)| (t.added, (*a).clone()))
                .map(|(a, _)| a.clone());
            match oldest {
                Some(a) => {
                    self.targets.remove(&a);
                }
                None => return false,
            }
        }
        *budget -= 1;
        let mut t = Target::new(now, true);
        t.contacted = hurry;
        self.targets.insert(addr, t);
        true
    }

    /// Room for one more member: true unless the table is full of live members (then the
    /// oldest tombstone goes first).
    pub(super) fn make_room(&mut self) -> bool {
        if self.members.len() < MAX_MEMBERS {
            return true;
        }
        let oldest = self
            .members
            .iter()
            .filter_map(|(id, m)| match m.status {
                Status::Down { since, .. } => Some((since, id.clone())),
                _ => None,
            })
            .min();
        match oldest {
            Some((_, id)) => {
                self.members.remove(&id);
                true
            }
            None => false,
        }
    }
}
