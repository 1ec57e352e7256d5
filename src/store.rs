//! The in-memory TTL store: key → [`Record`] with a memory budget, last-writer-wins
//! replacement, an expiry index and a purge task ([`Store::spawn_purger`]).
//!
//! Reads compare deadlines with the clock, so expired data is never returned even
//! before the purge task has freed it. Modelled on mini-redis `src/db.rs`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::antientropy;
use crate::clock::Version;

/// One stored value and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The payload (a shared handle; cloning it never copies the bytes).
    pub value: Bytes,
    /// Wall-clock ms at the origin when written.
    pub created_ms: u64,
    /// Wall-clock ms at which it expires (the origin's absolute expiry; travels between nodes).
    pub expires_ms: u64,
    /// The same deadline as a local tokio `Instant`; reads compare against this.
    pub expires_at: Instant,
    /// Orders writes to the key (last writer wins).
    pub version: Version,
}

impl Record {
    /// Seconds of TTL the origin asked for: `(expires_ms - created_ms) / 1000`, rounded.
    pub fn original_ttl_s(&self) -> u64 {
        self.expires_ms
            .saturating_sub(self.created_ms)
            .saturating_add(500)
            / 1000
    }

    /// Remaining whole seconds at `now`, rounded up (0 once expired).
    pub fn remaining_ttl_s(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }

    /// Bytes charged against the budget for a value of `value_len` bytes under `key`.
    pub fn cost(key: &str, value_len: usize) -> u64 {
        key.len() as u64 + value_len as u64
    }
}

/// What [`Store::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The key was absent (or only held expired data) and now holds the record.
    Inserted,
    /// The record replaced an older version.
    Replaced,
    /// The store already had an equal or newer version: nothing changed.
    Stale,
    /// The record had already expired on arrival: ignored.
    Expired,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Storing the record would exceed the memory budget.
    #[error("storage full: {needed} bytes needed, {available} of {limit} available")]
    Full {
        /// Cost of the refused record ([`Record::cost`]).
        needed: u64,
        /// Budget left, counting the bytes a replaced record would free.
        available: u64,
        /// The budget ([`Store::max_bytes`]).
        limit: u64,
    },
}

/// Cheap handle to a shared store; clones see the same data.
///
/// All state sits behind one `std::sync::Mutex`: critical sections are short and never
/// span an `.await`, so an async mutex would only add cost (see mini-redis `db.rs`).
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the purge task when a write brings an earlier deadline (or the store dies).
    /// Held in its own `Arc` so the task can wait on it without keeping the store alive.
    notify: Arc<Notify>,
    max_bytes: u64,
    /// Deadlines are stored as signed nanoseconds from this instant (8 bytes, not 16).
    epoch: Instant,
}

struct State {
    /// Every stored entry, keyed by its key.
    map: HashSet<ByKey>,
    /// The same entries ordered by (deadline, key): the expiry index.
    index: BTreeSet<ByDeadline>,
    /// Sum of [`Record::cost`] over all entries.
    bytes: u64,
    purged_total: u64,
    /// Per anti-entropy bucket, the XOR of the entry hashes of its entries.
    digest: Vec<u64>,
}

impl Default for State {
    fn default() -> Self {
        State {
            map: HashSet::new(),
            index: BTreeSet::new(),
            bytes: 0,
            purged_total: 0,
            digest: vec![0; antientropy::BUCKETS],
        }
    }
}

/// One entry, shared by the map and the index: a single allocation for keys of up to
/// [`INLINE_KEY`] bytes (128 bytes with glibc malloc).
struct Node {
    key: Key,
    value: Bytes,
    created_ms: u64,
    expires_ms: u64,
    /// `expires_at` as nanoseconds relative to [`Shared::epoch`].
    deadline: i64,
    version: Version,
}

impl Node {
    fn cost(&self) -> u64 {
        self.key.as_bytes().len() as u64 + self.value.len() as u64
    }

    /// (bucket, hash) of this entry in the anti-entropy digest.
    fn digest_part(&self) -> (usize, u64) {
        let key = self.key.as_bytes();
        (
            antientropy::bucket_of(key),
            antientropy::entry_hash(key, self.version),
        )
    }
}

/// Longest key stored inside its [`Node`] rather than in an allocation of its own.
const INLINE_KEY: usize = 30;

/// A key's UTF-8 bytes, inline when short. Compared and hashed as bytes, which orders
/// exactly like `str`.
enum Key {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

impl Key {
    fn new(key: &str) -> Key {
        let bytes = key.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_KEY => {
                let mut buf = [0; INLINE_KEY];
                buf[..bytes.len()].copy_from_slice(bytes);
                Key::Inline(len, buf)
            }
            _ => Key::Heap(bytes.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline(len, buf) => &buf[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }

    /// The key as a `String` (always valid UTF-8: it was built from a `&str`).
    fn string(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }
}

/// Map handle: hashes and compares by key only.
struct ByKey(Arc<Node>);

impl Hash for ByKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.key.as_bytes().hash(state);
    }
}

impl PartialEq for ByKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.key.as_bytes() == other.0.key.as_bytes()
    }
}

impl Eq for ByKey {}

impl Borrow<[u8]> for ByKey {
    fn borrow(&self) -> &[u8] {
        self.0.key.as_bytes()
    }
}

/// Index handle: ordered by (deadline, key).
struct ByDeadline(Arc<Node>);

impl Ord for ByDeadline {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.0.deadline, self.0.key.as_bytes()).cmp(&(other.0.deadline, other.0.key.as_bytes()))
    }
}

impl PartialOrd for ByDeadline {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ByDeadline {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ByDeadline {}

/// Entries freed per lock acquisition by [`Store::purge_expired`].
const PURGE_BATCH: usize = 4096;

/// Bytes ([`Record::cost`]) of the expired entries purged by every store of this process.
static PURGED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Bytes (keys + values) of expired entries purged so far by all stores in this process,
/// together. The binary watches it to hand freed heap memory back to the OS.
pub fn purged_bytes_total() -> u64 {
    PURGED_BYTES.load(AtomicOrdering::Relaxed)
}
/// Bounds for the purge task's safety-net interval.
const MIN_SWEEP: Duration = Duration::from_millis(1);
const MAX_SWEEP: Duration = Duration::from_secs(24 * 3600);

impl Shared {
    /// Locks the state, recovering from poison: no critical section can panic half-way
    /// through a mutation, so the state is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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

    fn record(&self, node: &Node) -> Record {
        Record {
            value: node.value.clone(),
            created_ms: node.created_ms,
            expires_ms: node.expires_ms,
            expires_at: self.instant(node.deadline),
            version: node.version,
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: let the purge task notice and exit.
        self.notify.notify_one();
    }
}

impl State {
    /// Removes `key` from map and index, returning its node.
    fn remove(&mut self, key: &[u8]) -> Option<Arc<Node>> {
        let ByKey(node) = self.map.take(key)?;
        self.toggle_digest(&node);
        let node = ByDeadline(node);
        self.index.remove(&node);
        self.bytes = self.bytes.saturating_sub(node.0.cost());
        Some(node.0)
    }

    /// Add or remove (XOR is its own inverse) `node` in the digest.
    fn toggle_digest(&mut self, node: &Node) {
        let (bucket, hash) = node.digest_part();
        self.digest[bucket] ^= hash;
    }

    /// Removes up to `max` entries with `deadline <= now`, earliest first, moving them
    /// into `freed` (so the caller can drop the payloads after unlocking).
    fn purge_due(&mut self, now: i64, max: usize, freed: &mut Vec<Arc<Node>>) -> usize {
        let mut n = 0;
        while n < max {
            match self.index.first() {
                Some(first) if first.0.deadline <= now => {}
                _ => break,
            }
            let Some(ByDeadline(node)) = self.index.pop_first() else {
                break;
            };
            if self
                .map
                .get(node.key.as_bytes())
                .is_some_and(|m| Arc::ptr_eq(&m.0, &node))
            {
                self.map.remove(node.key.as_bytes());
                self.toggle_digest(&node);
            }
            self.bytes = self.bytes.saturating_sub(node.cost());
            freed.push(node);
            n += 1;
        }
        self.purged_total += n as u64;
        n
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Store")
            .field("len", &state.map.len())
            .field("bytes", &state.bytes)
            .field("max_bytes", &self.shared.max_bytes)
            .finish()
    }
}

impl Store {
    /// New empty store with a budget of `max_bytes` (keys + values). Spawns nothing.
    pub fn new(max_bytes: u64) -> Store {
        Store {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                notify: Arc::new(Notify::new()),
                max_bytes,
                epoch: Instant::now(),
            }),
        }
    }

    /// Stores `rec` under `key` unless the key holds an equal or newer version (last
    /// writer wins, so duplicate delivery is harmless). A record already expired at
    /// `Instant::now()` is ignored ([`Applied::Expired`]).
    ///
    /// Expired-but-unpurged entries count as absent and never block a write: before
    /// refusing with [`StoreError::Full`], due entries are purged. Replacing a key frees
    /// its old bytes first.
    pub fn apply(&self, key: &str, rec: Record) -> Result<Applied, StoreError> {
        let now = Instant::now();
        if rec.expires_at <= now {
            return Ok(Applied::Expired);
        }
        let shared = &*self.shared;
        let now = shared.offset(now);
        let deadline = shared.offset(rec.expires_at);
        let cost = Record::cost(key, rec.value.len());
        let mut freed = Vec::new();
        let mut state = shared.lock();

        let mut old_cost = None;
        if let Some(ByKey(old)) = state.map.get(key.as_bytes()) {
            if old.deadline > now {
                if rec.version <= old.version {
                    return Ok(Applied::Stale);
                }
                old_cost = Some(old.cost());
            } else if let Some(node) = state.remove(key.as_bytes()) {
                // Expired but not yet purged: counts as absent.
                state.purged_total += 1;
                freed.push(node);
            }
        }

        let limit = shared.max_bytes;
        let others = |s: &State| s.bytes.saturating_sub(old_cost.unwrap_or(0));
        if others(&state).saturating_add(cost) > limit {
            state.purge_due(now, usize::MAX, &mut freed);
            let others = others(&state);
            if others.saturating_add(cost) > limit {
                return Err(StoreError::Full {
                    needed: cost,
                    available: limit.saturating_sub(others),
                    limit,
                });
            }
        }

        let earliest = state.index.first().map(|e| e.0.deadline);
        let node = Arc::new(Node {
            key: Key::new(key),
            value: rec.value,
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            deadline,
            version: rec.version,
        });
        if let Some(ByKey(old)) = state.map.replace(ByKey(Arc::clone(&node))) {
            state.bytes = state.bytes.saturating_sub(old.cost());
            state.toggle_digest(&old);
            state.index.remove(&ByDeadline(old));
        }
        state.toggle_digest(&node);
        state.index.insert(ByDeadline(node));
        state.bytes += cost;
        drop(state);
        drop(freed);

        if earliest.map_or(true, |e| deadline < e) {
            shared.notify.notify_one();
        }
        Ok(if old_cost.is_some() {
            Applied::Replaced
        } else {
            Applied::Inserted
        })
    }

    /// The live record under `key`; `None` if absent or expired (`expires_at <= now`).
    pub fn get(&self, key: &str) -> Option<Record> {
        let now = self.shared.offset(Instant::now());
        let state = self.shared.lock();
        let ByKey(node) = state.map.get(key.as_bytes())?;
        (node.deadline > now).then(|| self.shared.record(node))
    }

    /// Live keys starting with `prefix`, in byte order, strictly after `after` if given,
    /// at most `limit` of them. The second item is the last key returned when more keys
    /// remain (the cursor for the next page), else `None`; `limit == 0` returns nothing.
    ///
    /// Scans every entry (O(n log limit)); the map has no key order to save memory.
    pub fn keys(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<String>, Option<String>) {
        if limit == 0 {
            return (Vec::new(), None);
        }
        let now = self.shared.offset(Instant::now());
        let state = self.shared.lock();
        let keep = limit.saturating_add(1);
        // Max-heap of the `limit + 1` smallest matching keys seen so far.
        let (prefix, after) = (prefix.as_bytes(), after.map(str::as_bytes));
        let mut best: BinaryHeap<&[u8]> = BinaryHeap::with_capacity(keep.min(state.map.len()));
        for ByKey(node) in &state.map {
            let key = node.key.as_bytes();
            if node.deadline <= now || !key.starts_with(prefix) || after.is_some_and(|a| key <= a) {
                continue;
            }
            if best.len() < keep {
                best.push(key);
            } else if best.peek().is_some_and(|&top| key < top) {
                best.pop();
                best.push(key);
            }
        }
        let more = best.len() > limit;
        let mut sorted = best.into_sorted_vec();
        sorted.truncate(limit);
        let keys: Vec<String> = sorted
            .into_iter()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        drop(state);
        let next = if more { keys.last().cloned() } else { None };
        (keys, next)
    }

    /// Number of stored keys, live or expired-but-not-yet-purged.
    pub fn len(&self) -> usize {
        self.shared.lock().map.len()
    }

    /// True when no keys are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes charged for the stored keys ([`Record::cost`] summed).
    pub fn bytes(&self) -> u64 {
        self.shared.lock().bytes
    }

    /// The memory budget given to [`Store::new`].
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Removes every entry whose deadline is `<= now` and returns how many. Walks the
    /// expiry index only as far as the due entries, in batches so readers are not
    /// blocked for long; payloads are freed outside the lock.
    pub fn purge_expired(&self) -> usize {
        let now = self.shared.offset(Instant::now());
        let mut total = 0;
        let mut freed = Vec::new();
        loop {
            let n = self.shared.lock().purge_due(now, PURGE_BATCH, &mut freed);
            let bytes: u64 = freed.iter().map(|node| node.cost()).sum();
            PURGED_BYTES.fetch_add(bytes, AtomicOrdering::Relaxed);
            freed.clear();
            total += n;
            if n < PURGE_BATCH {
                return total;
            }
        }
    }

    /// The earliest deadline in the expiry index, if any.
    pub fn next_expiry(&self) -> Option<Instant> {
        let state = self.shared.lock();
        let deadline = state.index.first()?.0.deadline;
        Some(self.shared.instant(deadline))
    }

    /// Every live entry, for sending a full copy to a joining peer. Values are shared
    /// handles, not copies.
    pub fn snapshot(&self) -> Vec<(String, Record)> {
        let now = self.shared.offset(Instant::now());
        let state = self.shared.lock();
        state
            .map
            .iter()
            .filter(|ByKey(node)| node.deadline > now)
            .map(|ByKey(node)| (node.key.string(), self.shared.record(node)))
            .collect()
    }

    /// The anti-entropy digest: per bucket, the XOR of the hashes of its entries.
    pub fn digest(&self) -> Vec<u64> {
        self.shared.lock().digest.clone()
    }

    /// (key, version) of the live entries in the buckets flagged in `buckets` (indexed by
    /// bucket), leaving out entries written after `settled_ms` (by version time).
    pub fn versions_in(&self, buckets: &[bool], settled_ms: u64) -> Vec<(String, Version)> {
        let now = self.shared.offset(Instant::now());
        let state = self.shared.lock();
        state
            .map
            .iter()
            .filter(|ByKey(n)| {
                n.deadline > now
                    && n.version.wall_ms() <= settled_ms
                    && buckets.get(n.digest_part().0).copied().unwrap_or(false)
            })
            .map(|ByKey(n)| (n.key.string(), n.version))
            .collect()
    }

    /// The version of the live entry under `key`.
    pub fn version(&self, key: &str) -> Option<Version> {
        let now = self.shared.offset(Instant::now());
        let state = self.shared.lock();
        let ByKey(node) = state.map.get(key.as_bytes())?;
        (node.deadline > now).then_some(node.version)
    }

    /// Expired entries removed since the store was created.
    pub fn purged_total(&self) -> u64 {
        self.shared.lock().purged_total
    }

    /// Spawns the purge task on the current tokio runtime (panics outside one, like
    /// `tokio::spawn`).
    ///
    /// The task sleeps until the earliest deadline (woken early when a write brings an
    /// earlier one), purges what is due, and also runs at least every `sweep_interval`
    /// (clamped to 1 ms ..= 24 h). It exits when `shutdown` turns true or every `Store`
    /// handle is dropped; if the `shutdown` sender is dropped it keeps running until the
    /// latter. Spawn one per store (an early wake-up reaches only one task).
    pub fn spawn_purger(
        &self,
        sweep_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let notify = Arc::clone(&self.shared.notify);
        let sweep = sweep_interval.clamp(MIN_SWEEP, MAX_SWEEP);
        tokio::spawn(async move {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::now_ms;
    use std::collections::HashMap;
    use tokio::time::advance;

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

    async fn run_pending() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn insert_and_get() {
        let store = Store::new(1024);
        let r = rec("hello", 10_000, 1);
        assert_eq!(store.apply("k", r.clone()), Ok(Applied::Inserted));
        assert_eq!(store.get("k"), Some(r));
        assert_eq!(store.get("missing"), None);
        assert_eq!(store.len(), 1);
        assert!(!store.is_empty());
        assert_eq!(store.max_bytes(), 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn get_is_none_exactly_at_expiry() {
        let store = Store::new(1024);
        store.apply("k", rec("v", 1000, 1)).unwrap();
        advance(Duration::from_millis(999)).await;
        assert!(store.get("k").is_some());
        advance(Duration::from_millis(1)).await;
        assert_eq!(store.get("k"), None);
        advance(Duration::from_secs(5)).await;
        assert_eq!(store.get("k"), None);
        assert_eq!(store.len(), 1, "not purged yet, only hidden");
    }

    #[tokio::test(start_paused = true)]
    async fn last_writer_wins() {
        let store = Store::new(1024);
        assert_eq!(store.apply("k", rec("a", 10_000, 5)), Ok(Applied::Inserted));
        assert_eq!(store.apply("k", rec("b", 10_000, 6)), Ok(Applied::Replaced));
        assert_eq!(store.apply("k", rec("c", 10_000, 4)), Ok(Applied::Stale));
        assert_eq!(store.apply("k", rec("d", 10_000, 6)), Ok(Applied::Stale));
        assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"b")));
        // Same timestamp: the higher origin wins.
        let mut r = rec("e", 10_000, 6);
        r.version.origin = 2;
        assert_eq!(store.apply("k", r), Ok(Applied::Replaced));
        assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"e")));
        assert_eq!(store.len(), 1);
        assert_eq!(store.shared.lock().index.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn expired_entry_counts_as_absent() {
        let store = Store::new(1024);
        store.apply("k", rec("new", 1000, 9)).unwrap();
        advance(Duration::from_secs(1)).await;
        // An older version still wins over a dead one.
        assert_eq!(store.apply("k", rec("old", 1000, 1)), Ok(Applied::Inserted));
        assert_eq!(value(&store, "k"), Some(Bytes::from_static(b"old")));
        assert_eq!(store.purged_total(), 1);
        assert_eq!(store.bytes(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn already_expired_record_is_ignored() {
        let store = Store::new(1024);
        assert_eq!(store.apply("k", rec("v", 0, 1)), Ok(Applied::Expired));
        let mut r = rec("v", 1000, 1);
        r.expires_at = Instant::now() - Duration::from_millis(1);
        assert_eq!(store.apply("k", r), Ok(Applied::Expired));
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
        assert_eq!(store.next_expiry(), None);
    }

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
    async fn purge_removes_only_due_entries() {
        let store = Store::new(1 << 20);
        store.apply("a", rec("1", 1000, 1)).unwrap();
        store.apply("b", rec("22", 2000, 1)).unwrap();
        store.apply("c", rec("333", 3000, 1)).unwrap();
        let start = Instant::now();
        assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(1)));
        assert_eq!(store.purge_expired(), 0);

        advance(Duration::from_millis(1999)).await;
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(store.len(), 2);
        assert_eq!(store.bytes(), 3 + 4);
        assert_eq!(store.next_expiry(), Some(start + Duration::from_secs(2)));

        advance(Duration::from_millis(1)).await;
        assert_eq!(store.purge_expired(), 1);
        assert_eq!(value(&store, "c"), Some(Bytes::from_static(b"333")));
        assert_eq!(store.purged_total(), 2);
        assert_eq!(store.shared.lock().index.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn purge_expired_in_batches() {
        let store = Store::new(u64::MAX);
        let n = PURGE_BATCH * 2 + 7;
        for i in 0..n {
            store.apply(&format!("k{i}"), rec("v", 1000, 1)).unwrap();
        }
        store.apply("live", rec("v", 5000, 1)).unwrap();
        advance(Duration::from_secs(1)).await;
        assert_eq!(store.purge_expired(), n);
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn purger_removes_due_entries_and_stops_on_shutdown() {
        let store = Store::new(1 << 20);
        let (tx, rx) = watch::channel(false);
        let task = store.spawn_purger(Duration::from_secs(3600), rx);
        store.apply("a", rec("v", 1000, 1)).unwrap();
        store.apply("b", rec("v", 5000, 1)).unwrap();
        run_pending().await;

        advance(Duration::from_secs(1)).await;
        run_pending().await;
        assert_eq!(store.len(), 1);
        assert_eq!(store.purged_total(), 1);

        advance(Duration::from_secs(4)).await;
        run_pending().await;
        assert!(store.is_empty());

        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("purger stops on shutdown")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn purger_wakes_early_for_earlier_deadline() {
        let store = Store::new(1 << 20);
        let (_tx, rx) = watch::channel(false);
        store.apply("late", rec("v", 100_000, 1)).unwrap();
        let _task = store.spawn_purger(Duration::from_secs(3600), rx);
        run_pending().await; // the task now sleeps until "late" expires

        store.apply("soon", rec("v", 1000, 1)).unwrap();
        run_pending().await;
        advance(Duration::from_secs(1)).await;
        run_pending().await;
        assert_eq!(store.len(), 1);
        assert!(store.get("late").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn purger_sweeps_and_exits_when_store_dropped() {
        let store = Store::new(1 << 20);
        let (tx, rx) = watch::channel(false);
        drop(tx); // a dropped sender is not a shutdown
        let task = store.spawn_purger(Duration::from_secs(1), rx);
        run_pending().await;
        store.apply("k", rec("v", 500, 1)).unwrap();
        advance(Duration::from_secs(1)).await;
        run_pending().await;
        assert!(store.is_empty());
        assert!(!task.is_finished());

        drop(store);
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("purger stops with its store")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_skips_expired() {
        let store = Store::new(1 << 20);
        let keep = rec("keep", 5000, 1);
        store.apply("keep", keep.clone()).unwrap();
        store.apply("gone", rec("gone", 1000, 1)).unwrap();
        advance(Duration::from_secs(1)).await;
        assert_eq!(store.snapshot(), vec![("keep".to_string(), keep)]);
    }

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
            "one 128-byte malloc chunk per key"
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
        assert!(matches!(Key::new(&short), Key::Inline(..)));
        assert!(matches!(Key::new(&long), Key::Heap(..)));
        assert_eq!(store.get(&short[1..]), None);
        assert_eq!(store.bytes(), (2 * INLINE_KEY + 1 + utf8.len() + 4) as u64);
        let (all, _) = store.keys("", None, 10);
        assert_eq!(all, ["", short.as_str(), long.as_str(), utf8]);
        assert_eq!(store.keys("ключ/", None, 10).0, [utf8]);
        let mut snap: Vec<String> = store.snapshot().into_iter().map(|(k, _)| k).collect();
        snap.sort();
        assert_eq!(snap, all);
    }

    #[test]
    fn the_digest_follows_inserts_replacements_and_purges() {
        let a = Store::new(1 << 20);
        let b = Store::new(1 << 20);
        assert_eq!(a.digest(), b.digest());
        a.apply("k1", rec("x", 60_000, 1)).unwrap();
        a.apply("k2", rec("y", 60_000, 1)).unwrap();
        assert_ne!(a.digest(), b.digest());
        // Same content reached in another order via an older version: same digest.
        b.apply("k2", rec("y", 60_000, 1)).unwrap();
        b.apply("k1", rec("old", 60_000, 0)).unwrap();
        assert_ne!(a.digest(), b.digest());
        b.apply("k1", rec("x", 60_000, 1)).unwrap();
        assert_eq!(a.digest(), b.digest());
        let diff = antientropy::differing(&a.digest(), &Store::new(1).digest());
        assert_eq!(a.versions_in(&diff, u64::MAX).len(), 2);
        assert_eq!(a.version("k1"), Some(version(1)));
        // No bucket flagged: nothing to report.
        let none = vec![false; antientropy::BUCKETS];
        assert!(a.versions_in(&none, u64::MAX).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn purging_removes_entries_from_the_digest() {
        let a = Store::new(1 << 20);
        let empty = a.digest();
        a.apply("k", rec("x", 1_000, 1)).unwrap();
        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert_eq!(a.purge_expired(), 1);
        assert_eq!(a.digest(), empty);
    }

    #[test]
    fn poisoned_lock_is_recovered() {
        let store = Store::new(1024);
        let s = store.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = s.shared.state.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(store.shared.state.is_poisoned());
        assert_eq!(store.len(), 0);
        assert_eq!(store.get("k"), None);
    }

    /// Random writes, reads, time steps and purges against a plain map model.
    #[tokio::test(start_paused = true)]
    async fn randomized_matches_model() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7);
        let store = Store::new(u64::MAX);
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
        assert_eq!(store.shared.lock().index.len(), model.len());
    }
}
