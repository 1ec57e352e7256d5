//! Whole-store views for peers: the snapshot and the anti-entropy digest.

use tokio::time::advance;

use super::*;

#[tokio::test(start_paused = true)]
async fn snapshot_skips_expired() {
    let store = Store::new(1 << 20);
    let keep = rec("keep", 5000, 1);
    store.apply("keep", keep.clone()).unwrap();
    store.apply("gone", rec("gone", 1000, 1)).unwrap();
    advance(Duration::from_secs(1)).await;
    assert_eq!(store.snapshot(), vec![("keep".to_string(), keep)]);
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
