//! Clocks: forged future versions and peers an hour ahead or behind, against the real
//! binary. The skewed peer is a second process run with the test hook
//! `REPRAM_TEST_CLOCK_OFFSET_MS` (a host with a wrong clock); forged entries come from
//! the forging client on 127.0.0.1. Each test failed before entries beyond the tolerated
//! skew were refused and expired ones stopped being acknowledged (see `docs/trust.md`).

mod common;

use std::time::Duration;

use common::forge;
use common::{env_for, free_range, full_mesh, get, put, wait_until, Process};

const HOUR_MS: i64 = 3_600_000;

async fn status_of(port: u16, key: &str) -> (u16, String) {
    get(&format!("http://127.0.0.1:{port}/data/{key}"))
        .await
        .map_or((0, String::new()), |r| (r.status, r.text()))
}

/// PUT `value` under `key` with `ttl` seconds on `port`: (status, acks).
async fn put_acks(port: u16, key: &str, value: &'static [u8], ttl: u64) -> (u16, u64) {
    let r = put(
        &format!("http://127.0.0.1:{port}/data/{key}?ttl={ttl}"),
        value,
    )
    .await
    .expect("PUT answered");
    let acks = r.json()["acks"].as_u64().expect("acks");
    (r.status, acks)
}

/// A normal process of 2 nodes and one of 1 node whose clock is `offset_ms` off, meshed.
async fn with_skewed_peer(offset_ms: i64) -> (Process, Process, Vec<u16>, u16) {
    let base = free_range(3);
    let a = Process::start(&env_for(base, 3, 2));
    let pa = a.claimed_ports(2).await;
    let mut env = env_for(base, 3, 1);
    env.push(("REPRAM_TEST_CLOCK_OFFSET_MS", offset_ms.to_string()));
    env.push(("REPRAM_WRITE_TIMEOUT_MS", "1000".into()));
    let b = Process::start(&env);
    let pb = b.claimed_ports(1).await[0];
    let all = vec![pa[0], pa[1], pb];
    wait_until(Duration::from_secs(20), "3-node mesh", || full_mesh(&all)).await;
    (a, b, pa, pb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_write_ten_years_ahead_does_not_win() {
    let base = free_range(3);
    let p = Process::start(&env_for(base, 3, 3));
    let ports = p.claimed_ports(3).await;
    wait_until(Duration::from_secs(20), "mesh", || full_mesh(&ports)).await;
    let url = format!("http://127.0.0.1:{}/data/doc?ttl=600", ports[0]);
    assert_eq!(put(&url, b"first").await.map(|r| r.status), Some(201));
    // Ten years ahead, straight to every node.
    let ten_years = 10 * 365 * 24 * HOUR_MS as u64;
    let forged = forge::entry("doc", b"forged", forge::now_plus(ten_years), 600_000, 42);
    let mut acked = Vec::new();
    for &port in &ports {
        acked.push(forge::replicate(port, vec![forged.clone()]).await);
    }
    // Later writes of the key are what every node serves.
    assert_eq!(put(&url, b"second").await.map(|r| r.status), Some(201));
    common::wait_for_value(&ports, "doc", "second").await;
    assert!(
        acked.iter().all(|a| *a == Some(0)),
        "the forged entry was acknowledged: {acked:?}"
    );
    for &port in &ports {
        let refused = common::metric(port, "repram_entries_refused_total{reason=\"future\"}").await;
        assert!(refused >= 1.0, "refusal not counted on {port}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_an_hour_ahead_neither_wins_conflicts_nor_keeps_short_values() {
    let (a, _b, pa, pb) = with_skewed_peer(HOUR_MS).await;
    // A conflict: the normal cluster writes first, the peer an hour ahead after. (The
    // peer ahead does not acknowledge the first: by its clock it expired long ago.)
    put_acks(pa[0], "conflict", b"normal", 600).await;
    put_acks(pb, "conflict", b"ahead", 600).await;
    // A short value from the peer ahead: by its clock it lives 5 s, by ours an hour.
    let (_, acks) = put_acks(pb, "short", b"five-seconds", 5).await;
    assert_eq!(
        acks, 1,
        "nodes that will not keep the value acknowledged it"
    );
    for &p in &pa {
        assert_eq!(
            status_of(p, "conflict").await,
            (200, "normal".into()),
            "the peer an hour ahead won on {p}"
        );
        assert_eq!(status_of(p, "short").await.0, 404, "stored on {p}");
    }
    // The normal nodes see the skew, warn about it by name, and show it in /status.
    let ahead_id = get(&format!("http://127.0.0.1:{pb}/health"))
        .await
        .expect("health")
        .json()["node_id"]
        .as_str()
        .expect("id")
        .to_string();
    let url = format!("http://127.0.0.1:{}/status", pa[0]);
    wait_until(
        Duration::from_secs(10),
        "skew of the peer in /status",
        || {
            let (url, id) = (url.clone(), ahead_id.clone());
            async move {
                let Some(r) = get(&url).await else {
                    return false;
                };
                let s = r.json();
                s["clock"]["peers"].as_array().is_some_and(|ps| {
                    ps.iter().any(|p| {
                        p["node_id"] == id.as_str()
                            && p["skew_ms"]
                                .as_i64()
                                .is_some_and(|ms| ms > HOUR_MS - 60_000)
                            && p["beyond_max_skew"] == true
                    })
                })
            }
        },
    )
    .await;
    let log = a.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("CLOCK SKEW") && l.contains(&ahead_id)),
        "no loud warning naming {ahead_id}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_an_hour_behind_gets_no_acknowledgement_that_is_not_readable() {
    let (_a, _b, pa, pb) = with_skewed_peer(-HOUR_MS).await;
    // Its write expires, by every normal clock, 50 minutes before it was made.
    let (status, acks) = put_acks(pb, "late", b"behind", 600).await;
    let readable = readable_on(&[pa[0], pa[1], pb], "late").await;
    assert!(
        acks <= readable,
        "{status} with {acks} acks, readable on {readable} nodes"
    );
    // Writes of the normal nodes are dated an hour ahead of its clock: it refuses them,
    // and does not acknowledge them either.
    let (status, acks) = put_acks(pa[0], "early", b"normal", 600).await;
    let readable = readable_on(&[pa[0], pa[1], pb], "early").await;
    assert!(
        acks <= readable,
        "{status} with {acks} acks, readable on {readable} nodes"
    );
}

/// On how many of `ports` `key` is readable.
async fn readable_on(ports: &[u16], key: &str) -> u64 {
    let mut n = 0;
    for &p in ports {
        n += u64::from(status_of(p, key).await.0 == 200);
    }
    n
}
