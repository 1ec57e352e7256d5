//! Key listings: pages by prefix and the most recent keys.

use tokio::time::advance;

use super::*;

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
