//! The expiry index: slots, `near`, and their moves, kept exact through writes.

use std::sync::MutexGuard;

use tokio::time::advance;

use super::*;
use crate::store::expiry::{slot_end, slot_of, slot_start};
use crate::store::purge::PURGE_BATCH;

/// A store whose keys all land in shard 0 (tags keep 27 bits).
fn one_shard_store() -> Store {
    Store::with_tags(
        u64::MAX,
        Tags::masked(u32::MAX >> SHARD_BITS),
        PurgedBytes::default(),
    )
}

/// Shard 0 of a store whose other shards are empty.
fn only(store: &Store) -> MutexGuard<'_, State> {
    let shards = &store.shared.shards;
    assert!(shards[1..].iter().all(|s| s.lock().map.is_empty()));
    shards[0].lock()
}

/// Overwrites move entries between slots and into `near`; the index keeps exactly one
/// record per entry, and slots give back memory as they empty.
#[tokio::test(start_paused = true)]
async fn overwrites_keep_the_index_exact() {
    let store = one_shard_store();
    let keys = 1000;
    let ttls = [3_600_000, 7_200_000, 5_000, 100];
    for round in 0..40u64 {
        let ttl = ttls[round as usize % ttls.len()];
        for k in 0..keys {
            store.apply(&format!("k{k}"), rec("v", ttl, round)).unwrap();
        }
        advance(Duration::from_millis(50)).await;
        if round % 7 == 0 {
            store.purge_expired();
        }
        let state = only(&store);
        state.check_index(&store.shared.tags);
        assert_eq!(state.index.len(), state.map.len(), "round {round}");
        let capacity: usize = state.index.far.values().map(|s| s.tags.capacity()).sum();
        assert!(capacity <= 2 * keys + 16 * state.index.far.len());
    }
    // All in one slot, then 90% leave it: the slot gives back its room.
    for k in 0..keys {
        store
            .apply(&format!("k{k}"), rec("v", 3_600_000, 100))
            .unwrap();
    }
    for k in 0..keys * 9 / 10 {
        store.apply(&format!("k{k}"), rec("v", 100, 101)).unwrap();
    }
    advance(Duration::from_secs(1)).await;
    store.purge_expired();
    let state = only(&store);
    state.check_index(&store.shared.tags);
    assert_eq!(state.map.len(), keys / 10);
    let capacity: usize = state.index.far.values().map(|s| s.tags.capacity()).sum();
    assert!(capacity <= 4 * keys / 10, "{capacity}");
}

/// One lock's worth of [`Store::purge_expired`], with a work budget of `budget`.
fn one_purge_batch(store: &Store, budget: usize) -> (usize, bool) {
    let now = store.shared.offset(Instant::now());
    let mut freed = Vec::new();
    let mut state = only(store);
    let (tags, totals) = (&store.shared.tags, &store.shared.totals);
    let (removed, _, done) = state.purge_due(now, budget, tags, totals, &mut freed);
    (removed, done)
}

/// A slot that has wholly expired is freed a batch at a time, without going through
/// `near`; writes between batches keep the index exact.
#[tokio::test(start_paused = true)]
async fn an_expired_slot_is_freed_in_batches() {
    let store = Store::with_tags(u64::MAX, Tags::masked(0xff), PurgedBytes::default());
    let n = 3 * PURGE_BATCH;
    for i in 0..n {
        store.apply(&format!("k{i}"), rec("v", 1000, 1)).unwrap();
    }
    store.apply("live", rec("v", 60_000, 1)).unwrap();
    let s = slot_of(store.shared.offset(Instant::now() + Duration::from_secs(1)));
    advance(Duration::from_secs(2)).await;
    assert!(
        slot_end(s) <= store.shared.offset(Instant::now()),
        "the slot is over"
    );
    assert_eq!(one_purge_batch(&store, 1000), (1000, false));
    let tags = &store.shared.tags;
    assert!(only(&store).index.near.is_empty());
    only(&store).check_index(tags);
    // Between batches: expired keys written again (their old entries leave the slot).
    for i in (0..n).step_by(89) {
        assert_eq!(
            store.apply(&format!("k{i}"), rec("w", 5000, 2)),
            Ok(Applied::Inserted)
        );
    }
    only(&store).check_index(tags);
    let rewritten = (0..n).step_by(89).count();
    let gone_before = (0..n).step_by(89).filter(|&i| i >= n - 1000).count();
    assert_eq!(store.purge_expired(), n - 1000 - (rewritten - gone_before));
    assert!(!only(&store).index.far.contains_key(&s));
    assert_eq!(store.len(), rewritten + 1);
    only(&store).check_index(tags);
}

/// The purge moves a slot into `near` a batch at a time; between batches, writes,
/// overwrites and removals in that slot keep the index exact.
#[tokio::test(start_paused = true)]
async fn a_slot_moves_into_near_in_batches() {
    let store = Store::with_tags(u64::MAX, Tags::masked(0xff), PurgedBytes::default());
    let n = 3 * PURGE_BATCH;
    // All in one slot, 2 s from now, a microsecond apart.
    for i in 0..n {
        let mut r = rec("v", 2000, 1);
        r.expires_at += Duration::from_micros(i as u64);
        store.apply(&format!("k{i}"), r).unwrap();
    }
    let s = slot_of(store.shared.offset(Instant::now() + Duration::from_secs(2)));
    advance(Duration::from_millis(2000) - Duration::from_nanos(1)).await;
    assert!(
        slot_start(s) <= store.shared.offset(Instant::now()),
        "the slot has started"
    );
    assert_eq!(one_purge_batch(&store, 1000), (0, false));
    let tags = &store.shared.tags;
    {
        let state = only(&store);
        state.check_index(tags);
        assert_eq!(state.index.near.len(), 1000);
        assert_eq!(state.index.far[&s].tags.len(), n - 1000);
    }
    // Mid-move: overwrite moved and unmoved entries, add one, remove some.
    for i in (0..n).step_by(97) {
        store.apply(&format!("k{i}"), rec("w", 2000, 2)).unwrap();
    }
    store.apply("new", rec("v", 1, 1)).unwrap();
    only(&store).check_index(tags);
    assert_eq!(store.purge_expired(), 0, "nothing due yet");
    only(&store).check_index(tags);
    assert_eq!(store.len(), n + 1);
    assert!(!only(&store).index.far.contains_key(&s));
    advance(Duration::from_nanos(1 + n as u64 * 1000)).await;
    let overwritten = (0..n).step_by(97).count();
    assert_eq!(store.purge_expired(), n - overwritten + 1);
    assert_eq!(store.len(), overwritten);
    only(&store).check_index(tags);
}
