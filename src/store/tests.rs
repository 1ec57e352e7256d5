//! Store tests on paused time, including a randomized comparison with a model.

use std::collections::HashMap;
use std::sync::MutexGuard;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::{advance, Instant};

use super::entry::PACKED_VALUE_MAX;
use super::expiry::{slot_end, slot_of, slot_start, SLOT_BITS};
use super::purge::PURGE_BATCH;
use super::*;
use crate::clock::{now_ms, Version};

/// Checks the expiry index of every shard, and that each entry is in the shard of its
/// tag; returns the entries filed.
fn check_all(store: &Store) -> usize {
    let shared = &store.shared;
    let mut filed = 0;
    for (i, shard) in shared.shards.iter().enumerate() {
        let state = shard.lock();
        state.check_index(&shared.tags);
        for node in state.map.iter() {
            let tag = shared.tags.of(node.key());
            assert!(std::ptr::eq(shared.shard(tag), &shared.shards[i]));
        }
        filed += state.index.len();
    }
    filed
}

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

fn version(hlc: u64) -> Version {
    Version { hlc, origin: 1 }
}

fn rec(value: &'static str, ttl_ms: u64, hlc: u64) -> Record {
    let created_ms = now_ms();
    Record {
        value: Bytes::from_static(value.as_bytes()),
        created_ms,
        expires_ms: created_ms + ttl_ms,
        expires_at: Instant::now() + Duration::from_millis(ttl_ms),
        version: version(hlc),
    }
}

fn value(store: &Store, key: &str) -> Option<Bytes> {
    store.get(key).map(|r| r.value)
}

async fn run_pending() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn insert_and_get() {
    let store = Store::new(1024);
    let r = rec("hello", 10_000, 1);
    assert_eq!(store.apply("k", r.clone()), Ok(Applied::Inserted));
    assert_eq!(store.get("k"), Some(r));
    assert_eq!(store.get("missing"), None);
    assert_eq!(store.len(), 1);
    assert!(!store.is_empty());
    assert_eq!(store.max_bytes(), 1024);
}

#[tokio::test(start_paused = true)]
async fn a_held_version_beyond_the_ceiling_never_wins() {
    let store = Store::new(1024);
    store
        .apply("k", rec("from-the-future", 10_000, 1_000))
        .unwrap();
    // Under the plain rule the newer version stays ...
    assert_eq!(store.apply("k", rec("now", 10_000, 10)), Ok(Applied::Stale));
    // ... but not when it lies above the ceiling: then any version replaces it.
    assert_eq!(
        store.apply_over("k", rec("now", 10_000, 10), 999),
        Ok(Applied::Replaced)
    );
    assert_eq!(value(&store, "k").as_deref(), Some(&b"now"[..]));
    assert_eq!(
        store.apply_over("k", rec("older", 10_000, 9), 999),
        Ok(Applied::Stale)
    );
}

#[tokio::test(start_paused = true)]
async fn get_is_none_exactly_at_expiry() {
    let store = Store::new(1024);
    store.apply("k", rec("v", 1000, 1)).unwrap();
    advance(Duration::from_millis(999)).await;
    assert!(store.get("k").is_some());
    advance(Duration::from_millis(1)).await;
    assert_eq!(store.get("k"), None);
    advance(Duration::from_secs(5)).await;
    assert_eq!(store.get("k"), None);
    assert_eq!(store.len(), 1, "not purged yet, only hidden");
}

#[tokio::test(start_paused = true)]
async fn last_writer_wins() {
    let store = Store::new(1024);
    assert_eq!(store.apply("k", rec("a", 10_000, 5)), Ok(Applied::Inserted));
    assert_eq!(store.apply("k", rec("b", 10_000, 6)), Ok(Applied::Replaced));
    assert_eq!(store.apply("k", rec("c", 10_000, 4)), Ok(Applied::Stale));
    assert_eq!(store.apply("k", rec("d", 10_000, 6)), Ok(Applied::Stale));
    assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"b")));
    // Same timestamp: the higher origin wins.
    let mut r = rec("e", 10_000, 6);
    r.version.origin = 2;
    assert_eq!(store.apply("k", r), Ok(Applied::Replaced));
    assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"e")));
    assert_eq!(store.len(), 1);
    assert_eq!(check_all(&store), 1);
}

#[tokio::test(start_paused = true)]
async fn expired_entry_counts_as_absent() {
    let store = Store::new(1024);
    store.apply("k", rec("new", 1000, 9)).unwrap();
    advance(Duration::from_secs(1)).await;
    // An older version still wins over a dead one.
    assert_eq!(store.apply("k", rec("old", 1000, 1)), Ok(Applied::Inserted));
    assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"old")));
    assert_eq!(store.purged_total(), 1);
    assert_eq!(store.bytes(), 4);
}

#[tokio::test(start_paused = true)]
async fn already_expired_record_is_ignored() {
    let store = Store::new(1024);
    assert_eq!(store.apply("k", rec("v", 0, 1)), Ok(Applied::Expired));
    let mut r = rec("v", 1000, 1);
    r.expires_at = Instant::now() - Duration::from_millis(1);
    assert_eq!(store.apply("k", r), Ok(Applied::Expired));
    assert!(store.is_empty());
    assert_eq!(store.bytes(), 0);
    assert_eq!(store.next_expiry(), None);
}

#[tokio::test(start_paused = true)]
async fn byte_accounting() {
    let store = Store::new(1024);
    store.apply("key", rec("12345", 1000, 1)).unwrap();
    assert_eq!(store.bytes(), 8);
    store.apply("key", rec("1234567890", 2000, 2)).unwrap();
    assert_eq!(store.bytes(), 13);
    store.apply("key", rec("1", 2000, 3)).unwrap();
    assert_eq!(store.bytes(), 4);
    store.apply("other", rec("abc", 5000, 1)).unwrap();
    assert_eq!(store.bytes(), 12);
    advance(Duration::from_secs(2)).await;
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.bytes(), 8);
    advance(Duration::from_secs(3)).await;
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.bytes(), 0);
    assert!(store.is_empty());
}

#[tokio::test(start_paused = true)]
async fn full_when_over_budget() {
    let store = Store::new(20);
    store.apply("a", rec("12345678901234", 10_000, 1)).unwrap(); // 15 bytes
    assert_eq!(
        store.apply("b", rec("123456789", 10_000, 1)), // 10 bytes
        Err(StoreError::Full {
            needed: 10,
            available: 5,
            limit: 20
        })
    );
    assert_eq!(store.get("b"), None);
    // Replacing frees the old bytes first: 19 fits, 21 does not.
    assert_eq!(
        store.apply("a", rec("123456789012345678", 10_000, 2)),
        Ok(Applied::Replaced)
    );
    assert_eq!(store.bytes(), 19);
    assert_eq!(
        store.apply("a", rec("12345678901234567890", 10_000, 3)),
        Err(StoreError::Full {
            needed: 21,
            available: 20,
            limit: 20
        })
    );
    assert_eq!(store.bytes(), 19);
    assert_eq!(store.get("a").map(|r| r.version), Some(version(2)));
    assert_eq!(store.apply("x", rec("", 10_000, 1)), Ok(Applied::Inserted)); // exactly full
    assert!(store.apply("y", rec("", 10_000, 1)).is_err());
}

/// Threads writing to different shards at once share one budget: together they never
/// overrun it, and the bytes charged are exactly those of the entries stored.
#[test]
fn reservations_promise_the_budget_until_dropped() {
    let store = Store::new(100);
    let a = store.reserve(60).expect("fits");
    let refused = store.reserve(41).err();
    assert_eq!(
        refused,
        Some(StoreError::Full {
            needed: 41,
            available: 40,
            limit: 100
        })
    );
    let mut b = store.reserve(30).expect("fits");
    assert!(b.grow(10).is_ok());
    assert!(b.grow(1).is_err());
    // A write is charged on its own: a reservation does not block the write it is for.
    assert!(store.apply("k", rec("0123456789", 60_000, 1)).is_ok());
    assert!(store.reserve(1).is_err());
    drop(a);
    drop(b);
    assert!(store.reserve(89).is_ok());
    assert!(store.reserve(90).is_err());
}

#[test]
fn concurrent_writers_never_overrun_the_budget() {
    let limit = 50_000;
    let store = Store::new(limit);
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(600);
                let (mut stored, mut refused) = (0, 0);
                for i in 0..5_000u64 {
                    let r = Record {
                        value: Bytes::from(vec![b'v'; (i % 50) as usize]),
                        created_ms: 0,
                        expires_ms: 600_000,
                        expires_at: deadline,
                        version: version(i),
                    };
                    // Rewrites of a few keys too: replacing frees bytes under the same lock.
                    let key = format!("t{t}-{}", i % 1_500);
                    match store.apply(&key, r) {
                        Ok(_) => stored += 1,
                        Err(StoreError::Full { limit: l, .. }) => {
                            assert_eq!(l, limit);
                            refused += 1;
                        }
                    }
                    assert!(store.bytes() <= limit);
                }
                (stored, refused)
            })
        })
        .collect();
    let mut refused = 0;
    for w in writers {
        refused += w.join().expect("writer thread").1;
    }
    assert!(refused > 0, "the budget was reached");
    let held: u64 = store
        .snapshot()
        .iter()
        .map(|(k, r)| Record::cost(k, r.value.len()))
        .sum();
    assert_eq!(store.bytes(), held);
    assert!(held <= limit);
    assert!(held > limit - 100, "filled up to the budget: {held}");
}

#[tokio::test(start_paused = true)]
async fn expired_entries_do_not_block_writes() {
    let store = Store::new(20);
    store.apply("a", rec("12345678901234", 1000, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(
        store.apply("b", rec("12345678901234", 1000, 1)),
        Ok(Applied::Inserted)
    );
    assert_eq!(store.len(), 1);
    assert_eq!(store.bytes(), 15);
    assert_eq!(store.purged_total(), 1);
}

#[tokio::test(start_paused = true)]
async fn keys_pages_by_prefix() {
    let store = Store::new(1 << 20);
    for k in ["b/3", "a/1", "b/1", "b/2", "c", "b/4"] {
        store.apply(k, rec("v", 10_000, 1)).unwrap();
    }
    store.apply("b/0", rec("v", 1000, 1)).unwrap();
    advance(Duration::from_secs(1)).await; // "b/0" expires

    let (page, next) = store.keys("b/", None, 2);
    assert_eq!(page, ["b/1", "b/2"]);
    assert_eq!(next.as_deref(), Some("b/2"));
    let (page, next) = store.keys("b/", next.as_deref(), 2);
    assert_eq!(page, ["b/3", "b/4"]);
    assert_eq!(next, None);
    let (page, next) = store.keys("b/", Some("b/4"), 2);
    assert!(page.is_empty());
    assert_eq!(next, None);

    let (all, next) = store.keys("", None, 100);
    assert_eq!(all, ["a/1", "b/1", "b/2", "b/3", "b/4", "c"]);
    assert_eq!(next, None);
    assert_eq!(store.keys("", Some("b/35"), 10).0, ["b/4", "c"]);
    assert_eq!(store.keys("", None, 0), (Vec::new(), None));
    assert_eq!(store.keys("", None, usize::MAX).0.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn purge_removes_only_due_entries() {
    let store = Store::new(1 << 20);
    store.apply("a", rec("1", 1000, 1)).unwrap();
    store.apply("b", rec("22", 2000, 1)).unwrap();
    store.apply("c", rec("333", 3000, 1)).unwrap();
    let start = Instant::now();
    assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(1)));
    assert_eq!(store.purge_expired(), 0);

    advance(Duration::from_millis(1999)).await;
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.len(), 2);
    assert_eq!(store.bytes(), 3 + 4);
    assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(2)));

    advance(Duration::from_millis(1)).await;
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(value(&store, "c"), Some(Bytes::from_static(b"333")));
    assert_eq!(store.purged_total(), 2);
    assert_eq!(check_all(&store), 1);
}

#[tokio::test(start_paused = true)]
async fn stores_sharing_a_purged_counter_add_up_only_what_they_purge() {
    let purged = PurgedBytes::default();
    let one = Store::with_purged_bytes(1 << 20, purged.clone());
    let two = Store::with_purged_bytes(1 << 20, purged.clone());
    let other = Store::new(1 << 20);
    one.apply("a", rec("1", 1000, 1)).unwrap();
    two.apply("bb", rec("22", 1000, 1)).unwrap();
    two.apply("c", rec("333", 5000, 1)).unwrap();
    other.apply("d", rec("4444", 1000, 1)).unwrap();
    advance(Duration::from_millis(1000)).await;
    assert_eq!(purged.total(), 0);
    assert_eq!(one.purge_expired() + two.purge_expired(), 2);
    assert_eq!(other.purge_expired(), 1);
    // "a"+"1" and "bb"+"22"; "c" is not due and `other` counts elsewhere.
    assert_eq!(purged.total(), 2 + 4);
}

#[tokio::test(start_paused = true)]
async fn purge_expired_in_batches() {
    let store = Store::new(u64::MAX);
    let n = PURGE_BATCH * 2 + 7;
    for i in 0..n {
        store.apply(&format!("k{i}"), rec("v", 1000, 1)).unwrap();
    }
    store.apply("live", rec("v", 5000, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(store.purge_expired(), n);
    assert_eq!(store.len(), 1);
    assert_eq!(store.bytes(), 5);
}

#[tokio::test(start_paused = true)]
async fn purger_removes_due_entries_and_stops_on_shutdown() {
    let store = Store::new(1 << 20);
    let (tx, rx) = watch::channel(false);
    let task = store.spawn_purger(Duration::from_secs(3600), rx).unwrap();
    store.apply("a", rec("v", 1000, 1)).unwrap();
    store.apply("b", rec("v", 5000, 1)).unwrap();
    run_pending().await;

    advance(Duration::from_secs(1)).await;
    run_pending().await;
    assert_eq!(store.len(), 1);
    assert_eq!(store.purged_total(), 1);

    advance(Duration::from_secs(4)).await;
    run_pending().await;
    assert!(store.is_empty());

    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("purger stops on shutdown")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn purger_wakes_early_for_earlier_deadline() {
    let store = Store::new(1 << 20);
    let (_tx, rx) = watch::channel(false);
    store.apply("late", rec("v", 100_000, 1)).unwrap();
    let _task = store.spawn_purger(Duration::from_secs(3600), rx).unwrap();
    run_pending().await; // the task now sleeps until "late" expires

    store.apply("soon", rec("v", 1000, 1)).unwrap();
    run_pending().await;
    advance(Duration::from_secs(1)).await;
    run_pending().await;
    assert_eq!(store.len(), 1);
    assert!(store.get("late").is_some());
}

#[tokio::test(start_paused = true)]
async fn purger_sweeps_and_exits_when_store_dropped() {
    let store = Store::new(1 << 20);
    let (tx, rx) = watch::channel(false);
    drop(tx); // a dropped sender is not a shutdown
    let task = store.spawn_purger(Duration::from_secs(1), rx).unwrap();
    run_pending().await;
    store.apply("k", rec("v", 500, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    run_pending().await;
    assert!(store.is_empty());
    assert!(!task.is_finished());

    drop(store);
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("purger stops with its store")
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_store_has_one_purge_task_however_many_ask() {
    let store = Store::new(1 << 20);
    let (tx, rx) = watch::channel(false);
    let first = store.spawn_purger(Duration::from_secs(1), rx.clone());
    let first = first.expect("the first to ask starts it");
    assert!(store
        .spawn_purger(Duration::from_secs(1), rx.clone())
        .is_none());
    assert!(store
        .clone()
        .spawn_purger(Duration::from_secs(1), rx)
        .is_none());
    // Once it has ended (here aborted, as when its runtime goes), the next ask starts one.
    first.abort();
    let _ = first.await;
    let (_tx2, rx2) = watch::channel(false);
    let again = store.spawn_purger(Duration::from_secs(1), rx2);
    let again = again.expect("a new task once the first is gone");
    store.apply("k", rec("v", 500, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    run_pending().await;
    assert!(store.is_empty(), "the new task purges");
    drop(tx);
    again.abort();
}

#[tokio::test(start_paused = true)]
async fn snapshot_skips_expired() {
    let store = Store::new(1 << 20);
    let keep = rec("keep", 5000, 1);
    store.apply("keep", keep.clone()).unwrap();
    store.apply("gone", rec("gone", 1000, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(store.snapshot(), vec![("keep".to_string(), keep)]);
}

#[tokio::test(start_paused = true)]
async fn ttl_helpers() {
    let r = rec("v", 2500, 1);
    assert_eq!(r.original_ttl_s(), 3);
    assert_eq!(rec("v", 2499, 1).original_ttl_s(), 2);
    let now = Instant::now();
    assert_eq!(r.remaining_ttl_s(now), 3);
    assert_eq!(r.remaining_ttl_s(now + Duration::from_millis(500)), 2);
    assert_eq!(r.remaining_ttl_s(now + Duration::from_millis(1500)), 1);
    assert_eq!(r.remaining_ttl_s(now + Duration::from_millis(2500)), 0);
    assert_eq!(r.remaining_ttl_s(now + Duration::from_secs(10)), 0);
    assert_eq!(Record::cost("abc", 5), 8);
}

#[tokio::test(start_paused = true)]
async fn deadline_round_trips_exactly() {
    let store = Store::new(1024);
    let mut r = rec("v", 1000, 1);
    r.expires_at += Duration::from_nanos(123_456_789);
    store.apply("k", r.clone()).unwrap();
    assert_eq!(store.get("k").map(|g| g.expires_at), Some(r.expires_at));
    assert_eq!(store.next_expiry(), Some(r.expires_at));
    // Before the epoch (another clock origin) still maps back exactly.
    let t = store.shared.epoch - Duration::from_nanos(1_000_000_007);
    assert_eq!(store.shared.instant(store.shared.offset(t)), t);
}

#[tokio::test(start_paused = true)]
async fn packed_and_shared_bodies_round_trip() {
    assert_eq!(
        std::mem::size_of::<Node>(),
        56,
        "one 64-byte malloc chunk per key, besides its body"
    );
    let store = Store::new(1 << 30);
    let long_key = "k".repeat(usize::from(u16::MAX) + 1);
    let utf8 = "ключ/日本語/🔑";
    let cases = [
        ("packed", PACKED_VALUE_MAX),
        ("shared", PACKED_VALUE_MAX + 1),
        (long_key.as_str(), 3),
        (utf8, 0),
        ("", 5),
    ];
    for (i, &(key, len)) in cases.iter().enumerate() {
        let value = Bytes::from(vec![i as u8 + 1; len]);
        let r = Record {
            value: value.clone(),
            ..rec("", 10_000, i as u64 + 1)
        };
        assert_eq!(store.apply(key, r.clone()), Ok(Applied::Inserted));
        let got = store.get(key).expect("stored");
        assert_eq!(got, r, "{len} bytes under a {}-byte key", key.len());
        // A big value (or one under a key too long to pack) is the very bytes written;
        // a packed one is a copy.
        let shared = len > PACKED_VALUE_MAX || key.len() > usize::from(u16::MAX);
        if len > 0 {
            let same = got.value.as_ptr() == value.as_ptr();
            assert_eq!(same, shared, "{len} bytes");
        }
    }
    assert_eq!(store.get("pack"), None);
    let total: usize = cases.iter().map(|(k, len)| k.len() + len).sum();
    assert_eq!(store.bytes(), total as u64);
    let (all, _) = store.keys("", None, 10);
    let mut keys: Vec<&str> = cases.iter().map(|c| c.0).collect();
    keys.sort();
    assert_eq!(all, keys);
    assert_eq!(store.keys("ключ/", None, 10).0, [utf8]);
    let mut snap: Vec<String> = store.snapshot().into_iter().map(|(k, _)| k).collect();
    snap.sort();
    assert_eq!(snap, all);
    check_all(&store);
}

#[test]
fn the_digest_follows_inserts_replacements_and_purges() {
    let a = Store::new(1 << 20);
    let b = Store::new(1 << 20);
    assert_eq!(a.digest(), b.digest());
    a.apply("k1", rec("x", 60_000, 1)).unwrap();
    a.apply("k2", rec("y", 60_000, 1)).unwrap();
    assert_ne!(a.digest(), b.digest());
    // Same content reached in another order via an older version: same digest.
    b.apply("k2", rec("y", 60_000, 1)).unwrap();
    b.apply("k1", rec("old", 60_000, 0)).unwrap();
    assert_ne!(a.digest(), b.digest());
    b.apply("k1", rec("x", 60_000, 1)).unwrap();
    assert_eq!(a.digest(), b.digest());
    let diff = antientropy::differing(&a.digest(), &Store::new(1).digest());
    assert_eq!(a.versions_in(&diff, u64::MAX).len(), 2);
    assert_eq!(a.version("k1"), Some(version(1)));
    // No bucket flagged: nothing to report.
    let none = vec![false; antientropy::BUCKETS];
    assert!(a.versions_in(&none, u64::MAX).is_empty());
}

#[tokio::test(start_paused = true)]
async fn purging_removes_entries_from_the_digest() {
    let a = Store::new(1 << 20);
    let empty = a.digest();
    a.apply("k", rec("x", 1_000, 1)).unwrap();
    tokio::time::advance(Duration::from_millis(1_001)).await;
    assert_eq!(a.purge_expired(), 1);
    assert_eq!(a.digest(), empty);
}

#[test]
fn poisoned_lock_is_recovered() {
    let store = Store::new(1024);
    let s = store.clone();
    let panicked = std::thread::spawn(move || {
        let _guards: Vec<_> = s.shared.shards.iter().map(|shard| shard.0.lock()).collect();
        panic!("poison the locks");
    })
    .join();
    assert!(panicked.is_err());
    assert!(store
        .shared
        .shards
        .iter()
        .all(|shard| shard.0.is_poisoned()));
    assert_eq!(store.len(), 0);
    assert_eq!(store.get("k"), None);
}

/// Random writes, reads, time steps and purges against a plain map model.
#[tokio::test(start_paused = true)]
async fn randomized_matches_model() {
    against_model(Store::new(u64::MAX), 7).await;
}

/// The same with every key on one of two tags (0 and 1): the map and the expiry
/// index must tell entries apart by key and deadline.
#[tokio::test(start_paused = true)]
async fn randomized_with_tag_collisions() {
    against_model(
        Store::with_tags(u64::MAX, Tags::masked(1), PurgedBytes::default()),
        8,
    )
    .await;
    against_model(
        Store::with_tags(u64::MAX, Tags::masked(0), PurgedBytes::default()),
        9,
    )
    .await;
}

async fn against_model(store: Store, seed: u64) {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(seed);
    let values: [&'static str; 4] = ["", "a", "bb", "cccc"];
    // key -> (version, value, deadline)
    let mut model: HashMap<String, (u64, &'static str, Instant)> = HashMap::new();
    for step in 0..5000 {
        let key = format!("k{}", rng.gen_range(0..40));
        match rng.gen_range(0..10) {
            0..=5 => {
                let v = values[rng.gen_range(0..values.len())];
                let hlc = rng.gen_range(0..50);
                let r = rec(v, rng.gen_range(0..3000), hlc);
                let now = Instant::now();
                let live = model.get(&key).filter(|m| m.2 > now);
                let expect = if r.expires_at <= now {
                    Applied::Expired
                } else if live.is_some_and(|m| m.0 >= hlc) {
                    Applied::Stale
                } else if live.is_some() {
                    Applied::Replaced
                } else {
                    Applied::Inserted
                };
                if matches!(expect, Applied::Inserted | Applied::Replaced) {
                    model.insert(key.clone(), (hlc, v, r.expires_at));
                }
                assert_eq!(store.apply(&key, r), Ok(expect), "step {step}");
            }
            6 | 7 => advance(Duration::from_millis(rng.gen_range(0..400))).await,
            8 => {
                store.purge_expired();
                // Only live entries are left: the earliest deadline is the model's,
                // or less than a slot before it.
                let now = Instant::now();
                let earliest = model.values().map(|m| m.2).filter(|&d| d > now).min();
                let next = store.next_expiry();
                assert_eq!(next.is_some(), earliest.is_some(), "step {step}");
                if let (Some(next), Some(earliest)) = (next, earliest) {
                    assert!(next > now && next <= earliest, "step {step}");
                    assert!(earliest - next < Duration::from_nanos(1 << SLOT_BITS));
                }
            }
            _ => {}
        }
        let now = Instant::now();
        let m = model.get(&key).filter(|m| m.2 > now);
        let got = store.get(&key);
        assert_eq!(got.as_ref().map(|r| r.version.hlc), m.map(|m| m.0));
        assert_eq!(
            got.map(|r| r.value),
            m.map(|m| Bytes::from_static(m.1.as_bytes()))
        );
        check_all(&store);
    }
    store.purge_expired();
    let now = Instant::now();
    model.retain(|_, m| m.2 > now);
    let model_bytes: u64 = model.iter().map(|(k, m)| Record::cost(k, m.1.len())).sum();
    assert_eq!(store.len(), model.len());
    assert_eq!(store.bytes(), model_bytes);
    let mut keys: Vec<_> = model.keys().cloned().collect();
    keys.sort();
    assert_eq!(store.keys("", None, usize::MAX).0, keys);
    assert_eq!(pages(&store, "", 3), keys);
    let k1: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("k1"))
        .cloned()
        .collect();
    assert_eq!(pages(&store, "k1", 2), k1);
    let mut scanned = store.scan(usize::MAX);
    scanned.sort();
    assert_eq!(scanned, keys);
    assert_eq!(check_all(&store), model.len());
}

/// Every key under `prefix`, a page of `limit` at a time, following the cursors.
fn pages(store: &Store, prefix: &str, limit: usize) -> Vec<String> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let (page, next) = store.keys(prefix, cursor.as_deref(), limit);
        assert!(page.len() <= limit);
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
    panic!("paging did not end");
}

#[tokio::test(start_paused = true)]
async fn keys_page_in_order_and_skip_expired_entries() {
    let store = Store::new(u64::MAX);
    let mut live = Vec::new();
    for i in 0..2000u64 {
        let key = format!("p{}/{i:05}", i % 3);
        // Every fifth key expires before the listing.
        let ttl = if i % 5 == 0 { 1_000 } else { 60_000 };
        store.apply(&key, rec("v", ttl, 1)).unwrap();
        if i % 5 != 0 {
            live.push(key);
        }
    }
    advance(Duration::from_secs(2)).await;
    live.sort();
    assert_eq!(pages(&store, "", 100), live);
    assert_eq!(pages(&store, "", 1), live);
    let p1: Vec<_> = live
        .iter()
        .filter(|k| k.starts_with("p1/"))
        .cloned()
        .collect();
    assert_eq!(pages(&store, "p1/", 7), p1);
    // A cursor before the prefix starts at the prefix; one after it ends the list.
    assert_eq!(store.keys("p1/", Some("a"), 5).0, p1[..5]);
    assert_eq!(store.keys("p1/", Some("p2"), 5), (vec![], None));
    assert_eq!(store.keys("p1/", Some(&p1[9]), 1).0, [p1[10].clone()]);
    assert_eq!(store.keys("q", None, 5), (vec![], None));
    let (page, next) = store.keys("", None, live.len());
    assert_eq!((page.len(), next), (live.len(), None));
    store.purge_expired();
    check_all(&store);
    assert_eq!(pages(&store, "", 64), live);
}

#[tokio::test(start_paused = true)]
async fn scan_gives_the_most_recent_keys_oldest_first() {
    let store = Store::new(u64::MAX);
    let mut want = Vec::new();
    for i in 0..500u64 {
        let mut r = rec("v", if i % 7 == 0 { 1_000 } else { 60_000 }, 1);
        // Creation times out of insertion order, several keys per millisecond.
        r.created_ms = 1_000_000 + (i * 37 % 500) / 3;
        let key = format!("k{i}");
        store.apply(&key, r.clone()).unwrap();
        if i % 7 != 0 {
            want.push((r.created_ms, key));
        }
    }
    // A rewrite moves a key to its new creation time.
    let mut r = rec("w", 60_000, 2);
    r.created_ms = 2_000_000;
    store.apply("k1", r).unwrap();
    want.retain(|(_, k)| k != "k1");
    want.push((2_000_000, "k1".to_string()));
    advance(Duration::from_secs(2)).await;
    want.sort();
    let keys: Vec<String> = want.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(store.scan(10_000), keys);
    assert_eq!(store.scan(20), keys[keys.len() - 20..]);
    assert_eq!(store.scan(1), ["k1"]);
    assert!(store.scan(0).is_empty());
    store.purge_expired();
    check_all(&store);
    assert_eq!(store.scan(100), keys[keys.len() - 100..]);
}

#[tokio::test(start_paused = true)]
async fn purge_under_tag_collisions_removes_only_expired_entries() {
    let store = Store::with_tags(u64::MAX, Tags::masked(0), PurgedBytes::default());
    // One tag for all; deadlines 1..=4 s, several keys on each.
    for i in 0..20u64 {
        let ttl = 1000 * (i % 4 + 1);
        store.apply(&format!("k{i}"), rec("v", ttl, 1)).unwrap();
    }
    advance(Duration::from_millis(2000)).await;
    assert_eq!(store.purge_expired(), 10);
    for i in 0..20u64 {
        assert_eq!(store.get(&format!("k{i}")).is_some(), i % 4 >= 2, "k{i}");
    }
    assert_eq!(store.len(), 10);
    assert_eq!(
        store.next_expiry(),
        Some(Instant::now() + Duration::from_secs(1))
    );
    check_all(&store);
    advance(Duration::from_millis(2000)).await;
    assert_eq!(store.purge_expired(), 10);
    assert!(store.is_empty());
    assert_eq!(check_all(&store), 0);
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
    state.purge_due(now, budget, tags, totals, &mut freed)
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

#[tokio::test(start_paused = true)]
async fn scan_lists_each_key_once_among_keys_of_one_millisecond() {
    // Many keys of one millisecond share a shard with entries whose map hash looks like
    // theirs (hashbrown matches 7 bits): each must still be listed once.
    let store = Store::new(u64::MAX);
    let mut want = Vec::new();
    for i in 0..3_000u64 {
        let mut r = rec("v", 60_000, 1);
        r.created_ms = 1_000_000;
        let key = format!("k{i:04}");
        store.apply(&key, r).unwrap();
        want.push(key);
    }
    let mut got = store.scan(10_000);
    got.sort();
    assert_eq!(got, want);
}

#[tokio::test(start_paused = true)]
async fn a_purge_that_empties_a_burst_gives_the_table_back() {
    let room = |store: &Store| -> usize {
        store
            .shared
            .shards
            .iter()
            .map(|s| s.lock().map.capacity())
            .sum()
    };
    let store = Store::new(u64::MAX);
    for i in 0..100 {
        store
            .apply(&format!("stays-{i}"), rec("v", 600_000, 1))
            .unwrap();
    }
    let small = room(&store);
    // Expiring over 10 s, purged every 100 ms: the tables shrink step by step.
    for i in 0..200_000u64 {
        let ttl_ms = 100 * (1 + i % 100);
        store
            .apply(&format!("burst-{i}"), rec("v", ttl_ms, 1))
            .unwrap();
    }
    let grown = room(&store);
    assert!(grown >= 200_000, "{grown}");
    let mut purged = 0;
    for _ in 0..100 {
        tokio::time::advance(Duration::from_millis(100)).await;
        purged += store.purge_expired();
    }
    assert_eq!(purged, 200_000);
    let after = room(&store);
    assert!(
        after <= small.max(SHARDS * 64),
        "room for {after} entries left for 100 keys (had {grown}, {small} before the burst)"
    );
    check_all(&store);
    for i in 0..100 {
        assert!(store.get(&format!("stays-{i}")).is_some());
    }
}
