//! Membership believes only proof: forged gossip from a cluster host (127.0.0.1, as a
//! buggy or compromised member) against the real binary. Each test failed before
//! membership required direct contact (see `docs/trust.md`).

mod common;

use std::time::Duration;

use common::forge::{self, FakeNode};
use common::{env_for, free_range, full_mesh, get, put, wait_until, Process};
use repram_flux::wire::MemberState;

/// The node ids and states `/peers` of the node on `port` lists.
async fn peers_of(port: u16) -> Vec<(String, String)> {
    let Some(r) = get(&format!("http://127.0.0.1:{port}/peers")).await else {
        return Vec::new();
    };
    r.json()["peers"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["node_id"].as_str().unwrap_or("").to_string(),
                        p["state"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn node_id(port: u16) -> String {
    let r = get(&format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    r.json()["node_id"].as_str().expect("node_id").to_string()
}

/// One process of `n` nodes (PUTs wait at most 500 ms for their quorum), meshed.
async fn one_process(n: u16) -> (Process, Vec<u16>) {
    let base = free_range(n);
    let mut env = env_for(base, n, n);
    env.push(("REPRAM_WRITE_TIMEOUT_MS", "500".into()));
    let p = Process::start(&env);
    let ports = p.claimed_ports(n as usize).await;
    wait_until(Duration::from_secs(20), "mesh", || full_mesh(&ports)).await;
    (p, ports)
}

/// A process of 2 nodes and one of 1 node on one range, meshed: (processes, the first's
/// ports, the second's port).
async fn two_processes() -> (Process, Process, Vec<u16>, u16) {
    let base = free_range(3);
    let a = Process::start(&env_for(base, 3, 2));
    let pa = a.claimed_ports(2).await;
    let b = Process::start(&env_for(base, 3, 1));
    let pb = b.claimed_ports(1).await[0];
    let all = vec![pa[0], pa[1], pb];
    wait_until(Duration::from_secs(20), "3-node mesh", || full_mesh(&all)).await;
    (a, b, pa, pb)
}

async fn put_status(port: u16, key: &str) -> u16 {
    put(&format!("http://127.0.0.1:{port}/data/{key}?ttl=60"), b"v")
        .await
        .map_or(0, |r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_with_2000_fake_members_makes_none_a_member() {
    let (_p, ports) = one_process(2).await;
    let fakes = (1..=2000)
        .map(|i| {
            // Loopback addresses where no node of these tests listens.
            let mut n = forge::node(&forge::fake_id(i), i as u16);
            n.host = "127.77.0.1".into();
            forge::news(n, 0, MemberState::Alive)
        })
        .collect();
    let mut from = forge::node(&forge::fake_id(0), 1);
    from.host = "127.77.0.1".into();
    let msg = forge::message(from, fakes);
    assert!(forge::gossip(ports[0], msg).await.is_some(), "accepted");
    // The message has been handled when its answer arrives.
    let listed = peers_of(ports[0]).await;
    assert_eq!(
        listed.len(),
        1,
        "only the sibling is a member: {}",
        listed.len()
    );
    // Writes still reach their quorum (no fake is a replica that must acknowledge).
    for i in 0..5 {
        assert_eq!(put_status(ports[0], &format!("flood-{i}")).await, 201);
    }
    for &p in &ports {
        let listed = peers_of(p).await;
        assert!(
            listed.iter().all(|(id, _)| !id.contains("-fake")),
            "a fake member is listed on {p}: {listed:?}"
        );
        assert_eq!(listed.len(), 1, "{listed:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_answering_stops_costing_writes_their_quorum() {
    let (_p, ports) = one_process(2).await;
    let p0 = ports[0];
    // A node of another process that answers probes: a real member, whose copy of every
    // write the quorum needs (one copy outside the writer's process).
    let fake = FakeNode::start(&forge::fake_id(7)).await;
    let hello = forge::message(fake.info.clone(), vec![]);
    assert!(forge::gossip(p0, hello).await.is_some());
    let id = fake.info.id.clone();
    wait_until(
        Duration::from_secs(10),
        "the answering fake is a member",
        || {
            let id = id.clone();
            async move { peers_of(p0).await.iter().any(|(p, _)| *p == id) }
        },
    )
    .await;
    fake.fall_silent();
    // It hangs now. Before it is declared dead (while /peers still lists it), writes are
    // durable again: a member not answering is not counted for quorum.
    wait_until(
        Duration::from_secs(30),
        "a 201 while the silent member is still listed",
        || {
            let id = id.clone();
            async move {
                let before = peers_of(p0).await.iter().any(|(p, _)| *p == id);
                let status = put_status(p0, "silent").await;
                let after = peers_of(p0).await.iter().any(|(p, _)| *p == id);
                before && after && status == 201
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_declared_dead_at_incarnation_max_stays_a_member() {
    let (_a, _b, pa, pb) = two_processes().await;
    let victim = node_id(pb).await;
    let accusation = forge::news(forge::node(&victim, pb), u64::MAX, MemberState::Dead);
    let liar = forge::node(&forge::fake_id(3), 1);
    // Told to a node of the other process, and to the victim itself (which must refute
    // without overflowing its incarnation).
    for port in [pa[0], pb] {
        let msg = forge::message(liar.clone(), vec![accusation.clone()]);
        assert!(
            forge::gossip(port, msg).await.is_some(),
            "accepted by {port}"
        );
    }
    let listed = peers_of(pa[0]).await;
    assert!(
        listed.iter().any(|(id, _)| *id == victim),
        "the victim was removed at once: {listed:?}"
    );
    // It answers its probes, so every other node lists it as alive again, and it never
    // disappears meanwhile.
    wait_until(
        Duration::from_secs(20),
        "victim alive on both other nodes",
        || {
            let victim = victim.clone();
            let pa = pa.clone();
            async move {
                let mut all = true;
                for p in pa {
                    let listed = peers_of(p).await;
                    let state = listed.iter().find(|(id, _)| *id == victim);
                    assert!(state.is_some(), "victim gone from {p}: {listed:?}");
                    all &= state.is_some_and(|(_, s)| s == "alive");
                }
                all
            }
        },
    )
    .await;
    let r = get(&format!("http://127.0.0.1:{pb}/health")).await;
    assert!(
        r.is_some_and(|r| r.status == 200),
        "the victim still serves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_leave_for_another_node_changes_nothing() {
    let (_a, _b, pa, pb) = two_processes().await;
    let victim = node_id(pb).await;
    // The victim "itself" says it leaves (a forged sender field) ...
    let mut bye = forge::message(forge::node(&victim, pb), vec![]);
    bye.leaving = true;
    assert!(forge::gossip(pa[0], bye).await.is_some());
    let listed = peers_of(pa[0]).await;
    assert!(
        listed.iter().any(|(id, _)| *id == victim),
        "removed by a forged leave: {listed:?}"
    );
    // ... and somebody else says it left.
    let left = forge::news(forge::node(&victim, pb), 0, MemberState::Left);
    let msg = forge::message(forge::node(&forge::fake_id(4), 1), vec![left]);
    assert!(forge::gossip(pa[1], msg).await.is_some());
    let listed = peers_of(pa[1]).await;
    assert!(
        listed.iter().any(|(id, _)| *id == victim),
        "removed by news of its leaving: {listed:?}"
    );
    // Its own answers keep it alive everywhere.
    wait_until(Duration::from_secs(20), "victim alive everywhere", || {
        let victim = victim.clone();
        let pa = pa.clone();
        async move {
            let mut all = true;
            for p in pa {
                let listed = peers_of(p).await;
                let state = listed.iter().find(|(id, _)| *id == victim);
                assert!(state.is_some(), "victim gone from {p}: {listed:?}");
                all &= state.is_some_and(|(_, s)| s == "alive");
            }
            all
        }
    })
    .await;
    // Writes on the first process still get the victim's acknowledgement (the copy
    // outside their process).
    assert_eq!(put_status(pa[0], "after-forged-leave").await, 201);
}
