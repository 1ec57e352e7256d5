//! IO-free membership: SWIM-style failure detection with Lifeguard-style local health,
//! plus discovery of addresses where no member is known yet.
//!
//! The driver (`node.rs`) asks [`Membership::tick`] what to probe, performs the probes,
//! and reports outcomes; incoming gossip goes to [`Membership::on_gossip`]. Time comes in
//! as an argument and randomness from a seeded RNG, so the whole protocol runs in tests
//! without sockets or real time.
//!
//! - **Discovery targets** are addresses (`host:port`) from the domain scan, seeds and
//!   other nodes' news. Addresses with no node behind them are retried with doubling
//!   backoff (so an idle port range costs little) and probed with the full member list.
//! - **Members** are known by node id. Each tick one member is probed, in shuffled
//!   round-robin order, so probe traffic per node stays constant as the cluster grows.
//!   A refused connection means nobody listens there any more: the member is declared
//!   dead at once. A probe that times out is retried through a few other members
//!   (indirect probes); if none gets through, the member becomes *suspect*.
//! - **Suspicion** is refutable: news of its own suspicion makes a node raise its
//!   incarnation and spread that it is alive. A suspect that does not refute in time
//!   (shorter the more members independently suspect it) is declared dead.
//! - **Shared fate**: members of this node's own process (same process tag in the id)
//!   are never suspected for slowness: they cannot die while we live. A closed port
//!   (refused probe), a restart under a new id, or news of their death (found by those
//!   means) still removes them at once.
//! - **Local health**: failed probes raise this node's own health score, which stretches
//!   its probe timeouts and suspicion times, so a node that is itself slow (CPU
//!   starvation) does not accuse healthy peers.
//! - **News** (alive / suspect / dead / left, with incarnations) rides on every message,
//!   each item a bounded number of times; a periodic full exchange with a random member
//!   repairs anything missed. Dead and left members stay as tombstones for a while so
//!   stale news cannot resurrect them.
//!
//! **Only proof counts.** Anything a message says can be forged by whoever can send one
//! (on a closed cluster: a buggy or compromised member, or a skewed one), so:
//!
//! - A member is *alive* (listed, counted for quorum, sent writes) only after this node
//!   heard from it **directly**: it answered, under its own id, a probe this node sent to
//!   its address. A message that merely claims to come from a node (its `from`) is not
//!   direct: anybody could have sent it. Claims and news about third parties only make an
//!   address a *candidate* to probe, at most [`MAX_NEW_PER_MESSAGE`] of them per message,
//!   at most [`MAX_CANDIDATES`] waiting (those never heard from are evicted first); the
//!   member table holds at most [`MAX_MEMBERS`].
//! - Only the member itself can say it leaves or refute suspicion: a claim of leaving, a
//!   new id at a member's address, or news of a higher incarnation makes this node probe
//!   the member at once, and the answer decides (an answer with `leaving`, or a closed
//!   port, proves it left). News from others that a member is suspect, dead or left makes
//!   it at most *suspect* here, at the incarnation this node knows (a larger number in the
//!   news changes nothing); any direct answer clears the suspicion.
//! - Incarnations saturate, never wrap; a node refutes with its own incarnation plus one.
//! - A member not heard from directly for [`Membership::stale_after`] becomes suspect even
//!   if helpers claim to reach it, and suspects are not counted for quorum (the driver takes
//!   them off the replication targets until they answer again).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::wire::NodeInfo;

mod addr;
mod bounds;
mod config;
mod event;
mod member;
mod news;
mod probe;
mod receive;
mod schedule;
mod suspicion;
mod target;
#[cfg(test)]
mod tests;

pub use addr::{fmt_addr, split_addr};
pub use bounds::{MAX_CANDIDATES, MAX_MEMBERS, MAX_NEW_PER_MESSAGE};
pub use config::MembershipConfig;
pub use event::Event;
pub use member::Peer;
use member::{Member, Status};
use news::Broadcast;
pub use probe::{IndirectProbe, Probe, ProbeOutcome};
use target::{discovery_pending, Target};

/// The membership state of one node.
#[derive(Debug)]
pub struct Membership {
    me: NodeInfo,
    /// How nodes on this host are reached (loopback, or the address we listen on).
    local_host: String,
    incarnation: u64,
    cfg: MembershipConfig,
    members: HashMap<String, Member>,
    targets: HashMap<String, Target>,
    broadcasts: HashMap<String, Broadcast>,
    probe_order: Vec<String>,
    probing: HashSet<String>,
    /// Members found by a small discovery probe: each gets a full exchange at the next
    /// tick, so both sides learn every member at once.
    full_soon: Vec<(String, Instant)>,
    /// Members to probe at the next tick because a message claimed something only they
    /// can prove (leaving, a higher incarnation, another id at their address).
    verify_soon: HashMap<String, Instant>,
    /// Members that claimed to leave: a closed port at the confirming probe means they did.
    leave_claims: HashSet<String>,
    /// Nodes that sent us their full list (and got ours): no full exchange of ours is
    /// needed when they join.
    sent_full: HashSet<String>,
    next_member_probe: Instant,
    next_full_sync: Instant,
    health: u32,
    rng: StdRng,
}

impl Membership {
    /// A node that knows nobody yet. `seed` drives every random choice.
    pub fn new(me: NodeInfo, cfg: MembershipConfig, seed: u64, now: Instant) -> Self {
        Membership {
            me,
            local_host: "127.0.0.1".into(),
            incarnation: 0,
            cfg,
            members: HashMap::new(),
            targets: HashMap::new(),
            broadcasts: HashMap::new(),
            probe_order: Vec::new(),
            probing: HashSet::new(),
            full_soon: Vec::new(),
            verify_soon: HashMap::new(),
            leave_claims: HashSet::new(),
            sent_full: HashSet::new(),
            next_member_probe: now,
            next_full_sync: now,
            health: 0,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Set how other nodes on this host are reached: the address this host's nodes listen
    /// on, or loopback when they listen on every address (the default).
    pub fn set_local_host(&mut self, host: String) {
        self.local_host = host;
    }

    /// This node (its host is learned from peers when not configured).
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// This node's incarnation (raised to refute suspicion).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Local health score: 0 is healthy; higher stretches timeouts.
    pub fn health(&self) -> u32 {
        self.health
    }

    /// Live members (alive or suspect), never this node.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.members
            .values()
            .filter(|m| m.is_live())
            .map(|m| &m.peer)
    }

    /// Number of live members.
    pub fn len(&self) -> usize {
        self.members.values().filter(|m| m.is_live()).count()
    }

    /// True when no member is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live member with this id.
    pub fn peer(&self, id: &str) -> Option<&Peer> {
        self.members
            .get(id)
            .filter(|m| m.is_live())
            .map(|m| &m.peer)
    }

    /// Number of discovery addresses known.
    pub fn target_count(&self) -> usize {
        self.targets.len()
    }

    /// True once every discovery address has been probed at least once (or belongs to a
    /// member already known): the node's first discovery round is over.
    pub fn first_scan_done(&self) -> bool {
        self.targets.iter().all(|(addr, t)| {
            t.probed || t.is_self || (!t.in_flight && !discovery_pending(&self.members, addr, t))
        })
    }

    fn scaled(&self, d: Duration) -> Duration {
        d * (1 + self.health)
    }

    /// How long a live member may go without answering this node directly before it is
    /// suspected: the longest suspicion plus two rounds of member probes (each member is
    /// probed once a round), stretched like every timeout when local health is poor.
    pub fn stale_after(&self) -> Duration {
        let round = self.cfg.probe_interval * (self.len() as u32).saturating_add(1);
        self.scaled(self.cfg.suspicion_max) + round * 2
    }
}
