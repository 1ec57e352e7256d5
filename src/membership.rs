//! IO-free membership: which addresses to probe, which peers are alive, and what changed.
//!
//! The driver (in `node.rs`) feeds in probe results and incoming gossip with the current
//! time and acts on the returned [`Event`]s; nothing here sleeps or touches a socket.
//!
//! - Discovery *targets* are addresses (`host:port`) from the domain scan, the seed list
//!   and other nodes' member lists. Addresses without a node behind them are re-probed with
//!   doubling backoff, so an idle range costs little.
//! - *Peers* are identified by node id. A peer is alive while it answers probes or sends
//!   us gossip; with no direct contact for `dead_after` it is declared dead and removed.
//! - A node that announces it is leaving is removed at once; a new id answering at a
//!   known address replaces the old entry.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use crate::wire::{Gossip, NodeInfo};

/// Timing of membership. See [`MembershipConfig::default`] for the values used.
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// How often each live peer is probed.
    pub probe_interval: Duration,
    /// A peer with no successful direct contact for this long is declared dead.
    /// Must exceed `probe_interval` (several probes can fail before a peer is dropped).
    pub dead_after: Duration,
    /// First retry delay for an address where no node answered.
    pub min_backoff: Duration,
    /// Longest retry delay for such an address.
    pub max_backoff: Duration,
}

impl Default for MembershipConfig {
    /// Probe every 500 ms, dead after 2.5 s of silence, empty ports retried from 250 ms
    /// up to every 5 s.
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_millis(500),
            dead_after: Duration::from_millis(2_500),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A change in the set of live peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new peer is alive.
    Joined(NodeInfo),
    /// A peer announced it is leaving and was removed.
    Left(NodeInfo),
    /// A peer stopped answering and was removed.
    Dead(NodeInfo),
    /// A new node id answered at an address that belonged to another id.
    Replaced {
        /// The entry that was removed.
        old: NodeInfo,
        /// The entry that took its place.
        new: NodeInfo,
    },
}

/// A live peer. `info.host`/`info.port` is the address we reach it at.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Identity and reachable address.
    pub info: NodeInfo,
    /// Last successful direct contact (a probe answer or a message from it).
    pub last_seen: Instant,
}

impl Peer {
    /// `host:port` to reach this peer.
    pub fn addr(&self) -> String {
        fmt_addr(&self.info.host, self.info.port)
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
}

/// The membership state of one node.
#[derive(Debug)]
pub struct Membership {
    me: NodeInfo,
    cfg: MembershipConfig,
    peers: HashMap<String, Peer>,
    targets: HashMap<String, Target>,
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

impl Membership {
    /// A node that knows nobody yet.
    pub fn new(me: NodeInfo, cfg: MembershipConfig) -> Self {
        Membership {
            me,
            cfg,
            peers: HashMap::new(),
            targets: HashMap::new(),
        }
    }

    /// This node.
    pub fn me(&self) -> &NodeInfo {
        &self.me
    }

    /// Live peers (never this node).
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// Number of live peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no peer is alive.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The peer with this id, if alive.
    pub fn peer(&self, id: &str) -> Option<&Peer> {
        self.peers.get(id)
    }

    /// Number of discovery addresses known (including those of live peers).
    pub fn target_count(&self) -> usize {
        self.targets.len()
    }

    /// Add an address to probe. New addresses are due at once; known ones are untouched.
    pub fn add_target(&mut self, addr: String, now: Instant) {
        self.targets.entry(addr).or_insert_with(|| Target {
            next_probe: now,
            backoff: Duration::ZERO,
            peer: None,
            is_self: false,
            in_flight: false,
        });
    }

    /// Addresses to probe now (each marked in flight until its result is reported), and
    /// peers declared dead because nothing was heard from them for `dead_after`.
    pub fn poll(&mut self, now: Instant) -> (Vec<String>, Vec<Event>) {
        let mut events = Vec::new();
        let stale: Vec<String> = self
            .peers
            .values()
            .filter(|p| now.saturating_duration_since(p.last_seen) >= self.cfg.dead_after)
            .map(|p| p.info.id.clone())
            .collect();
        for id in stale {
            if let Some(peer) = self.remove_peer(&id, now) {
                events.push(Event::Dead(peer.info));
            }
        }
        let mut due = Vec::new();
        for (addr, t) in &mut self.targets {
            if !t.is_self && !t.in_flight && t.next_probe <= now {
                t.in_flight = true;
                due.push(addr.clone());
            }
        }
        (due, events)
    }

    /// Earliest instant at which [`Membership::poll`] may have work.
    pub fn next_deadline(&self) -> Option<Instant> {
        let probes = self
            .targets
            .values()
            .filter(|t| !t.is_self && !t.in_flight)
            .map(|t| t.next_probe);
        let deaths = self
            .peers
            .values()
            .map(|p| p.last_seen + self.cfg.dead_after);
        probes.chain(deaths).min()
    }

    /// The node at `addr` answered a probe with `reply`.
    pub fn probe_ok(&mut self, addr: &str, reply: &Gossip, now: Instant) -> Vec<Event> {
        let interval = self.cfg.probe_interval;
        let Some(t) = self.targets.get_mut(addr) else {
            return Vec::new();
        };
        t.in_flight = false;
        if reply.from.id == self.me.id {
            t.is_self = true;
            return Vec::new();
        }
        if reply.leaving {
            // It answered, but is on its way out: drop it rather than (re)admit it.
            t.backoff = self.cfg.min_backoff;
            t.next_probe = now + self.cfg.min_backoff;
            let id = reply.from.id.clone();
            return self.leave(&id, now);
        }
        t.backoff = Duration::ZERO;
        t.next_probe = now + interval;
        let Some((host, port)) = split_addr(addr) else {
            return Vec::new();
        };
        let info = NodeInfo {
            id: reply.from.id.clone(),
            host: host.to_string(),
            port,
        };
        let events = self.upsert_peer(addr, info, now);
        let alias = self
            .peers
            .get(&reply.from.id)
            .is_some_and(|p| p.addr() != addr);
        if alias {
            // Another address of a peer we already reach: only check it now and then.
            if let Some(t) = self.targets.get_mut(addr) {
                t.next_probe = now + self.cfg.max_backoff;
            }
        }
        self.learn(&reply.members, now);
        events
    }

    /// Nobody (or nothing sensible) answered at `addr`.
    pub fn probe_failed(&mut self, addr: &str, now: Instant) -> Vec<Event> {
        let (min, max) = (self.cfg.min_backoff, self.cfg.max_backoff);
        let interval = self.cfg.probe_interval;
        let Some(t) = self.targets.get_mut(addr) else {
            return Vec::new();
        };
        t.in_flight = false;
        let live_peer = t.peer.clone().filter(|id| {
            self.peers
                .get(id)
                .is_some_and(|p| fmt_addr(&p.info.host, p.info.port) == addr)
        });
        match live_peer {
            Some(id) => {
                // A peer's own address: keep probing at the normal pace until dead_after.
                t.next_probe = now + interval;
                let silent = self
                    .peers
                    .get(&id)
                    .map(|p| now.saturating_duration_since(p.last_seen))
                    .unwrap_or_default();
                if silent >= self.cfg.dead_after {
                    if let Some(peer) = self.remove_peer(&id, now) {
                        return vec![Event::Dead(peer.info)];
                    }
                }
                Vec::new()
            }
            None => {
                t.backoff = (t.backoff * 2).clamp(min, max);
                t.next_probe = now + t.backoff;
                Vec::new()
            }
        }
    }

    /// Gossip arrived from another node. `source` is the IP it came from, used when the
    /// sender does not know its own host.
    pub fn on_gossip(&mut self, msg: &Gossip, source: Option<IpAddr>, now: Instant) -> Vec<Event> {
        if msg.from.id == self.me.id {
            return Vec::new();
        }
        if msg.leaving {
            return self.leave(&msg.from.id, now);
        }
        let host = if msg.from.host.is_empty() {
            match source {
                Some(ip) => ip.to_string(),
                None => return Vec::new(),
            }
        } else {
            msg.from.host.clone()
        };
        let addr = fmt_addr(&host, msg.from.port);
        let info = NodeInfo {
            id: msg.from.id.clone(),
            host,
            port: msg.from.port,
        };
        self.add_target(addr.clone(), now);
        if let Some(t) = self.targets.get_mut(&addr) {
            t.backoff = Duration::ZERO;
            if t.peer.as_deref() != Some(info.id.as_str()) && !t.in_flight {
                t.next_probe = now + self.cfg.probe_interval;
            }
        }
        let events = self.upsert_peer(&addr, info, now);
        self.learn(&msg.members, now);
        events
    }

    /// The gossip this node sends and answers with.
    pub fn gossip(&self, leaving: bool) -> Gossip {
        Gossip {
            from: self.me.clone(),
            leaving,
            members: self.peers.values().map(|p| p.info.clone()).collect(),
        }
    }

    /// Remove a peer that announced it is leaving.
    fn leave(&mut self, id: &str, now: Instant) -> Vec<Event> {
        match self.remove_peer(id, now) {
            Some(peer) => vec![Event::Left(peer.info)],
            None => Vec::new(),
        }
    }

    fn upsert_peer(&mut self, addr: &str, info: NodeInfo, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        // Another id at this very address is an old incarnation: replace it.
        let previous = self.targets.get(addr).and_then(|t| t.peer.clone());
        if let Some(old_id) = previous.filter(|old| *old != info.id) {
            let owned_here = self.peers.get(&old_id).is_some_and(|p| p.addr() == addr);
            if owned_here {
                if let Some(old) = self.peers.remove(&old_id) {
                    events.push(Event::Replaced {
                        old: old.info,
                        new: info.clone(),
                    });
                }
            }
        }
        if let Some(t) = self.targets.get_mut(addr) {
            t.peer = Some(info.id.clone());
        }
        match self.peers.get_mut(&info.id) {
            // Known under this or another address (an alias): it is alive, keep its address.
            Some(p) => p.last_seen = now,
            None => {
                if !events
                    .iter()
                    .any(|e| matches!(e, Event::Replaced { new, .. } if new.id == info.id))
                {
                    events.push(Event::Joined(info.clone()));
                }
                self.peers.insert(
                    info.id.clone(),
                    Peer {
                        info,
                        last_seen: now,
                    },
                );
            }
        }
        events
    }

    fn remove_peer(&mut self, id: &str, now: Instant) -> Option<Peer> {
        let peer = self.peers.remove(id)?;
        let min = self.cfg.min_backoff;
        for t in self.targets.values_mut() {
            if t.peer.as_deref() == Some(id) {
                t.peer = None;
                t.backoff = min;
                t.next_probe = t.next_probe.max(now + min);
            }
        }
        Some(peer)
    }

    fn learn(&mut self, members: &[NodeInfo], now: Instant) {
        for m in members {
            if m.id != self.me.id && !m.host.is_empty() && !self.peers.contains_key(&m.id) {
                self.add_target(fmt_addr(&m.host, m.port), now);
            }
        }
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

    fn reply(id: &str, port: u16, members: Vec<NodeInfo>) -> Gossip {
        Gossip {
            from: info(id, port),
            leaving: false,
            members,
        }
    }

    fn node() -> (Membership, Instant) {
        (
            Membership::new(info("me", 8081), MembershipConfig::default()),
            Instant::now(),
        )
    }

    #[test]
    fn a_probe_answer_adds_a_peer_once() {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        let (due, _) = m.poll(t0);
        assert_eq!(due, vec!["127.0.0.1:8082".to_string()]);
        assert!(m.poll(t0).0.is_empty(), "in flight: not due twice");
        let ev = m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), t0);
        assert_eq!(ev, vec![Event::Joined(info("b", 8082))]);
        let ev = m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), t0);
        assert!(ev.is_empty());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn answering_with_our_own_id_marks_the_address_as_self() {
        let (mut m, t0) = node();
        m.add_target("10.0.0.1:8081".into(), t0);
        m.poll(t0);
        assert!(m
            .probe_ok("10.0.0.1:8081", &reply("me", 8081, vec![]), t0)
            .is_empty());
        assert!(m.is_empty());
        assert!(m.poll(t0 + Duration::from_secs(60)).0.is_empty());
    }

    #[test]
    fn empty_ports_back_off_up_to_the_limit() {
        let (mut m, t0) = node();
        let a = "127.0.0.1:8090".to_string();
        m.add_target(a.clone(), t0);
        let mut now = t0;
        let mut gaps = Vec::new();
        for _ in 0..8 {
            let (due, _) = m.poll(now);
            assert_eq!(due, vec![a.clone()]);
            m.probe_failed(&a, now);
            let next = m.next_deadline().unwrap();
            gaps.push(next - now);
            now = next;
        }
        let ms: Vec<u128> = gaps.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![250, 500, 1000, 2000, 4000, 5000, 5000, 5000]);
    }

    #[test]
    fn a_silent_peer_is_dead_after_the_timeout_not_before() {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        m.poll(t0);
        m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), t0);
        let mut now = t0;
        let mut died = None;
        while now < t0 + Duration::from_secs(10) {
            now += Duration::from_millis(100);
            let (due, mut ev) = m.poll(now);
            for a in due {
                ev.extend(m.probe_failed(&a, now));
            }
            if !ev.is_empty() {
                assert_eq!(ev, vec![Event::Dead(info("b", 8082))]);
                died = Some(now - t0);
                break;
            }
        }
        assert_eq!(died, Some(Duration::from_millis(2_500)));
        assert!(m.is_empty());
    }

    #[test]
    fn incoming_gossip_keeps_a_peer_alive_and_teaches_its_members() {
        let (mut m, t0) = node();
        let g = reply("b", 8082, vec![info("c", 8083), info("me", 8081)]);
        let ev = m.on_gossip(&g, None, t0);
        assert_eq!(ev, vec![Event::Joined(info("b", 8082))]);
        // c is a target to probe, not yet a peer; our own entry is ignored.
        assert_eq!(m.len(), 1);
        assert_eq!(m.poll(t0).0, vec!["127.0.0.1:8083".to_string()]);
        m.on_gossip(&g, None, t0 + Duration::from_secs(2));
        let (_, ev) = m.poll(t0 + Duration::from_millis(3_000));
        assert!(ev.is_empty(), "heard from b at 2 s");
    }

    #[test]
    fn a_sender_without_host_is_reached_at_its_source_ip() {
        let (mut m, t0) = node();
        let mut g = reply("b", 9000, vec![]);
        g.from.host.clear();
        assert!(m.on_gossip(&g, None, t0).is_empty(), "no way to reach it");
        let ev = m.on_gossip(&g, Some("10.1.2.3".parse().unwrap()), t0);
        assert_eq!(ev.len(), 1);
        assert_eq!(m.peer("b").unwrap().addr(), "10.1.2.3:9000");
        let mut g6 = reply("c", 9001, vec![]);
        g6.from.host.clear();
        m.on_gossip(&g6, Some("::1".parse().unwrap()), t0);
        assert_eq!(m.peer("c").unwrap().addr(), "[::1]:9001");
    }

    #[test]
    fn leaving_removes_at_once() {
        let (mut m, t0) = node();
        m.on_gossip(&reply("b", 8082, vec![]), None, t0);
        let mut bye = reply("b", 8082, vec![]);
        bye.leaving = true;
        assert_eq!(
            m.on_gossip(&bye, None, t0),
            vec![Event::Left(info("b", 8082))]
        );
        assert!(m.is_empty());
        assert!(m.on_gossip(&bye, None, t0).is_empty());
    }

    #[test]
    fn a_probe_answer_from_a_leaving_node_removes_it_instead_of_admitting_it() {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        m.poll(t0);
        m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), t0);
        let later = t0 + Duration::from_secs(1);
        m.poll(later);
        let mut bye = reply("b", 8082, vec![]);
        bye.leaving = true;
        assert_eq!(
            m.probe_ok("127.0.0.1:8082", &bye, later),
            vec![Event::Left(info("b", 8082))]
        );
        assert!(m.is_empty());
        assert!(m.probe_ok("127.0.0.1:8082", &bye, later).is_empty());
    }

    #[test]
    fn a_new_id_at_a_known_address_replaces_the_old_entry() {
        let (mut m, t0) = node();
        m.on_gossip(&reply("b-old", 8082, vec![]), None, t0);
        let ev = m.on_gossip(&reply("b-new", 8082, vec![]), None, t0);
        assert_eq!(
            ev,
            vec![Event::Replaced {
                old: info("b-old", 8082),
                new: info("b-new", 8082)
            }]
        );
        assert_eq!(m.len(), 1);
        assert!(m.peer("b-new").is_some());
    }

    #[test]
    fn one_node_reached_at_two_addresses_is_one_peer() {
        let (mut m, t0) = node();
        m.add_target("127.0.0.1:8082".into(), t0);
        m.add_target("[::1]:8082".into(), t0);
        m.poll(t0);
        m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), t0);
        let ev = m.probe_ok("[::1]:8082", &reply("b", 8082, vec![]), t0);
        assert!(ev.is_empty());
        assert_eq!(m.len(), 1);
        assert_eq!(m.peer("b").unwrap().addr(), "127.0.0.1:8082");
        // Failing probes on the alias never kill the peer while its own address answers.
        let later = t0 + Duration::from_secs(1);
        assert!(m.probe_failed("[::1]:8082", later).is_empty());
        m.poll(later);
        m.probe_ok("127.0.0.1:8082", &reply("b", 8082, vec![]), later);
        assert_eq!(m.len(), 1);
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
