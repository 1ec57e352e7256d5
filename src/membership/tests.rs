//! The protocol simulated: one node fed probe outcomes and messages on a virtual clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::wire::{Gossip, MemberState, NodeInfo, Update};

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
