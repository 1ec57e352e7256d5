//! The byte budget: accounting, refusals when full, and reservations.

use tokio::time::advance;

use super::*;

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
