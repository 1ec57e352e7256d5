//! Property test of convergence: random writes on random nodes, replication messages
//! dropped, duplicated, reordered and cut by partitions; after anti-entropy rounds every
//! node holds exactly what the test wrote: per key, the write with the newest version the
//! writing node assigned (last writer wins), with its value and expiry. Once TTLs run out
//! nothing is readable anywhere, even when stale duplicates arrive late.
//!
//! Drives the real node code without sockets: `Node::put`, `Node::apply_remote`, and the
//! node's own anti-entropy round (`Node::anti_entropy_round`: its pacer, its settle window,
//! its pull) with each sync message handed to the peer's own handlers in memory; time is
//! tokio's paused clock.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use proptest::prelude::*;
use repram_flux::antientropy::{Pacer, SETTLE_MS};
use repram_flux::clock::Version;
use repram_flux::node::{Node, Tuning};
use repram_flux::transport::CallError;
use repram_flux::wire::{Entry, Message};
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

/// What `peer` answers to a sync message: the handlers the HTTP route calls.
async fn answer(peer: &Node, msg: Message) -> Result<Message, CallError> {
    match msg {
        Message::Digest(d) => Ok(peer.versions_for(&d)),
        Message::Fetch(keys) => Ok(peer.fetch(&keys)),
        other => Err(CallError::Http(format!("unexpected {}", other.kind()))),
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
        // The model: per key, the newest write the test made (by the version its origin
        // assigned), as (value, hlc, origin, expires_ms).
        let mut model = View::new();
        let mut fates = fates.into_iter().cycle();
        for (i, w) in writes.iter().enumerate() {
            let key = format!("k{}", w.key);
            let value = Bytes::from(w.value.to_be_bytes().to_vec());
            let origin = &nodes[w.node % n];
            origin
                .put(key.clone(), value.clone(), w.ttl_s)
                .await
                .expect("stored");
            // The writing node serves its own write at once: that is the version it gave it.
            let e = entry(origin, &key).expect("the origin holds its own write");
            assert_eq!(e.value, value, "the origin serves its own write");
            let written = (
                e.value.clone(),
                e.version.hlc,
                e.version.origin,
                e.expires_ms,
            );
            let newer = model.get(&key).map_or(true, |&(_, hlc, o, _)| {
                e.version > Version { hlc, origin: o }
            });
            if newer {
                model.insert(key.clone(), written);
            }
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
        // Heal with the nodes' own periodic rounds, once every write has settled: each
        // round, every node pulls from the next peer in turn (every pair meets every n-1
        // rounds), its pacer skipping rounds as it would in production.
        tokio::time::advance(Duration::from_millis(SETTLE_MS + 1)).await;
        let mut pacers: Vec<Pacer> = (0..n).map(|_| Pacer::default()).collect();
        let mut rounds = 0;
        while rounds < 200 && !nodes.iter().all(|node| view(node) == model) {
            for a in 0..n {
                let b = (a + 1 + rounds % (n - 1)) % n;
                let peer = &nodes[b];
                let round = nodes[a]
                    .anti_entropy_round(&mut pacers[a], |msg| answer(peer, msg))
                    .await;
                if let Some(result) = round {
                    result.expect("an in-memory round cannot fail");
                }
            }
            rounds += 1;
        }
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(
                view(node),
                model,
                "node {i} after {rounds} rounds does not hold the newest write of every key"
            );
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
        // TTLs from 3 s: no write expires within the settle window before the heal.
        writes in prop::collection::vec(
            (0usize..6, 0u8..12, any::<u16>(), 3u64..10)
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
