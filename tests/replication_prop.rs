//! Property test of convergence: random writes on random nodes, replication messages
//! dropped, duplicated, reordered and cut by partitions; after anti-entropy rounds every
//! node holds the same key -> (value, version, expiry) map, and once TTLs run out nothing
//! is readable anywhere, even when stale duplicates arrive late.
//!
//! Drives the real node code (`Node::put`, `Node::apply_remote`, `Node::fetch`, store
//! digests) without sockets; time is tokio's paused clock.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use repram_flux::antientropy;
use repram_flux::node::{Node, Tuning};
use repram_flux::wire::Entry;
use repram_flux::Config;
use tokio::sync::watch;

#[derive(Clone, Debug)]
struct Write {
    node: usize,
    key: u8,
    value: u16,
    ttl_s: u64,
}

#[derive(Clone, Debug)]
struct Fate {
    drop: bool,
    duplicate: bool,
}

fn nodes(n: usize, stop: &watch::Receiver<bool>) -> Vec<Arc<Node>> {
    let config = Arc::new(Config {
        min_ttl: 1,
        ..Config::for_test()
    });
    let tuning = Tuning {
        wall_ms: sim_wall_ms,
        ..Tuning::default()
    };
    (0..n)
        .map(|i| {
            let id = format!("flux-node-{}-{i:06x}", i + 1);
            let port = 9000 + i as u16;
            Node::new(
                id,
                i + 1,
                port,
                config.clone(),
                tuning.clone(),
                stop.clone(),
            )
        })
        .collect()
}

/// A wall clock that follows tokio's (paused) clock.
fn sim_wall_ms() -> u64 {
    static ANCHOR: OnceLock<tokio::time::Instant> = OnceLock::new();
    let anchor = *ANCHOR.get_or_init(tokio::time::Instant::now);
    let since = tokio::time::Instant::now().saturating_duration_since(anchor);
    1_700_000_000_000 + since.as_millis() as u64
}

fn entry(node: &Node, key: &str) -> Option<Entry> {
    let r = node.store.get(key)?;
    Some(Entry {
        key: key.to_string(),
        value: r.value,
        created_ms: r.created_ms,
        expires_ms: r.expires_ms,
        version: r.version,
    })
}

/// One anti-entropy pull of `to` from `from` (the same three steps as over HTTP, with
/// every write counted as settled).
fn pull(to: &Node, from: &Node) {
    let diff = antientropy::differing(&from.store.digest(), &to.store.digest());
    let versions = from.store.versions_in(&diff, u64::MAX);
    let wanted: Vec<String> = antientropy::wanted(&versions, |k| to.store.version(k))
        .into_iter()
        .map(String::from)
        .collect();
    for chunk in wanted.chunks(antientropy::FETCH_CHUNK) {
        if let repram_flux::wire::Message::Replicate(entries) = from.fetch(chunk) {
            for e in &entries {
                to.apply_remote(e);
            }
        }
    }
}

type View = BTreeMap<String, (Bytes, u64, u64, u64)>;

fn view(node: &Node) -> View {
    let (keys, _) = node.store.keys("", None, usize::MAX);
    keys.into_iter()
        .filter_map(|k| {
            let r = node.store.get(&k)?;
            Some((k, (r.value, r.version.hlc, r.version.origin, r.expires_ms)))
        })
        .collect()
}

fn run(n: usize, writes: Vec<Write>, fates: Vec<Fate>, partition_at: usize, order_seed: u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (_tx, stop) = watch::channel(false);
        let nodes = nodes(n, &stop);
        let mut in_flight: Vec<(usize, Entry)> = Vec::new();
        let mut fates = fates.into_iter().cycle();
        for (i, w) in writes.iter().enumerate() {
            let key = format!("k{}", w.key);
            let value = Bytes::from(w.value.to_be_bytes().to_vec());
            let origin = &nodes[w.node % n];
            origin
                .put(key.clone(), value, w.ttl_s)
                .await
                .expect("stored");
            let Some(e) = entry(origin, &key) else {
                continue;
            };
            // A partition splits even and odd nodes for the writes after `partition_at`.
            let cut = i >= partition_at;
            for to in (0..n).filter(|&t| t != w.node % n) {
                if cut && to % 2 != (w.node % n) % 2 {
                    continue;
                }
                let fate = fates.next().unwrap_or(Fate {
                    drop: false,
                    duplicate: false,
                });
                if !fate.drop {
                    in_flight.push((to, e.clone()));
                }
                if fate.duplicate {
                    in_flight.push((to, e.clone()));
                }
            }
        }
        // Deliver in a scrambled order (older versions may arrive after newer ones).
        let mut rng = order_seed | 1;
        let len = in_flight.len();
        for i in (1..len).rev() {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            in_flight.swap(i, (rng % (i as u64 + 1)) as usize);
        }
        for (to, e) in &in_flight {
            nodes[*to].apply_remote(e);
        }
        // Heal: two rounds of pulls between every pair.
        for _ in 0..2 {
            for a in 0..n {
                for b in 0..n {
                    if a != b {
                        pull(&nodes[a], &nodes[b]);
                    }
                }
            }
        }
        let first = view(&nodes[0]);
        for (i, node) in nodes.iter().enumerate().skip(1) {
            assert_eq!(view(node), first, "node {i} differs from node 0");
        }
        // Every key holds the newest version written to it.
        for node in &nodes {
            for (k, (_, hlc, origin, _)) in view(node) {
                let newest = nodes
                    .iter()
                    .filter_map(|n| n.store.version(&k))
                    .max()
                    .expect("someone has it");
                assert_eq!((hlc, origin), (newest.hlc, newest.origin));
            }
        }
        // After every TTL, nothing is readable, even when stale copies arrive late.
        tokio::time::advance(Duration::from_secs(11)).await;
        for (to, e) in &in_flight {
            nodes[*to].apply_remote(e);
        }
        for node in &nodes {
            assert!(view(node).is_empty(), "expired data readable");
            for w in &writes {
                assert!(node.store.get(&format!("k{}", w.key)).is_none());
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_network_does(
        n in 2usize..6,
        writes in prop::collection::vec(
            (0usize..6, 0u8..12, any::<u16>(), 1u64..10)
                .prop_map(|(node, key, value, ttl_s)| Write { node, key, value, ttl_s }),
            1..60,
        ),
        fates in prop::collection::vec(
            (prop::bool::weighted(0.3), prop::bool::weighted(0.2))
                .prop_map(|(drop, duplicate)| Fate { drop, duplicate }),
            1..100,
        ),
        partition_at in 0usize..80,
        order_seed in any::<u64>(),
    ) {
        run(n, writes, fates, partition_at, order_seed);
    }
}
