//! Entries as records in blocks: random writes of all sizes, expiries and purges in one
//! shard, checked against a model after every step; blocks emptied as entries leave.

use std::collections::HashMap;

use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::time::advance;

use super::*;
use crate::store::entry::PACKED_VALUE_MAX;

/// A store whose keys all land in shard 0, on `bits` bits of tag.
fn one_shard(bits: u32) -> Store {
    Store::with_tags(
        u64::MAX,
        Tags::masked((1 << bits) - 1),
        PurgedBytes::default(),
    )
}

fn blocks(store: &Store) -> (usize, usize, usize) {
    store.shared.shards[0].lock().records.usage()
}

/// A record with a value of `len` bytes, creation time `created_ms` and expiry `ttl_ms`
/// after it, and HLC `hlc` (whose wall-clock part may differ from the creation time).
fn sized(len: usize, fill: u8, created_ms: u64, ttl_ms: u64, hlc: u64) -> Record {
    Record {
        value: Bytes::from(vec![fill; len]),
        created_ms,
        expires_ms: created_ms.saturating_add(ttl_ms),
        expires_at: Instant::now() + Duration::from_millis(ttl_ms.min(50_000)),
        version: version(hlc),
    }
}

/// Versions of more origins than a shard's table of origins holds (65,536) keep their
/// origin, in records of both layouts, through compaction and overwrites.
#[tokio::test(start_paused = true)]
async fn origins_past_the_table_are_stored_whole() {
    let store = one_shard(27);
    let n = (1u64 << 16) + 500;
    let origin = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let key = |i: u64| format!("o{i}");
    for i in 0..n {
        let mut r = sized(
            (i % 7) as usize * 300,
            1,
            now_ms(),
            10_000 + i % 3 * 60_000,
            7,
        );
        r.version.origin = origin(i);
        store.apply(&key(i), r).unwrap();
    }
    // Expire two keys in three, so blocks are emptied and records move.
    advance(Duration::from_secs(20)).await;
    store.purge_expired();
    check_all(&store);
    for i in (0..n).filter(|i| i % 3 != 0) {
        let got = store.get(&key(i)).map(|r| r.version);
        assert_eq!(
            got,
            Some(Version {
                hlc: 7,
                origin: origin(i)
            }),
            "{i}"
        );
    }
    // Overwrites by later origins (the table is full: stored whole) replace them.
    for i in (0..n).step_by(1000) {
        let mut r = sized(10, 2, now_ms(), 60_000, 8);
        r.version.origin = origin(n + i);
        store.apply(&key(i), r).unwrap();
        assert_eq!(
            store.version(&key(i)).map(|v| v.origin),
            Some(origin(n + i))
        );
    }
    check_all(&store);
}

async fn against_model(store: Store, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut model: HashMap<String, Record> = HashMap::new();
    let mut hlc = 1 << 16;
    for step in 0..6000 {
        let key = format!("key-{}", rng.gen_range(0..800));
        match rng.gen_range(0..20) {
            0..=15 => {
                // Mostly small values, some just above and below the packed limit.
                let len = match rng.gen_range(0..10) {
                    0 => rng.gen_range(PACKED_VALUE_MAX - 2..PACKED_VALUE_MAX + 3),
                    1 => rng.gen_range(0..4000),
                    _ => rng.gen_range(0..600),
                };
                hlc += 1;
                let wall = hlc >> 16;
                let created = if rng.gen_bool(0.5) { wall } else { rng.gen() };
                let ttl = match rng.gen_range(0..8) {
                    0 => u64::from(u32::MAX) + rng.gen_range(0..5),
                    1 => u64::MAX,
                    _ => rng.gen_range(1..20_000),
                };
                let mut r = sized(len, step as u8, created, ttl, hlc);
                r.version.origin = [1, 2, u64::MAX][rng.gen_range(0..3)];
                assert!(store.apply(&key, r.clone()).is_ok(), "step {step}");
                model.insert(key, r);
            }
            16..=18 => {
                let now = Instant::now();
                let want = model.get(&key).filter(|r| r.expires_at > now);
                assert_eq!(store.get(&key).as_ref(), want, "step {step}: {key}");
            }
            _ => {
                advance(Duration::from_millis(rng.gen_range(0..3000))).await;
                store.purge_expired();
                let now = Instant::now();
                model.retain(|_, r| r.expires_at > now);
                assert_eq!(store.len(), model.len(), "step {step}");
            }
        }
        if step % 100 == 0 {
            check_all(&store);
        }
    }
    check_all(&store);
    for (key, r) in &model {
        let now = Instant::now();
        let want = Some(r).filter(|r| r.expires_at > now);
        assert_eq!(store.get(key).as_ref(), want, "{key}");
    }
    advance(Duration::from_secs(60)).await;
    store.purge_expired();
    assert_eq!(
        blocks(&store),
        (0, 0, 0),
        "every block freed once all expired"
    );
    check_all(&store);
}

#[tokio::test(start_paused = true)]
async fn records_of_every_size_match_a_model() {
    against_model(one_shard(27), 1).await;
}

/// The same with every key on one of four tags: moving a record finds its map slot by
/// handle among look-alikes.
#[tokio::test(start_paused = true)]
async fn records_on_colliding_tags_match_a_model() {
    against_model(one_shard(2), 2).await;
}

/// When most keys expire, the blocks holding the rest are emptied into few: memory
/// follows the live bytes, not the peak.
#[tokio::test(start_paused = true)]
async fn sparse_blocks_are_emptied() {
    let store = one_shard(27);
    for i in 0..4000u64 {
        // One key in five lives an hour; the rest a second.
        let ttl = if i % 5 == 0 { 3_600_000 } else { 1_000 };
        let r = sized(200, 1, now_ms(), ttl, i + 1);
        store.apply(&format!("k{i:05}"), r).unwrap();
    }
    let (full, _, _) = blocks(&store);
    advance(Duration::from_secs(2)).await;
    store.purge_expired();
    let (left, live, _) = blocks(&store);
    assert_eq!(store.len(), 800);
    assert!(
        left * 4 <= full + 4,
        "{left} of {full} blocks left for {live} bytes"
    );
    check_all(&store);
    for i in (0..4000u64).step_by(5) {
        assert_eq!(
            value(&store, &format!("k{i:05}")).map(|v| v.len()),
            Some(200)
        );
    }
}
