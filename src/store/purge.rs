//! Removing expired entries: batches under the lock, and the purge task.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::entry::Big;
use super::shard::rehash;
use super::{spread, Shared, State, Store, Tags, Totals, NEAR};

/// Work units (entries looked up or freed) per lock acquisition by
/// [`Store::purge_expired`].
pub(super) const PURGE_BATCH: usize = 4096;

/// Bytes ([`super::Record::cost`]) of the expired entries purged by the stores that
/// share it; clones count together. The binary watches it to hand freed heap memory
/// back to the OS.
#[derive(Clone, Debug, Default)]
pub struct PurgedBytes(Arc<AtomicU64>);

impl PurgedBytes {
    /// Bytes (keys + values) purged so far.
    pub fn total(&self) -> u64 {
        self.0.load(AtomicOrdering::Relaxed)
    }

    fn add(&self, bytes: u64) {
        self.0.fetch_add(bytes, AtomicOrdering::Relaxed);
    }
}

/// A shard's table is shrunk after a purge when it holds fewer entries than one in
/// [`SPARSE`] of its buckets (and room for more than [`MIN_SHRINK_BUCKETS`]): a burst of keys
/// that all expired leaves a table sized for the burst, which a hash table never gives
/// back on its own. The wide margin keeps a steady churn from growing and shrinking it.
const SPARSE: usize = 8;
const MIN_SHRINK_BUCKETS: usize = 64;

/// Bounds for the purge task's safety-net interval.
pub(super) const MIN_SWEEP: Duration = Duration::from_millis(1);
pub(super) const MAX_SWEEP: Duration = Duration::from_secs(24 * 3600);

impl State {
    /// Removes entries with `deadline <= now`, earliest first, until about `budget`
    /// entries were looked up or removed; big values go to `dropped`, for the caller to
    /// drop once unlocked. Returns how many it removed, their bytes, and whether it
    /// removed them all.
    pub(super) fn purge_due(
        &mut self,
        now: i64,
        budget: usize,
        tags: &Tags,
        totals: &Totals,
        dropped: &mut Vec<Big>,
    ) -> (usize, u64, bool) {
        let mut freed = Vec::new();
        let mut work = 0;
        let done = loop {
            if work >= budget {
                break false;
            }
            let room = budget - work;
            let taken = self
                .index
                .take_ended(now, room, &mut self.map, &self.records, &mut freed);
            if taken > 0 {
                work += taken;
                continue;
            }
            let moved = self.index.promote(now, room, &self.map, &mut self.records);
            if moved > 0 {
                work += moved;
                continue;
            }
            let Some(first) = self.index.near.first_entry() else {
                break true;
            };
            let (deadline, tag) = *first.key();
            if deadline > now {
                break true;
            }
            // The entries with this deadline and tag (normally exactly one).
            let count = first.remove();
            work += 1;
            let records = &self.records;
            for _ in 0..count {
                let Ok(found) = self.map.find_entry(spread(tag), |&h| {
                    let node = records.entry(h);
                    node.deadline() == deadline
                        && node.place() == NEAR
                        && tags.of(node.key()) == tag
                }) else {
                    break;
                };
                freed.push(found.remove().0);
                work += 1;
            }
        };
        let mut bytes = 0;
        for &h in &freed {
            let node = self.records.entry(h);
            totals.release(&node);
            bytes += node.cost();
            let key = node.key();
            self.order.remove(key, node.created_ms(), tags.of(key));
        }
        for &h in &freed {
            dropped.extend(self.records.remove(h));
        }
        self.records.tidy(&mut self.map, tags);
        let removed = freed.len();
        self.purged_total += removed as u64;
        if done && removed > 0 {
            self.shrink_if_sparse(tags);
        }
        (removed, bytes, done)
    }

    /// Gives back most of the table's buckets when few are used (see [`SPARSE`]).
    fn shrink_if_sparse(&mut self, tags: &Tags) {
        let buckets = self.map.capacity();
        if buckets > MIN_SHRINK_BUCKETS && self.map.len() < buckets / SPARSE {
            self.map
                .shrink_to(self.map.len() * 2, rehash(&self.records, tags));
        }
    }
}

impl Store {
    /// Removes every entry whose deadline is `<= now` and returns how many. Walks the
    /// expiry index only as far as the due entries, in batches so readers are not
    /// blocked for long; payloads are freed outside the lock.
    pub fn purge_expired(&self) -> usize {
        let shared = &*self.shared;
        let now = shared.offset(Instant::now());
        let mut total = 0;
        let mut dropped = Vec::new();
        for shard in shared.shards.iter() {
            loop {
                let (n, bytes, done) = shard.lock().purge_due(
                    now,
                    PURGE_BATCH,
                    &shared.tags,
                    &shared.totals,
                    &mut dropped,
                );
                shared.purged.add(bytes);
                dropped.clear();
                total += n;
                if done {
                    break;
                }
            }
        }
        total
    }

    /// The earliest deadline in the expiry index, if any. Exact for entries about to
    /// expire (within about a second); for later ones it may be a little early (by less
    /// than a second), which only wakes the purge task early.
    pub fn next_expiry(&self) -> Option<Instant> {
        let shards = self.shared.shards.iter();
        let deadline = shards.filter_map(|s| s.lock().index.earliest()).min()?;
        Some(self.shared.instant(deadline))
    }

    /// Expired entries removed since the store was created.
    pub fn purged_total(&self) -> u64 {
        self.shared
            .shards
            .iter()
            .map(|s| s.lock().purged_total)
            .sum()
    }

    /// Spawns the purge task on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`).
    ///
    /// The task sleeps until the earliest deadline (woken early when a write brings an
    /// earlier one), purges what is due, and also runs at least every `sweep_interval`
    /// (clamped to 1 ms ..= 24 h). It exits when `shutdown` turns true or every `Store`
    /// handle is dropped; if the `shutdown` sender is dropped it keeps running until the
    /// latter.
    ///
    /// One task per store (an early wake-up reaches only one): `None`, spawning nothing,
    /// while a task spawned earlier for this store still runs. The nodes of a process
    /// share one store, so each may ask and the first one gets it.
    pub fn spawn_purger(
        &self,
        sweep_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<JoinHandle<()>> {
        if self.shared.purging.swap(true, AtomicOrdering::AcqRel) {
            return None;
        }
        let running = Running(Arc::clone(&self.shared.purging));
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let notify = Arc::clone(&self.shared.notify);
        let sweep = sweep_interval.clamp(MIN_SWEEP, MAX_SWEEP);
        Some(tokio::spawn(async move {
            // Cleared however the task ends (also aborted), so a later call spawns again.
            let _running = running;
            let mut watching = true;
            loop {
                if *shutdown.borrow() {
                    break;
                }
                let next = match weak.upgrade() {
                    Some(shared) => {
                        let store = Store { shared };
                        let purged = store.purge_expired();
                        if purged > 0 {
                            tracing::debug!(purged, "purged expired keys");
                        }
                        store.next_expiry()
                    }
                    None => break,
                };
                let sweep_at = Instant::now() + sweep;
                let wake_at = next.map_or(sweep_at, |n| n.min(sweep_at));
                tokio::select! {
                    _ = tokio::time::sleep_until(wake_at) => {}
                    _ = notify.notified() => {}
                    changed = shutdown.changed(), if watching => {
                        watching = changed.is_ok();
                    }
                }
            }
        }))
    }
}

/// Marks a store's purge task as running while it lives.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, AtomicOrdering::Release);
    }
}
