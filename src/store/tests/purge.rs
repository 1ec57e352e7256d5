//! Removing expired entries: batches under the lock, and the purge task.

use tokio::sync::watch;
use tokio::time::advance;

use super::*;
use crate::store::purge::PURGE_BATCH;

async fn run_pending() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
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
