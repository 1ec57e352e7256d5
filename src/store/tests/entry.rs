//! What an entry holds: its key and value (packed together or shared), its TTL and its
//! exact deadline.

use super::*;
use crate::store::entry::{PACKED_KEY_MAX, PACKED_VALUE_MAX};

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
    let store = Store::new(1 << 30);
    let long_key = "k".repeat(usize::from(u16::MAX) + 1);
    let packed_key = "p".repeat(PACKED_KEY_MAX);
    let unpacked_key = "u".repeat(PACKED_KEY_MAX + 1);
    let utf8 = "ключ/日本語/🔑";
    let cases = [
        ("packed", PACKED_VALUE_MAX),
        ("shared", PACKED_VALUE_MAX + 1),
        (long_key.as_str(), 3),
        (packed_key.as_str(), PACKED_VALUE_MAX),
        (unpacked_key.as_str(), 3),
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
        let shared = len > PACKED_VALUE_MAX || key.len() > PACKED_KEY_MAX;
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
