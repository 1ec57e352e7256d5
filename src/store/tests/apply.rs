//! Writes and reads: last writer wins, and an expired entry counts as absent.

use tokio::time::advance;

use super::*;

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
