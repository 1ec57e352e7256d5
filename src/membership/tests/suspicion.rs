//! Failure detection: suspicion, refutation by incarnation, death and tombstones.

use std::collections::HashMap;

use super::*;

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
fn tombstones_are_forgotten_after_their_ttl() {
    let (mut m, t0) = with_b();
    let p = member_probe(&mut m, t0);
    m.probe_result(&p, ProbeOutcome::Refused, t0);
    assert_eq!(m.members.len(), 1);
    m.tick(t0 + Duration::from_secs(61));
    assert!(m.members.is_empty());
}
