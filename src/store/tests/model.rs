//! Random writes, reads, time steps and purges, compared with a plain map.

use std::collections::HashMap;

use tokio::time::advance;

use super::*;
use crate::store::expiry::SLOT_BITS;

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
