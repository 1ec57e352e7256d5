//! The probe schedule: one member per interval, and when the next tick is due.

use super::*;

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
