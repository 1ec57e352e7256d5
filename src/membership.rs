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
use std::net::IpAddr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use tokio::time::Instant;

use crate::wire::{Gossip, MemberState, NodeInfo, Update};

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

/// Timing and sizes of the protocol. See [`MembershipConfig::default`].
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// One member is probed per interval. Must not be zero.
    pub probe_interval: Duration,
    /// Deadline of a direct probe at full health (stretched when health is poor).
    pub probe_timeout: Duration,
    /// Members asked to probe a member that missed a direct probe.
    pub indirect_probes: usize,
    /// Shortest suspicion before a suspect is declared dead (all confirmations in).
    pub suspicion_min: Duration,
    /// Longest suspicion (no independent confirmation). At least `suspicion_min`.
    pub suspicion_max: Duration,
    /// How often the whole member list is exchanged with one random member.
    pub full_sync_interval: Duration,
    /// How long dead and left members are remembered.
    pub tombstone_ttl: Duration,
    /// First retry delay for an address where nobody answered.
    pub min_backoff: Duration,
    /// Longest retry delay for an address where a node answered before (a peer that
    /// died or was cut off may come back there).
    pub max_backoff: Duration,
    /// Longest retry delay for an address where no node ever answered (an unused port of
    /// the range). Long, because a node that starts there later probes the range itself
    /// and reaches us.
    pub max_scan_backoff: Duration,
    /// Most news items carried by one message.
    pub max_piggyback: usize,
    /// Most discovery probes in flight at once (spreads a node's first scan of a large
    /// range, and most addresses are learned from the first members' lists anyway).
    pub max_discovery_in_flight: usize,
    /// Each news item is sent `retransmit_mult * ceil(log2(members + 2))` times.
    pub retransmit_mult: u32,
    /// Upper bound of the local health score (0 = healthy).
    pub max_health: u32,
}

impl Default for MembershipConfig {
    /// Probe one member every 200 ms with a 500 ms deadline, ask 3 others when it does
    /// not answer, suspect for 2-6 s, full exchange every 3 s, tombstones for 60 s,
    /// addresses of lost peers retried from 250 ms up to every 5 s, ports where nobody
    /// ever answered up to every 30 s.
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            suspicion_min: Duration::from_secs(2),
            suspicion_max: Duration::from_secs(6),
            full_sync_interval: Duration::from_secs(3),
            tombstone_ttl: Duration::from_secs(60),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_scan_backoff: Duration::from_secs(30),
            max_piggyback: 16,
            max_discovery_in_flight: 16,
            retransmit_mult: 4,
            max_health: 8,
        }
    }
}

/// A change in the membership seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new member is alive (first seen, or back with a higher incarnation).
    Joined(NodeInfo),
    /// A member announced it is leaving.
    Left(NodeInfo),
    /// A member was declared dead.
    Dead(NodeInfo),
    /// A new node id answered at the address of another member, which was removed.
    Replaced {
        /// The member that was removed.
        old: NodeInfo,
        /// The node that took its place.
        new: NodeInfo,
    },
    /// A member missed its probes and is suspected (still counted as a member).
    Suspected(NodeInfo),
    /// A suspect proved to be alive.
    Recovered(NodeInfo),
}

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
enum Status {
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
struct Member {
    peer: Peer,
    status: Status,
    /// While suspect: when to probe it again (only its own answer clears the suspicion,
    /// so it gets a probe every interval rather than once per round).
    next_check: Instant,
}

impl Member {
    fn new(info: NodeInfo, incarnation: u64, status: Status, now: Instant) -> Self {
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

    fn is_live(&self) -> bool {
        !matches!(self.status, Status::Down { .. })
    }

    fn state(&self) -> MemberState {
        match self.status {
            Status::Alive => MemberState::Alive,
            Status::Suspect { .. } => MemberState::Suspect,
            Status::Down { state, .. } => state,
        }
    }

    fn update(&self) -> Update {
        Update {
            node: self.peer.info.clone(),
            incarnation: self.peer.incarnation,
            state: self.state(),
        }
    }
}

#[derive(Debug)]
struct Target {
    next_probe: Instant,
    backoff: Duration,
    /// Node id last seen answering at this address.
    peer: Option<String>,
    /// The address answered with our own id: never probe it again.
    is_self: bool,
    in_flight: bool,
    /// Probed at least once.
    probed: bool,
    /// Learned from a message (a candidate), not from configuration: bounded, evictable.
    learned: bool,
    /// A node answered here at least once.
    answered: bool,
    /// When it was added (eviction order of candidates).
    added: Instant,
    /// The node there contacted us first: it exchanges full lists with us itself, so its
    /// answer to our probe needs no full exchange of ours.
    contacted: bool,
}

impl Target {
    fn new(now: Instant, learned: bool) -> Self {
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

#[derive(Debug)]
struct Broadcast {
    update: Update,
    sent: u32,
}

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

/// `host:port`, with IPv6 hosts in brackets.
pub fn fmt_addr(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Split `host:port` (IPv6 in brackets) into host and port.
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// True when `addr` is a discovery address still to be probed: not ourselves, no probe
/// in flight, and no live member reached at exactly this address (members are probed by
/// the member schedule instead).
fn discovery_pending(members: &HashMap<String, Member>, addr: &str, t: &Target) -> bool {
    let owned = || {
        t.peer.as_ref().is_some_and(|id| {
            members.get(id).is_some_and(|m| {
                m.is_live() && split_addr(addr) == Some((m.peer.host(), m.peer.info.port))
            })
        })
    };
    !t.is_self && !t.in_flight && !owned()
}

/// `local_host` when `advertised` is our own host `me_host` (a node on this host).
fn reach_host(me_host: &str, local_host: &str, advertised: &str) -> Option<String> {
    (!me_host.is_empty() && advertised == me_host && advertised != local_host)
        .then(|| local_host.to_string())
}

/// True when `a` and `b` are nodes of one process (see [`crate::ids::failure_domain`]).
fn shares_fate(a: &str, b: &str) -> bool {
    crate::ids::failure_domain(a) == crate::ids::failure_domain(b)
}

/// Events for a member `old` removed because `direct` contact found another node at its
/// address: a `Joined` of the newcomer becomes one `Replaced`.
fn merge_replacement(old: Option<NodeInfo>, mut direct: Vec<Event>) -> Vec<Event> {
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

    /// Add an address learned from a message (a candidate to probe), if the message still
    /// has `budget` left and there is room; true when it is known now. A known address
    /// backing off is probed at once when `hurry` (a node there just sent us a message:
    /// one probe per message received, never more), else left to its schedule.
    fn add_candidate(
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

    /// Probe member `id` at the next tick (a claim only its answer can prove).
    fn verify(&mut self, id: &str, now: Instant) {
        if self.members.get(id).is_some_and(Member::is_live) {
            self.verify_soon.entry(id.to_string()).or_insert(now);
        }
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

    fn suspicion_timeout(&self, confirmations: usize) -> Duration {
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

    fn next_probe_target(&mut self) -> Option<String> {
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

    /// How long a live member may go without answering this node directly before it is
    /// suspected: the longest suspicion plus two rounds of member probes (each member is
    /// probed once a round), stretched like every timeout when local health is poor.
    pub fn stale_after(&self) -> Duration {
        let round = self.cfg.probe_interval * (self.len() as u32).saturating_add(1);
        self.scaled(self.cfg.suspicion_max) + round * 2
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

    fn piggyback(&mut self) -> Vec<Update> {
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

    fn broadcast(&mut self, update: Update) {
        self.broadcasts
            .insert(update.node.id.clone(), Broadcast { update, sent: 0 });
    }

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

    /// Gossip arrived from another node; `source` is the IP it came from. The caller
    /// answers with [`Membership::message`] (full when the request was full).
    ///
    /// Nothing in it is proof (anybody may have sent it): an unknown sender becomes a
    /// candidate, probed at once; a known member's claims (leaving, a new incarnation, a
    /// new id at its address) make it probed at once; news of others is weighed by
    /// `apply_updates`. At most [`MAX_NEW_PER_MESSAGE`] unknown addresses
    /// are taken from one message.
    pub fn on_gossip(&mut self, msg: &Gossip, source: Option<IpAddr>, now: Instant) -> Vec<Event> {
        if msg.from.id == self.me.id {
            return Vec::new();
        }
        let mut budget = MAX_NEW_PER_MESSAGE;
        if msg.full {
            // It gets our full list in the answer: no need to send it again.
            if self.sent_full.len() >= MAX_MEMBERS {
                self.sent_full.clear();
            }
            self.sent_full.insert(msg.from.id.clone());
            self.full_soon.retain(|(id, _)| *id != msg.from.id);
        }
        // Reach the sender at the address it advertises (locally when that is our own
        // host: its public address may not be reachable from its own host), or else at
        // the address the message came from.
        let host = if !msg.from.host.is_empty() {
            self.reach_host(&msg.from.host)
                .unwrap_or_else(|| msg.from.host.clone())
        } else {
            match source {
                Some(ip) => ip.to_string(),
                None => return self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now),
            }
        };
        let addr = fmt_addr(&host, msg.from.port);
        let known = self
            .members
            .get(&msg.from.id)
            .filter(|m| m.is_live())
            .map(|m| (m.peer.addr() == addr, m.peer.incarnation, m.peer.suspect));
        match known {
            Some((true, incarnation, suspect)) => {
                if msg.leaving {
                    self.leave_claims.insert(msg.from.id.clone());
                    self.verify(&msg.from.id, now);
                    return Vec::new();
                }
                if suspect || msg.incarnation > incarnation {
                    self.verify(&msg.from.id, now);
                }
            }
            _ if msg.leaving => return Vec::new(),
            _ => {
                // Somebody else claims this address (or the member claims another): the
                // address is probed, and the answer says who is there.
                let owner = self
                    .members
                    .iter()
                    .find(|(id, m)| **id != msg.from.id && m.is_live() && m.peer.addr() == addr)
                    .map(|(id, _)| id.clone());
                match owner {
                    Some(id) => self.verify(&id, now),
                    None => {
                        self.add_candidate(addr, true, &mut budget, now);
                    }
                }
            }
        }
        self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now)
    }

    /// Direct contact with `msg.from` at `addr` (it answered our probe there), then its
    /// news. Proof that it is alive: it joins, or recovers from suspicion, whatever the
    /// incarnation (only its own answer could say so), or comes back after we declared it
    /// dead. A member that left stays gone (a leaving node answers `leaving`).
    fn on_direct(&mut self, addr: &str, msg: &Gossip, now: Instant) -> Vec<Event> {
        let Some((host, port)) = split_addr(addr) else {
            return Vec::new();
        };
        let info = NodeInfo {
            id: msg.from.id.clone(),
            host: self.advertised_host(&msg.from.host, host),
            port,
        };
        let reach = (info.host != host).then(|| host.to_string());
        let mut events = Vec::new();
        let inc = msg.incarnation;
        match self.members.get_mut(&info.id) {
            None => {
                if self.make_room() {
                    let mut member = Member::new(info.clone(), inc, Status::Alive, now);
                    member.peer.reach_host = reach;
                    self.members.insert(info.id.clone(), member);
                    self.broadcast(Update {
                        node: info.clone(),
                        incarnation: inc,
                        state: MemberState::Alive,
                    });
                    events.push(Event::Joined(info));
                }
            }
            Some(m) => {
                m.peer.last_seen = now;
                m.peer.incarnation = m.peer.incarnation.max(inc);
                match &mut m.status {
                    Status::Alive => {}
                    Status::Suspect { .. } => {
                        m.peer.suspect = false;
                        m.status = Status::Alive;
                        let u = m.update();
                        let info = m.peer.info.clone();
                        self.broadcast(u);
                        events.push(Event::Recovered(info));
                    }
                    Status::Down { state, .. } => {
                        if *state == MemberState::Dead {
                            m.peer.info = info.clone();
                            m.peer.reach_host = reach;
                            m.peer.suspect = false;
                            m.status = Status::Alive;
                            let u = m.update();
                            self.broadcast(u);
                            events.push(Event::Joined(info));
                        }
                    }
                }
            }
        }
        let mut budget = MAX_NEW_PER_MESSAGE;
        events.extend(self.apply_updates(&msg.updates, &msg.from.id, &mut budget, now));
        events
    }

    /// Room for one more member: true unless the table is full of live members (then the
    /// oldest tombstone goes first).
    fn make_room(&mut self) -> bool {
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

    /// Apply news received from `sender` (never proof, see the module doc): unknown live
    /// members become candidates (while `budget` lasts), claims only a member can make
    /// (alive again, a higher incarnation) get it probed, and accusations (suspect, dead,
    /// left) make it suspect here at most, at the incarnation this node knows.
    fn apply_updates(
        &mut self,
        updates: &[Update],
        sender: &str,
        budget: &mut usize,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        for u in updates {
            if u.node.id == self.me.id {
                self.refute(u);
                continue;
            }
            let Some(m) = self.members.get_mut(&u.node.id) else {
                self.learn(u, budget, now);
                continue;
            };
            let known = m.peer.incarnation;
            match (u.state, &mut m.status) {
                // Back after we declared it dead? Its address is retried anyway (its
                // backoff is short after a death), and only its answer brings it back.
                (MemberState::Alive, Status::Suspect { .. }) if u.incarnation > known => {
                    self.verify(&u.node.id, now);
                }
                (MemberState::Alive, _) => {}
                (_, Status::Down { .. }) => {}
                (_, _) if u.incarnation < known => {}
                (_, Status::Suspect { confirmations, .. }) => {
                    confirmations.insert(sender.to_string());
                }
                (_, Status::Alive) => {
                    events.extend(self.suspect(&u.node.id, Some(sender), now));
                    self.verify(&u.node.id, now);
                }
            }
        }
        events
    }

    /// News about a member we did not know: its address becomes a candidate to probe (it
    /// is a member only once it answers). News of its death or leaving is not kept.
    fn learn(&mut self, u: &Update, budget: &mut usize, now: Instant) {
        if !matches!(u.state, MemberState::Alive | MemberState::Suspect) || u.node.host.is_empty() {
            return;
        }
        // A member advertising our own host lives on this host: reach it locally.
        let reach = self.reach_host(&u.node.host);
        let host = reach.as_deref().unwrap_or(&u.node.host);
        let addr = fmt_addr(host, u.node.port);
        self.add_candidate(addr, false, budget, now);
    }

    /// News about ourselves: refute suspicion or death by raising our incarnation.
    fn refute(&mut self, u: &Update) {
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

    fn suspect(&mut self, id: &str, by: Option<&str>, now: Instant) -> Vec<Event> {
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

    /// The local address to reach a node advertising `advertised`, when that is our own
    /// host; `None` when the advertised address is the one to use.
    fn reach_host(&self, advertised: &str) -> Option<String> {
        reach_host(&self.me.host, &self.local_host, advertised)
    }

    /// What to tell others about a node that advertises `own` and that we reach at
    /// `reached`: its own address, else the one we reach it at, except that a loopback
    /// or local address means "on our host", which others reach at our host.
    fn advertised_host(&self, own: &str, reached: &str) -> String {
        if !own.is_empty() {
            return own.to_string();
        }
        let local = reached == self.local_host
            || reached.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if local && !self.me.host.is_empty() {
            self.me.host.clone()
        } else {
            reached.to_string()
        }
    }

    /// True for members of this node's own process: they are never suspected or
    /// declared dead for slowness (see [`crate::ids`]).
    fn shares_fate(&self, id: &str) -> bool {
        shares_fate(&self.me.id, id)
    }

    fn mark_down(&mut self, id: &str, state: MemberState, now: Instant) -> Vec<Event> {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, port: u16) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn gossip(id: &str, port: u16, inc: u64, updates: Vec<Update>) -> Gossip {
        Gossip {
            from: info(id, port),
            incarnation: inc,
            updates,
            ..Gossip::default()
        }
    }

    fn upd(id: &str, port: u16, inc: u64, state: MemberState) -> Update {
        Update {
            node: info(id, port),
            incarnation: inc,
            state,
        }
    }

    /// `id` answers a probe of ours at 127.0.0.1:`port`: direct contact, so it is a
    /// member now.
    fn meet(m: &mut Membership, id: &str, port: u16, now: Instant) -> Vec<Event> {
        let probe = Probe {
            addr: format!("127.0.0.1:{port}"),
            member: None,
            full: true,
            timeout: Duration::from_millis(500),
        };
        m.probe_result(
            &probe,
            ProbeOutcome::Reply(gossip(id, port, 0, vec![])),
            now,
        )
        .0
    }

    /// `g` arrives, and its sender answers the discovery probe that makes us send: how a
    /// node that contacts us becomes a member.
    fn hear_from(
        m: &mut Membership,
        g: &Gossip,
        source: Option<IpAddr>,
        now: Instant,
    ) -> Vec<Event> {
        let mut events = m.on_gossip(g, source, now);
        let (probes, ev) = m.tick(now);
        events.extend(ev);
        for p in probes.iter().filter(|p| p.member.is_none()) {
            let mut reply = g.clone();
            reply.updates.clear();
            events.extend(m.probe_result(p, ProbeOutcome::Reply(reply), now).0);
        }
        events
    }

    fn node() -> (Membership, Instant) {
        let now = Instant::now();
        (
            Membership::new(info("me", 8081), MembershipConfig::default(), 1, now),
            now,
        )
    }

    #[test]
    fn members_of_our_own_process_are_never_suspected_but_still_removed_when_gone() {
        let mut now = Instant::now();
        let step = MembershipConfig::default().probe_interval;
        let me = "flux-node-1-aaaaaa";
        let (same, other) = ("flux-node-2-aaaaaa", "flux-node-3-bbbbbb");
        let mut m = Membership::new(info(me, 8081), MembershipConfig::default(), 1, now);
        meet(&mut m, same, 8082, now);
        meet(&mut m, other, 8083, now);
        assert_eq!(m.len(), 2);

        // Probes of both time out: only the other process's node goes to indirect probes.
        let mut plans = HashMap::new();
        for _ in 0..2 {
            now += step;
            let p = member_probe(&mut m, now);
            let (events, plan) = m.probe_result(&p, ProbeOutcome::Failed, now);
            assert!(events.is_empty());
            plans.insert(p.member.clone().unwrap(), plan.is_some());
        }
        assert!(!plans[same]);
        assert!(plans[other]);

        // Another process says ours is suspect: ignored (it refutes that itself) ...
        let news = vec![upd(same, 8082, 0, MemberState::Suspect)];
        assert!(m
            .on_gossip(&gossip(other, 8083, 0, news), None, now)
            .is_empty());
        assert_eq!(m.len(), 2);
        // ... while the same news about a node of that other process is believed.
        let third = "flux-node-4-cccccc";
        meet(&mut m, third, 8084, now);
        let news = vec![upd(third, 8084, 0, MemberState::Suspect)];
        let events = m.on_gossip(&gossip(other, 8083, 0, news), None, now);
        assert!(
            matches!(&events[..], [Event::Suspected(i)] if i.id == third),
            "{events:?}"
        );

        // A closed port still removes ours at once, and so does leaving.
        let p = loop {
            now += step;
            let p = member_probe(&mut m, now);
            if p.member.as_deref() == Some(same) {
                break p;
            }
            m.probe_result(&p, ProbeOutcome::Reply(gossip(other, 8083, 0, vec![])), now);
        };
        let (events, _) = m.probe_result(&p, ProbeOutcome::Refused, now);
        assert!(
            matches!(&events[..], [Event::Dead(i)] if i.id == same),
            "{events:?}"
        );
    }

    /// A member "b" on 8082, learned by a discovery probe.
    fn with_b() -> (Membership, Instant) {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        let (probes, _) = m.tick(t0);
        let p = probes
            .into_iter()
            .find(|p| p.member.is_none())
            .expect("discovery probe");
        let (ev, _) = m.probe_result(&p, ProbeOutcome::Reply(gossip("b", 8082, 0, vec![])), t0);
        assert_eq!(ev, vec![Event::Joined(info("b", 8082))]);
        (m, t0)
    }

    fn member_probe(m: &mut Membership, now: Instant) -> Probe {
        let (probes, _) = m.tick(now);
        probes
            .into_iter()
            .find(|p| p.member.is_some())
            .expect("a member probe")
    }

    #[test]
    fn discovery_probes_back_off_when_nobody_answers() {
        let (mut m, t0) = node();
        let a = "127.0.0.1:8090".to_string();
        m.add_target(a.clone(), t0);
        let (gaps, full) = refused_discovery_gaps(&mut m, t0, 10);
        // Nobody ever answered there: up to every 30 s.
        assert_eq!(
            gaps,
            vec![250, 500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert!(
            full.iter().all(|f| !*f),
            "an unused port gets small messages, not the member list"
        );
    }

    #[test]
    fn a_node_found_by_a_small_discovery_probe_gets_a_full_exchange_at_once() {
        let (mut m, t0) = node();
        for i in 0..5u16 {
            meet(&mut m, &format!("n{i}"), 9000 + i, t0);
        }
        m.add_target("127.0.0.1:8082".into(), t0);
        let (probes, _) = m.tick(t0);
        let discovery = probes
            .into_iter()
            .find(|p| p.addr == "127.0.0.1:8082")
            .expect("discovery probe");
        assert!(!discovery.full);
        assert!(m.message(discovery.full, None).updates.len() < 6);
        let (ev, _) = m.probe_result(
            &discovery,
            ProbeOutcome::Reply(gossip("b", 8082, 0, vec![])),
            t0,
        );
        assert_eq!(ev, vec![Event::Joined(info("b", 8082))]);
        // Due now, not at the next probe interval.
        assert_eq!(m.next_deadline(), Some(t0));
        let (probes, _) = m.tick(t0);
        let full: Vec<&Probe> = probes.iter().filter(|p| p.full).collect();
        assert_eq!(full.len(), 1, "{probes:?}");
        assert_eq!(full[0].member.as_deref(), Some("b"));
        assert_eq!(full[0].addr, "127.0.0.1:8082");
        assert_eq!(m.message(true, Some("b")).updates.len(), 6);
        // Only once.
        let (probes, _) = m.tick(t0 + Duration::from_millis(1));
        assert!(probes.iter().all(|p| !p.full), "{probes:?}");
    }

    #[test]
    fn a_lost_peer_address_is_probed_with_the_full_list() {
        let (mut m, t0) = with_b();
        let p = member_probe(&mut m, t0);
        // b dies: its address becomes a discovery target again, where b (or a node that
        // replaces it) may come back, so the probe there carries the whole list.
        let _ = m.probe_result(&p, ProbeOutcome::Refused, t0);
        let later = t0 + Duration::from_secs(6);
        let (probes, _) = m.tick(later);
        let at_b: Vec<&Probe> = probes
            .iter()
            .filter(|p| p.addr == "127.0.0.1:8082")
            .collect();
        assert!(!at_b.is_empty(), "{probes:?}");
        assert!(
            at_b.iter().all(|p| p.full && p.member.is_none()),
            "{probes:?}"
        );
    }

    /// Let the only due discovery probe be refused `n` times: the gaps between probes,
    /// and whether each probe carried the whole member list.
    fn refused_discovery_gaps(m: &mut Membership, t0: Instant, n: usize) -> (Vec<u128>, Vec<bool>) {
        let mut now = t0;
        let (mut gaps, mut full) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let (probes, _) = m.tick(now);
            let discovery: Vec<_> = probes.iter().filter(|p| p.member.is_none()).collect();
            assert_eq!(discovery.len(), 1, "{probes:?}");
            full.push(discovery[0].full);
            assert!(
                m.tick(now).0.iter().all(|p| p.member.is_some()),
                "in flight: not due twice"
            );
            m.probe_result(discovery[0], ProbeOutcome::Refused, now);
            let next = m.next_deadline().unwrap();
            gaps.push((next - now).as_millis());
            now = next;
        }
        (gaps, full)
    }

    #[test]
    fn the_address_of_a_lost_peer_is_retried_at_least_every_5_s() {
        let (mut m, t0) = node();
        let a = "127.0.0.1:8090".to_string();
        m.add_target(a.clone(), t0);
        let (probes, _) = m.tick(t0);
        m.probe_result(
            &probes[0],
            ProbeOutcome::Reply(gossip("b", 8090, 0, vec![])),
            t0,
        );
        let probe = member_probe(&mut m, t0);
        m.probe_result(&probe, ProbeOutcome::Refused, t0);
        assert!(m.is_empty(), "b is dead");
        // Only the discovery probes of b's address remain; no member to probe.
        let first = m.next_deadline().expect("b's address is due again");
        assert!(first - t0 <= Duration::from_secs(5));
        let (gaps, full) = refused_discovery_gaps(&mut m, first, 7);
        assert_eq!(gaps, vec![500, 1000, 2000, 4000, 5000, 5000, 5000]);
        assert!(
            full.iter().all(|f| *f),
            "a returning peer gets the whole list"
        );
    }

    #[test]
    fn our_own_address_is_recognised_and_never_probed_again() {
        let (mut m, t0) = node();
        m.add_target("10.0.0.1:8081".into(), t0);
        let (p, _) = m.tick(t0);
        m.probe_result(
            &p[0],
            ProbeOutcome::Reply(gossip("me", 8081, 0, vec![])),
            t0,
        );
        assert!(m.is_empty());
        assert!(m.tick(t0 + Duration::from_secs(60)).0.is_empty());
    }

    #[test]
    fn one_member_is_probed_per_interval_in_round_robin() {
        let (mut m, t0) = node();
        for (id, port) in [("b", 8082), ("c", 8083), ("d", 8084)] {
            meet(&mut m, id, port, t0);
        }
        let mut seen = Vec::new();
        let mut now = t0;
        for _ in 0..6 {
            let p = member_probe(&mut m, now);
            seen.push(p.member.clone().unwrap());
            m.probe_result(
                &p,
                ProbeOutcome::Reply(gossip(
                    &seen[seen.len() - 1],
                    p.addr.rsplit(':').next().unwrap().parse().unwrap(),
                    0,
                    vec![],
                )),
                now,
            );
            now += Duration::from_millis(200);
            assert!(m.tick(now - Duration::from_millis(1)).0.is_empty());
        }
        let mut first: Vec<_> = seen[..3].to_vec();
        first.sort();
        assert_eq!(
            first,
            vec!["b", "c", "d"],
            "each member once per round: {seen:?}"
        );
        let mut second: Vec<_> = seen[3..].to_vec();
        second.sort();
        assert_eq!(second, vec!["b", "c", "d"]);
    }

    #[test]
    fn a_refused_probe_declares_death_at_once_and_spreads_it() {
        let (mut m, t0) = with_b();
        let p = member_probe(&mut m, t0);
        let (ev, plan) = m.probe_result(&p, ProbeOutcome::Refused, t0);
        assert_eq!(ev, vec![Event::Dead(info("b", 8082))]);
        assert!(plan.is_none());
        assert!(m.is_empty());
        let news = m.message(false, None).updates;
        assert!(
            news.contains(&upd("b", 8082, 0, MemberState::Dead)),
            "{news:?}"
        );
    }

    #[test]
    fn a_timeout_asks_others_then_suspects_then_declares_dead() {
        let (mut m, t0) = with_b();
        meet(&mut m, "c", 8083, t0);
        // Probe until b is the target.
        let mut now = t0;
        let p = loop {
            let p = member_probe(&mut m, now);
            if p.member.as_deref() == Some("b") {
                break p;
            }
            m.probe_result(&p, ProbeOutcome::Reply(gossip("c", 8083, 0, vec![])), now);
            now += Duration::from_millis(200);
        };
        let (ev, plan) = m.probe_result(&p, ProbeOutcome::Failed, now);
        assert!(ev.is_empty());
        let plan = plan.expect("indirect probe");
        assert_eq!(plan.helpers, vec!["127.0.0.1:8083".to_string()]);
        assert_eq!(m.health(), 1);
        let ev = m.indirect_result("b", false, now);
        assert_eq!(ev, vec![Event::Suspected(info("b", 8082))]);
        assert_eq!(m.peer("b").unwrap().state(), "suspect");
        assert_eq!(m.len(), 2, "a suspect is still a member");
        // With health 1 the longest suspicion is 12 s.
        let (_, ev) = m.tick(now + Duration::from_millis(11_900));
        assert!(ev.is_empty());
        let (_, ev) = m.tick(now + Duration::from_secs(12));
        assert_eq!(ev, vec![Event::Dead(info("b", 8082))]);
    }

    #[test]
    fn confirmations_from_others_shorten_suspicion() {
        let (mut m, t0) = with_b();
        meet(&mut m, "c", 8083, t0);
        meet(&mut m, "d", 8084, t0);
        meet(&mut m, "e", 8085, t0);
        meet(&mut m, "f", 8086, t0);
        let s = |inc| vec![upd("b", 8082, inc, MemberState::Suspect)];
        assert_eq!(
            m.on_gossip(&gossip("c", 8083, 0, s(0)), None, t0),
            vec![Event::Suspected(info("b", 8082))]
        );
        m.on_gossip(&gossip("d", 8084, 0, s(0)), None, t0);
        // Two confirmations after the first suspicion: 6 - 4 * ln 3 / ln 4 = 2.83 s.
        m.on_gossip(&gossip("e", 8085, 0, s(0)), None, t0);
        assert!(m.tick(t0 + Duration::from_millis(2_800)).1.is_empty());
        // The third confirmation (as many as indirect probes) brings it to the minimum.
        m.on_gossip(&gossip("f", 8086, 0, s(0)), None, t0);
        assert_eq!(
            m.tick(t0 + Duration::from_millis(2_801)).1,
            vec![Event::Dead(info("b", 8082))]
        );
    }

    #[test]
    fn a_suspect_refutes_and_only_its_own_answer_clears_the_suspicion() {
        // Seen from the accused: news of its own suspicion raises its incarnation by one,
        // whatever number the accuser used (saturating, never wrapping).
        let (mut b, t0) = node();
        b.on_gossip(
            &gossip("c", 8083, 0, vec![upd("me", 8081, 0, MemberState::Suspect)]),
            None,
            t0,
        );
        assert_eq!(b.incarnation(), 1);
        let news = b.message(false, None).updates;
        assert!(
            news.contains(&upd("me", 8081, 1, MemberState::Alive)),
            "{news:?}"
        );
        b.on_gossip(
            &gossip(
                "c",
                8083,
                0,
                vec![upd("me", 8081, u64::MAX, MemberState::Dead)],
            ),
            None,
            t0,
        );
        assert_eq!(b.incarnation(), 2, "own number plus one, not the accuser's");
        b.incarnation = u64::MAX;
        b.on_gossip(
            &gossip(
                "c",
                8083,
                0,
                vec![upd("me", 8081, u64::MAX, MemberState::Dead)],
            ),
            None,
            t0,
        );
        assert_eq!(b.incarnation(), u64::MAX, "saturates");

        // Seen from an accuser: news of a refutation is only a reason to probe b; b's
        // own answer clears the suspicion.
        let (mut m, t0) = with_b();
        meet(&mut m, "c", 8083, t0);
        m.on_gossip(
            &gossip("c", 8083, 0, vec![upd("b", 8082, 0, MemberState::Suspect)]),
            None,
            t0,
        );
        assert_eq!(m.peer("b").unwrap().state(), "suspect");
        let ev = m.on_gossip(
            &gossip("c", 8083, 0, vec![upd("b", 8082, 1, MemberState::Alive)]),
            None,
            t0,
        );
        assert!(ev.is_empty(), "{ev:?}");
        assert_eq!(m.peer("b").unwrap().state(), "suspect");
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        let (ev, _) = m.probe_result(p, ProbeOutcome::Reply(gossip("b", 8082, 1, vec![])), t0);
        assert_eq!(ev, vec![Event::Recovered(info("b", 8082))]);
        assert_eq!(m.peer("b").unwrap().state(), "alive");
        // Old suspicion (incarnation 0) cannot come back.
        m.on_gossip(
            &gossip("c", 8083, 0, vec![upd("b", 8082, 0, MemberState::Suspect)]),
            None,
            t0,
        );
        assert_eq!(m.peer("b").unwrap().state(), "alive");
        // A huge incarnation in an accusation is taken as the one we know: the member's
        // answer (at whatever incarnation) still clears it.
        m.on_gossip(
            &gossip(
                "c",
                8083,
                0,
                vec![upd("b", 8082, u64::MAX, MemberState::Dead)],
            ),
            None,
            t0,
        );
        assert_eq!(m.peer("b").unwrap().state(), "suspect");
        assert_eq!(m.peer("b").unwrap().incarnation, 1);
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        let (ev, _) = m.probe_result(p, ProbeOutcome::Reply(gossip("b", 8082, 2, vec![])), t0);
        assert_eq!(ev, vec![Event::Recovered(info("b", 8082))]);
    }

    #[test]
    fn a_member_we_suspect_hears_it_in_our_messages() {
        let (mut m, t0) = with_b();
        m.on_gossip(
            &gossip("c", 8083, 0, vec![upd("b", 8082, 0, MemberState::Suspect)]),
            None,
            t0,
        );
        // Drain the piggyback queue so only the targeted news remains.
        for _ in 0..50 {
            m.message(false, None);
        }
        let to_b = m.message(false, Some("b")).updates;
        assert_eq!(to_b, vec![upd("b", 8082, 0, MemberState::Suspect)]);
    }

    #[test]
    fn news_of_a_death_or_leaving_from_others_is_only_suspicion() {
        let (mut m, t0) = with_b();
        meet(&mut m, "c", 8083, t0);
        for state in [MemberState::Dead, MemberState::Left] {
            let ev = m.on_gossip(
                &gossip("c", 8083, 0, vec![upd("b", 8082, 0, state)]),
                None,
                t0,
            );
            assert!(
                ev.is_empty() || ev == vec![Event::Suspected(info("b", 8082))],
                "{ev:?}"
            );
            assert_eq!(m.peer("b").unwrap().state(), "suspect", "{state:?}");
            assert_eq!(m.len(), 2);
        }
        // The suspicion runs its course: declared dead by us only if b never answers.
        let (_, ev) = m.tick(t0 + Duration::from_secs(7));
        assert!(ev.contains(&Event::Dead(info("b", 8082))), "{ev:?}");
        // Alive news does not bring it back; only its own answer does.
        let ev = m.on_gossip(
            &gossip("c", 8083, 0, vec![upd("b", 8082, 5, MemberState::Alive)]),
            None,
            t0,
        );
        assert!(ev.is_empty());
        assert!(m.peer("b").is_none());
        assert_eq!(
            meet(&mut m, "b", 8082, t0 + Duration::from_secs(8)),
            vec![Event::Joined(info("b", 8082))]
        );
    }

    #[test]
    fn news_of_unknown_members_only_makes_candidates_and_a_message_adds_few() {
        let (mut m, t0) = node();
        // An unknown sender and the members it lists: candidates to probe, not members.
        let fakes: Vec<Update> = (0..2000u16)
            .map(|i| upd(&format!("fake-{i}"), 10_000 + i, 0, MemberState::Alive))
            .collect();
        let ev = m.on_gossip(&gossip("b", 8082, 0, fakes.clone()), None, t0);
        assert!(ev.is_empty(), "{ev:?}");
        assert!(m.is_empty());
        assert_eq!(m.target_count(), MAX_NEW_PER_MESSAGE);
        // They become members only by answering probes; the ones nobody answers for die
        // off as unused addresses.
        let (probes, _) = m.tick(t0);
        assert_eq!(probes.len(), MAX_NEW_PER_MESSAGE);
        for p in &probes {
            let reply = if p.addr == "127.0.0.1:8082" {
                ProbeOutcome::Reply(gossip("b", 8082, 0, vec![]))
            } else {
                ProbeOutcome::Refused
            };
            m.probe_result(p, reply, t0);
        }
        assert_eq!(m.len(), 1);
        assert!(m.peer("b").is_some());
        // Flooding with many messages never grows the candidates beyond the bound.
        for round in 0..100u16 {
            let batch: Vec<Update> = (0..8u16)
                .map(|i| {
                    let n = round * 8 + i;
                    upd(&format!("f{n}"), 20_000 + n, 0, MemberState::Alive)
                })
                .collect();
            m.on_gossip(&gossip("b", 8082, 0, batch), None, t0);
        }
        assert!(
            m.target_count() <= MAX_CANDIDATES + 1,
            "{}",
            m.target_count()
        );
        // News without an address is useless and ignored.
        let mut nohost = upd("d", 8084, 0, MemberState::Alive);
        nohost.node.host.clear();
        let before = m.target_count();
        assert!(m
            .on_gossip(&gossip("b", 8082, 0, vec![nohost]), None, t0)
            .is_empty());
        assert_eq!(m.target_count(), before);
    }

    #[test]
    fn leaving_is_believed_from_the_member_itself_and_spread() {
        let (mut m, t0) = with_b();
        let mut bye = gossip("b", 8082, 0, vec![]);
        bye.leaving = true;
        // A claim (anybody could send it): b is probed at once.
        assert!(m.on_gossip(&bye, None, t0).is_empty());
        assert_eq!(m.len(), 1);
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        // A forged claim: b answers as usual and stays.
        let (ev, _) = m.probe_result(p, ProbeOutcome::Reply(gossip("b", 8082, 0, vec![])), t0);
        assert!(ev.is_empty());
        assert_eq!(m.len(), 1);
        // Its own leaving answer is proof.
        m.on_gossip(&bye, None, t0);
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        let (ev, _) = m.probe_result(p, ProbeOutcome::Reply(bye.clone()), t0);
        assert_eq!(ev, vec![Event::Left(info("b", 8082))]);
        assert!(m.is_empty());
        assert!(m.on_gossip(&bye, None, t0).is_empty());
        let news = m.message(false, None).updates;
        assert!(news.contains(&upd("b", 8082, 0, MemberState::Left)));
        // So is a closed port after its claim.
        let (mut m, t0) = with_b();
        m.on_gossip(&bye, None, t0);
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        let (ev, _) = m.probe_result(p, ProbeOutcome::Refused, t0);
        assert_eq!(ev, vec![Event::Left(info("b", 8082))]);
    }

    #[test]
    fn a_new_id_at_a_member_address_replaces_it_once_it_answers_there() {
        // A message claiming another id at b's address only gets b's address probed.
        let (mut m, t0) = with_b();
        assert!(m
            .on_gossip(&gossip("b2", 8082, 0, vec![]), None, t0)
            .is_empty());
        assert_eq!(m.len(), 1);
        let (probes, _) = m.tick(t0);
        let p = probes
            .iter()
            .find(|p| p.member.as_deref() == Some("b"))
            .expect("b is probed at once");
        let (ev, _) = m.probe_result(p, ProbeOutcome::Reply(gossip("b2", 8082, 0, vec![])), t0);
        assert_eq!(
            ev,
            vec![Event::Replaced {
                old: info("b", 8082),
                new: info("b2", 8082)
            }]
        );
        assert_eq!(m.len(), 1);
        // The same seen by probing b's address.
        let (mut m, t0) = with_b();
        let p = member_probe(&mut m, t0);
        let (ev, _) = m.probe_result(&p, ProbeOutcome::Reply(gossip("b3", 8082, 0, vec![])), t0);
        assert_eq!(
            ev,
            vec![Event::Replaced {
                old: info("b", 8082),
                new: info("b3", 8082)
            }]
        );
    }

    #[test]
    fn a_sender_without_host_is_reached_at_its_source_ip() {
        let (mut m, t0) = node();
        let mut g = gossip("b", 9000, 0, vec![]);
        g.from.host.clear();
        assert!(m.on_gossip(&g, None, t0).is_empty(), "no way to reach it");
        hear_from(&mut m, &g, Some("10.1.2.3".parse().unwrap()), t0);
        assert_eq!(m.peer("b").unwrap().addr(), "10.1.2.3:9000");
        let mut g6 = gossip("c", 9001, 0, vec![]);
        g6.from.host.clear();
        hear_from(&mut m, &g6, Some("::1".parse().unwrap()), t0);
        assert_eq!(m.peer("c").unwrap().addr(), "[::1]:9001");
    }

    #[test]
    fn members_on_our_own_host_are_reached_over_loopback() {
        let (mut m, t0) = node();
        m.me.host = "203.0.113.9".into();
        // A same-host sender advertising the public address.
        let mut g = gossip("b", 8082, 0, vec![]);
        g.from.host = "203.0.113.9".into();
        hear_from(&mut m, &g, Some("127.0.0.1".parse().unwrap()), t0);
        assert_eq!(m.peer("b").unwrap().addr(), "127.0.0.1:8082");
        // Another host on loopback addresses (as in tests): its own address, not the
        // source the kernel picked for the connection.
        let mut l = gossip("l", 8085, 0, vec![]);
        l.from.host = "127.0.0.3".into();
        hear_from(&mut m, &l, Some("127.0.0.1".parse().unwrap()), t0);
        assert_eq!(m.peer("l").unwrap().addr(), "127.0.0.3:8085");
        // Nodes listening on one address are reached there.
        m.set_local_host("127.0.0.2".into());
        let mut h = gossip("h", 8086, 0, vec![]);
        h.from.host = "203.0.113.9".into();
        hear_from(&mut m, &h, Some("127.0.0.1".parse().unwrap()), t0);
        assert_eq!(m.peer("h").unwrap().addr(), "127.0.0.2:8086");
        m.set_local_host("127.0.0.1".into());
        // News of another same-host member, and of one on another host.
        let mut same = upd("c", 8083, 0, MemberState::Alive);
        same.node.host = "203.0.113.9".into();
        let mut other = upd("d", 8081, 0, MemberState::Alive);
        other.node.host = "198.51.100.4".into();
        m.on_gossip(
            &gossip("b", 8082, 0, vec![same.clone(), other.clone()]),
            Some("127.0.0.1".parse().unwrap()),
            t0,
        );
        // News makes candidates; they answer our probes under their own ids.
        let (probes, _) = m.tick(t0);
        for p in probes.iter().filter(|p| p.member.is_none()) {
            let u = if p.addr.ends_with(":8083") {
                &same
            } else {
                &other
            };
            let reply = Gossip {
                from: u.node.clone(),
                ..Gossip::default()
            };
            m.probe_result(p, ProbeOutcome::Reply(reply), t0);
        }
        assert_eq!(m.peer("c").unwrap().addr(), "127.0.0.1:8083");
        assert_eq!(m.peer("d").unwrap().addr(), "198.51.100.4:8081");
        // A remote sender keeps its advertised address.
        let mut r = gossip("e", 8081, 0, vec![]);
        r.from.host = "198.51.100.5".into();
        hear_from(&mut m, &r, Some("10.0.0.5".parse().unwrap()), t0);
        assert_eq!(m.peer("e").unwrap().addr(), "198.51.100.5:8081");

        // Other hosts are told the advertised addresses, never our local ones.
        let told: HashMap<String, String> = m
            .message(true, None)
            .updates
            .into_iter()
            .map(|u| (u.node.id, fmt_addr(&u.node.host, u.node.port)))
            .collect();
        assert_eq!(told["b"], "203.0.113.9:8082");
        assert_eq!(told["c"], "203.0.113.9:8083");
        assert_eq!(told["h"], "203.0.113.9:8086");
        assert_eq!(told["d"], "198.51.100.4:8081");
        // A same-host sender that does not know its host yet (reached over loopback) is
        // announced at our host.
        let mut f = gossip("f", 8087, 0, vec![]);
        f.from.host.clear();
        hear_from(&mut m, &f, Some("127.0.0.1".parse().unwrap()), t0);
        assert_eq!(m.peer("f").unwrap().addr(), "127.0.0.1:8087");
        let told = m.message(true, None).updates;
        let f = told.iter().find(|u| u.node.id == "f").unwrap();
        assert_eq!(f.node.host, "203.0.113.9");
    }

    #[test]
    fn a_node_learns_its_own_host_from_the_first_answer() {
        let (mut m, t0) = node();
        m.me.host.clear();
        m.add_target("127.0.0.1:8082".into(), t0);
        let (p, _) = m.tick(t0);
        let mut reply = gossip("b", 8082, 0, vec![]);
        reply.observed = "10.9.8.7".into();
        m.probe_result(&p[0], ProbeOutcome::Reply(reply), t0);
        assert_eq!(m.me().host, "10.9.8.7");
    }

    #[test]
    fn one_node_at_two_addresses_is_one_member() {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        m.add_target("[::1]:8082".into(), t0);
        let (probes, _) = m.tick(t0);
        assert_eq!(probes.len(), 2);
        for p in &probes {
            m.probe_result(p, ProbeOutcome::Reply(gossip("b", 8082, 0, vec![])), t0);
        }
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn full_messages_carry_every_member_and_piggyback_is_bounded() {
        let (mut m, t0) = node();
        for i in 0..40u16 {
            meet(&mut m, &format!("n{i}"), 9000 + i, t0);
        }
        assert_eq!(m.message(true, None).updates.len(), 40);
        assert_eq!(m.message(false, None).updates.len(), 16);
        // Every item is sent a bounded number of times, then dropped.
        let mut total = 0;
        for _ in 0..200 {
            total += m.message(false, None).updates.len();
        }
        assert!(total < 40 * 4 * 6, "{total}");
        assert!(m.message(false, None).updates.is_empty());
    }

    #[test]
    fn the_next_deadline_is_never_in_the_past_for_a_settled_member() {
        let (mut m, t0) = with_b();
        let p = member_probe(&mut m, t0);
        m.probe_result(&p, ProbeOutcome::Reply(gossip("b", 8082, 0, vec![])), t0);
        // (Within the time b may go unheard before it is suspected.)
        let later = t0 + Duration::from_secs(5);
        // b's address is owned by the member schedule: only the member probe is due.
        assert_eq!(m.next_deadline(), Some(t0 + Duration::from_millis(200)));
        let (probes, _) = m.tick(later);
        assert_eq!(probes.len(), 1);
        assert_eq!(probes[0].member.as_deref(), Some("b"));
        assert_eq!(m.next_deadline(), Some(later + Duration::from_millis(200)));
    }

    #[test]
    fn discovery_probes_are_capped_and_the_first_scan_completes() {
        let (mut m, t0) = node();
        for port in 9000..9040 {
            m.add_target(format!("127.0.0.1:{port}"), t0);
        }
        assert!(!m.first_scan_done());
        let mut now = t0;
        let mut rounds = 0;
        while !m.first_scan_done() {
            let (probes, _) = m.tick(now);
            assert!(probes.len() <= 16, "{}", probes.len());
            assert!(!probes.is_empty(), "no progress");
            assert!(m.tick(now).0.is_empty(), "window full");
            assert!(!m.first_scan_done(), "probes in flight are not done");
            for p in &probes {
                m.probe_result(p, ProbeOutcome::Refused, now);
            }
            now += Duration::from_millis(1);
            rounds += 1;
        }
        assert_eq!(rounds, 3, "40 addresses at 16 at a time");
    }

    #[test]
    fn tombstones_are_forgotten_after_their_ttl() {
        let (mut m, t0) = with_b();
        let p = member_probe(&mut m, t0);
        m.probe_result(&p, ProbeOutcome::Refused, t0);
        assert_eq!(m.members.len(), 1);
        m.tick(t0 + Duration::from_secs(61));
        assert!(m.members.is_empty());
    }

    #[test]
    fn addresses_split_and_format_both_families() {
        assert_eq!(split_addr("127.0.0.1:8081"), Some(("127.0.0.1", 8081)));
        assert_eq!(split_addr("[::1]:8081"), Some(("::1", 8081)));
        assert_eq!(split_addr("host:x"), None);
        assert_eq!(split_addr(":80"), None);
        assert_eq!(fmt_addr("::1", 1), "[::1]:1");
        assert_eq!(fmt_addr("example.org", 2), "example.org:2");
    }
}
