//! News: membership updates piggybacked on every message, and full exchanges.

use super::{Member, Membership};
use crate::wire::{Gossip, MemberState, Update};

#[derive(Debug)]
pub(super) struct Broadcast {
    pub(super) update: Update,
    pub(super) sent: u32,
}

impl Membership {
    /// The message to send to `to` (a member id, if known): our news, or the whole list
    /// when `full`.
    pub fn message(&mut self, full: bool, to: Option<&str>) -> Gossip {
        let mut updates = if full {
            self.members.values().map(Member::update).collect()
        } else {
            self.piggyback()
        };
        // A member we suspect or declared dead must hear it, so it can refute.
        if let Some(m) = to.and_then(|id| self.members.get(id)) {
            if m.state() != MemberState::Alive
                && !updates.iter().any(|u| u.node.id == m.peer.info.id)
            {
                updates.push(m.update());
            }
        }
        Gossip {
            from: self.me.clone(),
            incarnation: self.incarnation,
            leaving: false,
            full,
            observed: String::new(),
            relay: String::new(),
            relay_ok: false,
            updates,
        }
    }

    /// The message announcing that this node leaves.
    pub fn leave_message(&self) -> Gossip {
        Gossip {
            from: self.me.clone(),
            incarnation: self.incarnation,
            leaving: true,
            ..Gossip::default()
        }
    }

    pub(super) fn piggyback(&mut self) -> Vec<Update> {
        if self.broadcasts.is_empty() {
            return Vec::new();
        }
        let n = self.len() as f64 + 2.0;
        let limit = self.cfg.retransmit_mult * n.log2().ceil() as u32;
        // The least sent items, ties by id (every node then favours the same ones): a
        // partial selection, not a sort of every item, which a 100-node start paid for
        // on every message.
        let mut items: Vec<(u32, &String)> =
            self.broadcasts.iter().map(|(k, b)| (b.sent, k)).collect();
        let take = self.cfg.max_piggyback;
        if take == 0 {
            return Vec::new();
        }
        if items.len() > take {
            items.select_nth_unstable(take - 1);
            items.truncate(take);
        }
        items.sort_unstable();
        let chosen: Vec<String> = items.into_iter().map(|(_, k)| k.clone()).collect();
        let mut out = Vec::with_capacity(chosen.len());
        for key in chosen {
            if let Some(b) = self.broadcasts.get_mut(&key) {
                b.sent += 1;
                out.push(b.update.clone());
                if b.sent >= limit {
                    self.broadcasts.remove(&key);
                }
            }
        }
        out
    }

    pub(super) fn broadcast(&mut self, update: Update) {
        self.broadcasts
            .insert(update.node.id.clone(), Broadcast { update, sent: 0 });
    }
}
