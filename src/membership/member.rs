//! A member as this node knows it: its peer record and protocol status.

use std::collections::HashSet;

use tokio::time::Instant;

use super::fmt_addr;
use crate::wire::{MemberState, NodeInfo, Update};

/// A live member as reported to the API.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Identity and the address it advertises (what other nodes are told).
    pub info: NodeInfo,
    /// Where this node reaches it when that differs from `info.host`: the local address
    /// of a node on our own host.
    pub reach_host: Option<String>,
    /// Its incarnation as last heard.
    pub incarnation: u64,
    /// True while suspected.
    pub suspect: bool,
    /// Last direct contact (its answer to a probe, or a message from it).
    pub last_seen: Instant,
}

impl Peer {
    /// `host:port` to reach this peer.
    pub fn addr(&self) -> String {
        fmt_addr(self.host(), self.info.port)
    }

    /// The host to reach this peer at.
    pub fn host(&self) -> &str {
        self.reach_host.as_deref().unwrap_or(&self.info.host)
    }

    /// `alive` or `suspect`.
    pub fn state(&self) -> &'static str {
        if self.suspect {
            "suspect"
        } else {
            "alive"
        }
    }
}

#[derive(Debug)]
pub(super) enum Status {
    Alive,
    Suspect {
        since: Instant,
        confirmations: HashSet<String>,
    },
    /// Tombstone: dead or left at `since`.
    Down {
        state: MemberState,
        since: Instant,
    },
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) peer: Peer,
    pub(super) status: Status,
    /// While suspect: when to probe it again (only its own answer clears the suspicion,
    /// so it gets a probe every interval rather than once per round).
    pub(super) next_check: Instant,
}

impl Member {
    pub(super) fn new(info: NodeInfo, incarnation: u64, status: Status, now: Instant) -> Self {
        Member {
            peer: Peer {
                info,
                reach_host: None,
                incarnation,
                suspect: false,
                last_seen: now,
            },
            status,
            next_check: now,
        }
    }

    pub(super) fn is_live(&self) -> bool {
        !matches!(self.status, Status::Down { .. })
    }

    pub(super) fn state(&self) -> MemberState {
        match self.status {
            Status::Alive => MemberState::Alive,
            Status::Suspect { .. } => MemberState::Suspect,
            Status::Down { state, .. } => state,
        }
    }

    pub(super) fn update(&self) -> Update {
        Update {
            node: self.peer.info.clone(),
            incarnation: self.peer.incarnation,
            state: self.state(),
        }
    }
}
