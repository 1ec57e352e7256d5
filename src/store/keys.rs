//! Key listings: pages by prefix and the most recent keys.

use std::cmp::Reverse;
use std::ops::Bound;
use std::sync::atomic::Ordering as AtomicOrdering;

use tokio::time::Instant;

use super::{spread, Store, SHARDS};
use crate::listing::{self, Resume, Run};

impl Store {
    /// Live keys starting with `prefix`, in byte order, strictly after `after` if given,
    /// at most `limit` of them. The second item is the last key returned when more keys
    /// remain (the cursor for the next page), else `None`; `limit == 0` returns nothing.
    ///
    /// O(limit) (times log n): each shard's key index is read a batch at a time, under
    /// its lock for a few microseconds, and the shards' runs are merged.
    pub fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        if limit == 0 {
            return (Vec::new(), None);
        }
        let shared = &*self.shared;
        let now = shared.offset(Instant::now());
        let want = limit.saturating_add(1);
        let batch = listing::batch(want, SHARDS);
        let prefix = prefix.as_bytes();
        // The first key that can be listed: after the cursor, and at or after the prefix.
        let start = match after.map(str::as_bytes) {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let fetch = |i: usize, run: &mut Run<Box<[u8]>>| {
            let from = match &run.resume {
                Some(Resume::AfterKey(k)) => Bound::Excluded(&**k),
                _ => start,
            };
            let state = shared.shards[i].lock();
            let live = |key: &[u8]| {
                let tag = shared.tags.of(key);
                state.get(key, tag).is_some_and(|n| n.deadline() > now)
            };
            let order = &state.order;
            let (next, read) = order.keys_page(from, prefix, batch, live, &mut run.buf);
            shared
                .listed
                .fetch_add(read as u64, AtomicOrdering::Relaxed);
            run.resume = next.map(Resume::AfterKey);
        };
        let mut keys = listing::merge(SHARDS, want, fetch);
        let more = keys.len() > limit;
        keys.truncate(limit);
        // Keys were built from `&str`: the bytes become the string without a copy.
        let keys: Vec<String> = keys
            .into_iter()
            .map(|k| {
                String::from_utf8(k.into_vec())
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            })
            .collect();
        let next = if more { keys.last().cloned() } else { None };
        (keys, next)
    }

    /// The `limit` most recently created live keys, oldest first (by the origin's
    /// creation time, ties by key). O(limit) like [`Store::keys`].
    pub fn scan(&self, limit: usize) -> Vec<String> {
        let shared = &*self.shared;
        let now = shared.offset(Instant::now());
        let batch = listing::batch(limit, SHARDS);
        // Newest first: the merge takes the smallest, so the order is reversed.
        let fetch = |i: usize, run: &mut Run<Reverse<(u64, String)>>| {
            let before = match run.resume {
                Some(Resume::BeforeMs(ms)) => Some(ms),
                _ => None,
            };
            let state = shared.shards[i].lock();
            let mut page = Vec::new();
            let mut read = 0;
            let next = state.order.created_page(before, batch, |ms, tag| {
                read += 1;
                // The map yields every entry whose hash bits look alike: keep only this
                // tag's, or an entry would be listed once per look-alike tag.
                let same = state.map.iter_hash(spread(tag));
                let live = same.map(|&h| state.records.entry(h)).filter(|n| {
                    n.created_ms() == ms && n.deadline() > now && shared.tags.of(n.key()) == tag
                });
                page.extend(live.map(|n| Reverse((ms, n.key_string()))));
            });
            drop(state);
            shared.listed.fetch_add(read, AtomicOrdering::Relaxed);
            // Within a millisecond, by key (the index orders it by tag).
            page.sort_unstable();
            run.buf.extend(page);
            run.resume = next.map(Resume::BeforeMs);
        };
        let newest = listing::merge(SHARDS, limit, fetch);
        newest
            .into_iter()
            .rev()
            .map(|Reverse((_, key))| key)
            .collect()
    }

    /// Index entries read by listings so far: what [`Store::keys`] and [`Store::scan`]
    /// cost, shown in `/metrics`.
    pub fn listed_total(&self) -> u64 {
        self.shared.listed.load(AtomicOrdering::Relaxed)
    }
}
