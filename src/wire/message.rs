//! The message kinds and what they carry.

use bytes::Bytes;

use super::WireError;
use crate::clock::Version;

/// A node as other nodes know it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct NodeInfo {
    /// Unique node id, e.g. `flux-node-2-7f3a9c`.
    pub id: String,
    /// Host others should use to reach it; empty when it does not know (the receiver then
    /// uses the address the message came from).
    pub host: String,
    /// Its HTTP port.
    pub port: u16,
}

/// What a membership update says about a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; dead unless it refutes in time.
    Suspect,
    /// Declared dead.
    Dead,
    /// Left gracefully.
    Left,
}

impl MemberState {
    pub(super) fn to_byte(self) -> u8 {
        match self {
            MemberState::Alive => 0,
            MemberState::Suspect => 1,
            MemberState::Dead => 2,
            MemberState::Left => 3,
        }
    }

    pub(super) fn from_byte(b: u8) -> Result<Self, WireError> {
        Ok(match b {
            0 => MemberState::Alive,
            1 => MemberState::Suspect,
            2 => MemberState::Dead,
            3 => MemberState::Left,
            other => return Err(WireError::BadField("member state", other)),
        })
    }
}

/// One piece of membership news: `node` is in `state` as of `incarnation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The node concerned, with the address the sender reaches it at (host may be empty).
    pub node: NodeInfo,
    /// The node's incarnation this news is about (only the node itself raises it).
    pub incarnation: u64,
    /// Its state.
    pub state: MemberState,
}

/// A membership exchange: a probe and its answer have the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Gossip {
    /// The sender.
    pub from: NodeInfo,
    /// The sender's current incarnation.
    pub incarnation: u64,
    /// True when the sender is shutting down and must be removed at once.
    pub leaving: bool,
    /// True when the sender includes its whole member list (and wants the same back).
    pub full: bool,
    /// In answers: the IP the request came from, so a node learns its own address.
    pub observed: String,
    /// In requests: an address the receiver should probe on the sender's behalf
    /// (indirect probe); empty when none. In answers: unused.
    pub relay: String,
    /// In answers to a relay request: whether the relayed probe got an answer.
    pub relay_ok: bool,
    /// Membership news (piggybacked), or the whole list when `full`.
    pub updates: Vec<Update>,
}

/// One replicated write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value bytes.
    pub value: Bytes,
    /// Wall-clock ms at the origin when written.
    pub created_ms: u64,
    /// Absolute wall-clock ms of expiry, set by the origin.
    pub expires_ms: u64,
    /// Version for last-writer-wins.
    pub version: Version,
}

/// Every message kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Membership exchange (request and reply).
    Gossip(Gossip),
    /// A batch of writes to apply.
    Replicate(Vec<Entry>),
    /// Acknowledgement of a batch: how many entries the receiver holds now (applied or
    /// already had a newer or equal version).
    Ack(u32),
    /// Anti-entropy step 1: the sender's per-bucket digest.
    Digest(Vec<u64>),
    /// Anti-entropy step 2: (key, version) of the receiver's entries in differing buckets.
    Versions(Vec<(String, Version)>),
    /// Anti-entropy step 3: ask for these entries (answered with `Replicate`).
    Fetch(Vec<String>),
    /// A batch of writes to apply and hand on to every node serving in the receiver's
    /// process (its failure domain), answered with `Holders`.
    Relay(Vec<Entry>),
    /// Answer to `Relay`: the ids of the nodes that hold every entry of the batch (at
    /// most [`MAX_HOLDERS`]).
    Holders(Vec<String>),
}

impl Message {
    /// Name of the message kind, for errors and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Gossip(_) => "gossip",
            Message::Replicate(_) => "replicate",
            Message::Ack(_) => "ack",
            Message::Digest(_) => "digest",
            Message::Versions(_) => "versions",
            Message::Fetch(_) => "fetch",
            Message::Relay(_) => "relay",
            Message::Holders(_) => "holders",
        }
    }
}
