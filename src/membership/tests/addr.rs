//! Addresses: how members are reached (source IP, loopback on our own host), how a node
//! learns its own host, and `host:port` formatting.

use std::collections::HashMap;
use std::net::IpAddr;

use super::*;

/// `g` arrives, and its sender answers the discovery probe that makes us send: how a
/// node that contacts us becomes a member.
fn hear_from(m: &mut Membership, g: &Gossip, source: Option<IpAddr>, now: Instant) -> Vec<Event> {
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
fn addresses_split_and_format_both_families() {
    assert_eq!(split_addr("127.0.0.1:8081"), Some(("127.0.0.1", 8081)));
    assert_eq!(split_addr("[::1]:8081"), Some(("::1", 8081)));
    assert_eq!(split_addr("host:x"), None);
    assert_eq!(split_addr(":80"), None);
    assert_eq!(fmt_addr("::1", 1), "[::1]:1");
    assert_eq!(fmt_addr("example.org", 2), "example.org:2");
}
