//! Discovery: probing addresses where no member may be known yet, and backing off.

use super::*;

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
