//! News in messages: candidates from unknown members, full lists and bounded piggyback.

use super::*;

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
