//! The in-memory TTL store: key → [`Record`] with a memory budget, last-writer-wins
//! replacement, an expiry index and a purge task ([`Store::spawn_purger`]).
//!
//! Reads compare deadlines with the clock, so expired data is never returned even
//! before the purge task has freed it. Modelled on mini-redis `src/db.rs`, cut into
//! [`SHARDS`] independently locked shards so that no write waits behind another shard's
//! table growing (a pause of tens of milliseconds for one table of 200k keys).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::antientropy;
use crate::clock::Version;

mod apply;
mod arena;
mod budget;
mod digest;
mod entry;
mod expiry;
mod keys;
mod purge;
mod record;
mod records;
mod shard;
mod tags;
#[cfg(test)]
mod tests;

pub use budget::StoreReservation;
pub use entry::PACKED_VALUE_MAX;
pub use purge::PurgedBytes;
pub use record::{Applied, Record, StoreError};
pub use shard::SHARDS;

use budget::Totals;
use entry::Entry;
use expiry::{Expiry, NEAR};
use shard::{Shard, State, SHARD_BITS};
use tags::{spread, Tags};

/// Cheap handle to a shared store; clones see the same data.
///
/// Entries sit in [`SHARDS`] shards, chosen by the top bits of the key's tag, each
/// behind its own `std::sync::Mutex`: critical sections are short and never span an
/// `.await`, so an async mutex would only add cost (see mini-redis `db.rs`). The byte
/// budget and the anti-entropy digest are shared atomics, updated under the shard lock.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    shards: Box<[Shard]>,
    totals: Totals,
    /// Wakes the purge task when a write brings an earlier deadline (or the store dies).
    /// Held in its own `Arc` so the task can wait on it without keeping the store alive.
    notify: Arc<Notify>,
    max_bytes: u64,
    /// Bytes promised to uploads still being received ([`Store::reserve`]): only new
    /// reservations count them, so a write never fails because of its own.
    reserved: AtomicU64,
    /// Deadlines are stored as signed nanoseconds from this instant (8 bytes, not 16).
    epoch: Instant,
    /// Hashes keys to tags; outside the lock, it never changes.
    tags: Tags,
    /// Index entries read by listings ([`Store::keys`], [`Store::scan`]).
    listed: AtomicU64,
    /// Where this store counts the bytes its purges free.
    purged: PurgedBytes,
    /// True while a purge task runs for this store ([`Store::spawn_purger`]); shared
    /// with the task, which clears it when it ends.
    purging: Arc<AtomicBool>,
}

impl Shared {
    /// The shard that holds the keys of tag `tag`.
    fn shard(&self, tag: u32) -> &Shard {
        // The top bits: the low ones pick the bucket inside the shard's table.
        let i = (tag >> (u32::BITS - SHARD_BITS)) as usize;
        &self.shards[i % self.shards.len()]
    }

    /// Locks the shard of tag `tag`.
    fn lock(&self, tag: u32) -> MutexGuard<'_, State> {
        self.shard(tag).lock()
    }

    /// `t` as signed nanoseconds from the epoch (saturating after ~292 years).
    fn offset(&self, t: Instant) -> i64 {
        let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match t.checked_duration_since(self.epoch) {
            Some(d) => nanos(d),
            None => -nanos(self.epoch.saturating_duration_since(t)),
        }
    }

    /// Inverse of [`Shared::offset`].
    fn instant(&self, offset: i64) -> Instant {
        let d = Duration::from_nanos(offset.unsigned_abs());
        let t = if offset >= 0 {
            self.epoch.checked_add(d)
        } else {
            self.epoch.checked_sub(d)
        };
        t.unwrap_or(self.epoch)
    }

    fn record(&self, node: &Entry<'_>) -> Record {
        Record {
            value: node.value(),
            created_ms: node.created_ms(),
            expires_ms: node.expires_ms(),
            expires_at: self.instant(node.deadline()),
            version: node.version(),
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: let the purge task notice and exit.
        self.notify.notify_one();
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.len())
            .field("bytes", &self.bytes())
            .field("max_bytes", &self.shared.max_bytes)
            .finish()
    }
}

impl Store {
    /// New empty store with a budget of `max_bytes` (keys + values). Spawns nothing.
    pub fn new(max_bytes: u64) -> Store {
        Store::with_purged_bytes(max_bytes, PurgedBytes::default())
    }

    /// [`Store::new`], counting the bytes its purges free in `purged` (which other stores
    /// may share).
    pub fn with_purged_bytes(max_bytes: u64, purged: PurgedBytes) -> Store {
        Store::with_tags(max_bytes, Tags::new(), purged)
    }

    fn with_tags(max_bytes: u64, tags: Tags, purged: PurgedBytes) -> Store {
        Store {
            shared: Arc::new(Shared {
                shards: (0..SHARDS)
                    .map(|_| Shard(Mutex::new(State::default())))
                    .collect(),
                totals: Totals {
                    bytes: AtomicU64::new(0),
                    digest: (0..antientropy::BUCKETS)
                        .map(|_| AtomicU64::new(0))
                        .collect(),
                },
                notify: Arc::new(Notify::new()),
                max_bytes,
                reserved: AtomicU64::new(0),
                epoch: Instant::now(),
                tags,
                listed: AtomicU64::new(0),
                purged,
                purging: Arc::default(),
            }),
        }
    }

    /// The live record under `key`; `None` if absent or expired (`expires_at <= now`).
    pub fn get(&self, key: &str) -> Option<Record> {
        let now = self.shared.offset(Instant::now());
        let tag = self.shared.tags.of(key.as_bytes());
        let state = self.shared.lock(tag);
        let node = state.get(key.as_bytes(), tag)?;
        (node.deadline() > now).then(|| self.shared.record(&node))
    }

    /// The version of the live entry under `key`.
    pub fn version(&self, key: &str) -> Option<Version> {
        let now = self.shared.offset(Instant::now());
        let tag = self.shared.tags.of(key.as_bytes());
        let state = self.shared.lock(tag);
        let node = state.get(key.as_bytes(), tag)?;
        (node.deadline() > now).then(|| node.version())
    }

    /// Number of stored keys, live or expired-but-not-yet-purged.
    pub fn len(&self) -> usize {
        self.shared.shards.iter().map(|s| s.lock().map.len()).sum()
    }

    /// True when no keys are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged for the stored keys ([`Record::cost`] summed).
    pub fn bytes(&self) -> u64 {
        self.shared.totals.bytes.load(AtomicOrdering::Relaxed)
    }

    /// True when `other` is a handle to this very store.
    pub fn is_same(&self, other: &Store) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The memory budget given to [`Store::new`].
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }
}
