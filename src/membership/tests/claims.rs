//! Claims only a member can prove by its own answer: that it leaves, and that a new id
//! now serves at its address.

use super::*;

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
