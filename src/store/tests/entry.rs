//! What an entry holds: its key (inline or on the heap), its TTL and its exact deadline.

use super::*;
use crate::store::entry::INLINE_KEY;

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
async fn inline_and_heap_keys() {
    assert_eq!(
        std::mem::size_of::<Node>(),
        104,
        "one 112-byte malloc chunk per key"
    );
    let store = Store::new(1 << 20);
    let short = "x".repeat(INLINE_KEY);
    let long = "x".repeat(INLINE_KEY + 1);
    let utf8 = "ключ/日本語/🔑";
    for (i, k) in [short.as_str(), long.as_str(), utf8, ""]
        .into_iter()
        .enumerate()
    {
        let r = rec("v", 10_000, i as u64);
        assert_eq!(store.apply(k, r.clone()), Ok(Applied::Inserted));
        assert_eq!(store.get(k), Some(r));
    }
    assert!(matches!(Key::new(&short), Key::Inline { .. }));
    assert!(matches!(Key::new(&long), Key::Heap { .. }));
    assert_eq!(store.get(&short[1..]), None);
    assert_eq!(store.bytes(), (2 * INLINE_KEY + 1 + utf8.len() + 4) as u64);
    let (all, _) = store.keys("", None, 10);
    assert_eq!(all, ["", short.as_str(), long.as_str(), utf8]);
    assert_eq!(store.keys("ключ/", None, 10).0, [utf8]);
    let mut snap: Vec<String> = store.snapshot().into_iter().map(|(k, _)| k).collect();
    snap.sort();
    assert_eq!(snap, all);
}
