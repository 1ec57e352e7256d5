//! The protocol simulated: one node fed probe outcomes and messages on a virtual clock.
//! One file per concern; here the helpers they share.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::wire::{Gossip, MemberState, NodeInfo, Update};

mod addr;
mod claims;
mod discovery;
mod news;
mod schedule;
mod suspicion;

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

fn node() -> (Membership, Instant) {
    let now = Instant::now();
    (
        Membership::new(info("me", 8081), MembershipConfig::default(), 1, now),
        now,
    )
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
