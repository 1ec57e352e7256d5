//! A replica's own limits apply to writes that reach it from peers: a TTL beyond its
//! `REPRAM_MAX_TTL` is cut to it, and a replica without memory for a write does not
//! acknowledge it, so a write that needs it for its quorum is answered 202.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use repram_flux::clock::{now_ms, Version};
use repram_flux::node::{Node, Tuning};
use repram_flux::wire::Entry;
use repram_flux::Config;
use tokio::sync::watch;

use common::*;

/// An entry as a peer would send it, expiring `ttl_ms` from now.
fn entry(key: &str, value: Bytes, ttl_ms: u64) -> Entry {
    let now = now_ms();
    Entry {
        key: key.to_string(),
        value,
        created_ms: now,
        expires_ms: now + ttl_ms,
        version: Version {
            hlc: now << 16,
            origin: 7,
        },
    }
}

#[tokio::test]
async fn a_replicated_entry_lives_no_longer_than_the_replicas_max_ttl() {
    const MAX_TTL_S: u64 = 60;
    let (_stop_tx, stop) = watch::channel(false);
    let config = Arc::new(Config {
        max_ttl: MAX_TTL_S,
        ..Config::for_test()
    });
    let node = Node::new(
        "flux-node-1-00000a".into(),
        1,
        9000,
        config,
        Tuning::default(),
        stop,
    );
    // A peer (faulty, or with another policy) asks for ten days.
    let before = now_ms();
    assert!(node
        .apply_remote(&entry("long", Bytes::from_static(b"v"), 10 * 86_400_000))
        .is_some());
    let r = node.store.get("long").expect("stored");
    // At most the replica's own limit, plus the clock skew it tolerates between nodes.
    let limit = before + MAX_TTL_S * 1000 + 60_000 + 1000;
    assert!(
        r.expires_ms <= limit,
        "expires {} ms from now, beyond the max TTL of {MAX_TTL_S} s",
        r.expires_ms - before
    );
    // Within the limit, the origin's expiry is kept as sent.
    let e = entry("short", Bytes::from_static(b"v"), 30_000);
    node.apply_remote(&e);
    assert_eq!(
        node.store.get("short").map(|r| r.expires_ms),
        Some(e.expires_ms)
    );
}

#[tokio::test]
async fn a_write_a_full_replica_cannot_hold_is_answered_202() {
    let base = free_range(2);
    let config = Config {
        base_port: base,
        max_ports: 2,
        node_count: 1,
        max_value_bytes: 200,
        max_storage_bytes: 200,
        ..Config::for_test()
    };
    // Two processes of one node each: the nodes of one process share their store.
    let writer = repram_flux::start(config.clone(), Tuning::default()).expect("start");
    let replica = repram_flux::start(config, Tuning::default()).expect("start");
    let ports = [writer.ports()[0], replica.ports()[0]];
    wait_until(Duration::from_secs(5), "full mesh", || full_mesh(&ports)).await;
    let full = replica.nodes()[0].clone();
    // Fill the replica (150 + 6 of 200 bytes), as a write that only it got would.
    assert!(full
        .apply_remote(&entry("filler", Bytes::from(vec![b'f'; 150]), 600_000))
        .is_some());

    // 60 more bytes fit on the writer but not on the replica: no quorum of 2.
    let r = request(
        hyper::Method::PUT,
        &format!("http://127.0.0.1:{}/data/k?ttl=60", ports[0]),
        Bytes::from(vec![b'v'; 60]),
        &[],
    )
    .await
    .expect("answer");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["acks"], 1, "{}", r.text());
    // Kept on the writer, refused by the full replica.
    assert!(writer.nodes()[0].store.get("k").is_some());
    assert!(full.store.get("k").is_none());
    writer.shutdown().await;
    replica.shutdown().await;
}
