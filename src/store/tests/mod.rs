//! Store tests on paused time, including a randomized comparison with a model: one file
//! per concern, and here the helpers they share.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::*;
use crate::clock::{now_ms, Version};

mod apply;
mod arena;
mod budget;
mod digest;
mod entry;
mod expiry;
mod keys;
mod model;
mod purge;

/// Checks the expiry index of every shard, and that each entry is in the shard of its
/// tag; returns the entries filed.
fn check_all(store: &Store) -> usize {
    let shared = &store.shared;
    let mut filed = 0;
    for (i, shard) in shared.shards.iter().enumerate() {
        let state = shard.lock();
        state.check_index(&shared.tags);
        for &h in state.map.iter() {
            let tag = shared.tags.of(state.records.entry(h).key());
            assert!(std::ptr::eq(shared.shard(tag), &shared.shards[i]));
        }
        filed += state.index.len();
    }
    filed
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
