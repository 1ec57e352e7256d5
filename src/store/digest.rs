//! Whole-store views for peers: a snapshot for catch-up and the anti-entropy digest.

use std::sync::atomic::Ordering as AtomicOrdering;

use tokio::time::Instant;

use super::entry::Entry;
use super::{Record, Store};
use crate::clock::Version;

impl Store {
    /// Every live entry, for sending a full copy to a joining peer. Values are shared
    /// handles, not copies.
    pub fn snapshot(&self) -> Vec<(String, Record)> {
        self.collect(|node| Some((node.key_string(), self.shared.record(node))))
    }

    /// The anti-entropy digest: per bucket, the XOR of the hashes of its entries.
    pub fn digest(&self) -> Vec<u64> {
        let digest = self.shared.totals.digest.iter();
        digest.map(|d| d.load(AtomicOrdering::Relaxed)).collect()
    }

    /// (key, version) of the live entries in the buckets flagged in `buckets` (indexed by
    /// bucket), leaving out entries written after `settled_ms` (by version time).
    pub fn versions_in(&self, buckets: &[bool], settled_ms: u64) -> Vec<(String, Version)> {
        self.collect(|n| {
            let flagged = buckets.get(n.digest_part().0).copied().unwrap_or(false);
            (n.version().wall_ms() <= settled_ms && flagged).then(|| (n.key_string(), n.version()))
        })
    }

    /// `pick` applied to every live entry, shard by shard, keeping its `Some`s.
    pub(super) fn collect<T>(&self, mut pick: impl FnMut(&Entry<'_>) -> Option<T>) -> Vec<T> {
        let now = self.shared.offset(Instant::now());
        let mut out = Vec::new();
        for shard in self.shared.shards.iter() {
            let state = shard.lock();
            let entries = state.map.iter().map(|&h| state.records.entry(h));
            let live = entries.filter(|node| node.deadline() > now);
            out.extend(live.filter_map(|node| pick(&node)));
        }
        out
    }
}
