//! The in-memory TTL store: key → [`Record`] with a memory budget, last-writer-wins
//! replacement, an expiry index and a purge task ([`Store::spawn_purger`]).
//!
//! Reads compare deadlines with the clock, so expired data is never returned even
//! before the purge task has freed it. Modelled on mini-redis `src/db.rs`, cut into
//! [`SHARDS`] independently locked shards so that no write waits behind another shard's
//! table growing (a pause of tens of milliseconds for one table of 200k keys).

use std::cmp::Reverse;
use std::collections::{btree_map, BTreeMap};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashTable;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::antientropy;
use crate::clock::Version;
use crate::listing::{self, Order, Resume, Run};

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
/// Entries sit in [`SHARDS`] shards, chosen by the top bits of the key's tag, each
/// behind its own `std::sync::Mutex`: critical sections are short and never span an
/// `.await`, so an async mutex would only add cost (see mini-redis `db.rs`). The byte
/// budget and the anti-entropy digest are shared atomics, updated under the shard lock.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

/// log2 of [`SHARDS`].
const SHARD_BITS: u32 = 5;
/// Independently locked parts of a store.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// One shard, on a cache line of its own so that two threads locking neighbouring
/// shards do not contend.
#[repr(align(64))]
struct Shard(Mutex<State>);

struct Shared {
    shards: Box<[Shard]>,
    totals: Totals,
    /// Wakes the purge task when a write brings an earlier deadline (or the store dies).
    /// Held in its own `Arc` so the task can wait on it without keeping the store alive.
    notify: Arc<Notify>,
    max_bytes: u64,
    /// Deadlines are stored as signed nanoseconds from this instant (8 bytes, not 16).
    epoch: Instant,
    /// Hashes keys to tags; outside the lock, it never changes.
    tags: Tags,
    /// Index entries read by listings ([`Store::keys`], [`Store::scan`]).
    listed: AtomicU64,
}

/// What the shards add up together.
struct Totals {
    /// Sum of [`Record::cost`] over all entries. A write reserves its bytes here before
    /// it inserts, so concurrent writes never overrun the budget together.
    bytes: AtomicU64,
    /// Per anti-entropy bucket, the XOR of the entry hashes of its entries (XOR is
    /// commutative, so shards update it independently).
    digest: Box<[AtomicU64]>,
}

impl Totals {
    /// Add or remove (XOR is its own inverse) `node` in the digest.
    fn toggle(&self, node: &Node) {
        let (bucket, hash) = node.digest_part();
        if let Some(slot) = self.digest.get(bucket) {
            slot.fetch_xor(hash, AtomicOrdering::Relaxed);
        }
    }

    /// `node` left the store.
    fn release(&self, node: &Node) {
        self.bytes.fetch_sub(node.cost(), AtomicOrdering::Relaxed);
        self.toggle(node);
    }
}

/// One shard's entries.
#[derive(Default)]
struct State {
    /// Every entry of the shard, hashed by the tag of its key ([`Tags`]) so that the
    /// expiry index can find an entry from its tag alone.
    map: HashTable<Box<Node>>,
    /// When each entry expires: the purge's work list.
    index: Expiry,
    /// Key order and creation order, for listings.
    order: Order,
    purged_total: u64,
}

/// One entry, owned by the map: a single 104-byte allocation (a 112-byte glibc chunk)
/// for keys of up to [`INLINE_KEY`] bytes.
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
const INLINE_KEY: usize = 26;

/// A key's UTF-8 bytes, inline when short, compared and hashed as bytes (which orders
/// exactly like `str`). It also carries the entry's place in the expiry index
/// ([`Expiry`]): the 4 bytes fit in what the enum would otherwise leave as padding.
enum Key {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY],
        place: u32,
    },
    Heap {
        bytes: Box<[u8]>,
        place: u32,
    },
}

impl Key {
    fn new(key: &str) -> Key {
        let bytes = key.as_bytes();
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE_KEY => {
                let mut buf = [0; INLINE_KEY];
                buf[..bytes.len()].copy_from_slice(bytes);
                Key::Inline {
                    len,
                    bytes: buf,
                    place: NEAR,
                }
            }
            _ => Key::Heap {
                bytes: bytes.into(),
                place: NEAR,
            },
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes, .. } => &bytes[..usize::from(*len)],
            Key::Heap { bytes, .. } => bytes,
        }
    }

    /// The key as a `String` (always valid UTF-8: it was built from a `&str`).
    fn string(&self) -> String {
        String::from_utf8_lossy(self.as_bytes()).into_owned()
    }

    /// Where the expiry index files the entry: [`NEAR`], or its position in its slot.
    fn place(&self) -> u32 {
        match self {
            Key::Inline { place, .. } | Key::Heap { place, .. } => *place,
        }
    }

    fn set_place(&mut self, to: u32) {
        match self {
            Key::Inline { place, .. } | Key::Heap { place, .. } => *place = to,
        }
    }
}

/// Turns keys into tags: 32-bit keyed hashes (SipHash with a per-store random key, so
/// clients cannot aim collisions at the map). The map is hashed by the tag alone, which
/// lets the expiry index name an entry in 4 bytes.
struct Tags {
    hasher: RandomState,
    /// All ones; tests clear bits to force collisions.
    mask: u32,
}

impl Tags {
    fn new() -> Tags {
        Tags::masked(u32::MAX)
    }

    /// Tags limited to the bits of `mask` (`u32::MAX` but in tests).
    fn masked(mask: u32) -> Tags {
        Tags {
            hasher: RandomState::new(),
            mask,
        }
    }

    fn of(&self, key: &[u8]) -> u32 {
        // Truncation intended: the low 32 bits of a 64-bit hash.
        (self.hasher.hash_one(key) as u32) & self.mask
    }
}

/// The map hash of a tag: its 32 bits spread over 64 (hashbrown takes the control byte
/// from the top bits and the bucket from the bottom ones).
fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// log2 of the width of an expiry slot, in nanoseconds (2^30 ns ≈ 1.07 s).
const SLOT_BITS: u32 = 30;

/// [`Key::place`] of an entry filed in [`Expiry::near`].
const NEAR: u32 = u32::MAX;

fn slot_of(deadline: i64) -> i64 {
    deadline >> SLOT_BITS
}

fn slot_start(slot: i64) -> i64 {
    slot.saturating_mul(1 << SLOT_BITS)
}

fn slot_end(slot: i64) -> i64 {
    slot.saturating_add(1).saturating_mul(1 << SLOT_BITS)
}

/// The expiry index: which entries the purge removes, and when.
///
/// Deadlines from `near_end` on are filed coarsely, in slots of 2^[`SLOT_BITS`] ns: per
/// slot, the tags of its entries in no order (4 bytes an entry), and each entry knows its
/// position there ([`Key::place`]), so removing one is a swap with the slot's last tag.
/// Once a slot has started, the purge moves its entries, a batch at a time, into `near`:
/// (deadline, tag) in order, counted for the rare entries that share both. Deadlines
/// before `near_end` (short TTLs) are filed there directly.
struct Expiry {
    near: BTreeMap<(i64, u32), u32>,
    /// Only grows. Every slot but the first starts at or after it; the first may start
    /// before it while the purge is moving it into `near`.
    near_end: i64,
    far: BTreeMap<i64, Slot>,
}

struct Slot {
    /// The tags of the entries filed here, at their [`Key::place`].
    tags: Vec<u32>,
    /// No entry here expires before this (exact until the earliest one leaves).
    min: i64,
}

impl Default for Expiry {
    fn default() -> Self {
        Expiry {
            near: BTreeMap::new(),
            near_end: i64::MIN,
            far: BTreeMap::new(),
        }
    }
}

impl Expiry {
    /// Files a new entry; returns its [`Key::place`].
    fn file(&mut self, deadline: i64, tag: u32) -> u32 {
        if deadline >= self.near_end {
            let slot = self.far.entry(slot_of(deadline)).or_insert(Slot {
                tags: Vec::new(),
                min: deadline,
            });
            // (A slot of 2^32 entries would not fit in memory; NEAR is the way out.)
            if let Ok(place) = u32::try_from(slot.tags.len()) {
                if place != NEAR {
                    slot.tags.push(tag);
                    slot.min = slot.min.min(deadline);
                    return place;
                }
            }
        }
        *self.near.entry((deadline, tag)).or_insert(0) += 1;
        NEAR
    }

    /// Unfiles an entry that has left the map. Filling the gap moves another entry of
    /// the slot, whose place is updated in `map`.
    fn unfile(&mut self, node: &Node, tag: u32, map: &mut HashTable<Box<Node>>) {
        let place = node.key.place();
        if place == NEAR {
            if let btree_map::Entry::Occupied(mut e) = self.near.entry((node.deadline, tag)) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            return;
        }
        let s = slot_of(node.deadline);
        let btree_map::Entry::Occupied(mut e) = self.far.entry(s) else {
            return;
        };
        let tags = &mut e.get_mut().tags;
        let place = place as usize;
        if tags.get(place) != Some(&tag) {
            return; // not filed here (cannot happen)
        }
        tags.swap_remove(place);
        if let Some(&moved) = tags.get(place) {
            let last = tags.len();
            if let Some(other) = at_place(map, moved, s, last) {
                other.key.set_place(place as u32);
            }
        }
        if tags.is_empty() {
            e.remove();
        } else if tags.capacity() > 16 && tags.len() * 4 <= tags.capacity() {
            tags.shrink_to(tags.len() * 2);
        }
    }

    /// Moves up to `budget` entries of the first slot into `near` if that slot has
    /// started by `now`. Returns how many it moved (0: no slot has started).
    fn promote(&mut self, now: i64, budget: usize, map: &mut HashTable<Box<Node>>) -> usize {
        let Some(mut first) = self.far.first_entry() else {
            return 0;
        };
        let s = *first.key();
        if slot_start(s) > now {
            return 0;
        }
        // New entries of this slot go to `near` from now on.
        self.near_end = self.near_end.max(slot_end(s));
        let tags = &mut first.get_mut().tags;
        let mut moved = 0;
        while moved < budget.max(1) {
            let Some(tag) = tags.pop() else { break };
            moved += 1;
            if let Some(node) = at_place(map, tag, s, tags.len()) {
                node.key.set_place(NEAR);
                *self.near.entry((node.deadline, tag)).or_insert(0) += 1;
            }
        }
        if tags.is_empty() {
            first.remove();
        }
        moved
    }

    /// Removes up to `budget` entries of the first slot from `map` into `freed` if that
    /// whole slot has expired by `now`. Returns how many it took (0: none has).
    // Boxes: see `State::purge_due`.
    #[allow(clippy::vec_box)]
    fn take_ended(
        &mut self,
        now: i64,
        budget: usize,
        map: &mut HashTable<Box<Node>>,
        freed: &mut Vec<Box<Node>>,
    ) -> usize {
        let Some(mut first) = self.far.first_entry() else {
            return 0;
        };
        let s = *first.key();
        if slot_end(s) > now {
            return 0;
        }
        let tags = &mut first.get_mut().tags;
        let mut taken = 0;
        while taken < budget.max(1) {
            let Some(tag) = tags.pop() else { break };
            taken += 1;
            let Ok(place) = u32::try_from(tags.len()) else {
                continue;
            };
            let found = map.find_entry(spread(tag), |node| {
                node.key.place() == place && slot_of(node.deadline) == s
            });
            if let Ok(found) = found {
                freed.push(found.remove().0);
            }
        }
        if tags.is_empty() {
            first.remove();
        }
        taken
    }

    /// The earliest deadline filed, or a little before it: the first slot's `min` may be
    /// the deadline of an entry that has since left.
    fn earliest(&self) -> Option<i64> {
        let near = self
            .near
            .first_key_value()
            .map(|(&(deadline, _), _)| deadline);
        let far = self.far.first_key_value().map(|(_, slot)| slot.min);
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Entries filed.
    #[cfg(test)]
    fn len(&self) -> usize {
        let near: u32 = self.near.values().sum();
        near as usize + self.far.values().map(|s| s.tags.len()).sum::<usize>()
    }
}

/// The entry filed at `place` in slot `s` with tag `tag` (the place is unique in a
/// slot, so the tag only narrows the search).
fn at_place(map: &mut HashTable<Box<Node>>, tag: u32, s: i64, place: usize) -> Option<&mut Node> {
    let place = u32::try_from(place).ok()?;
    map.iter_hash_mut(spread(tag))
        .map(|node| &mut **node)
        .find(|node| node.key.place() == place && slot_of(node.deadline) == s)
}

/// Work units (entries looked up or freed) per lock acquisition by
/// [`Store::purge_expired`].
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

impl Shard {
    /// Locks the shard, recovering from poison: no critical section can panic half-way
    /// through a mutation, so the state is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    /// The entry under `key` (whose tag is `tag`).
    fn get(&self, key: &[u8], tag: u32) -> Option<&Node> {
        let node = self.map.find(spread(tag), |n| n.key.as_bytes() == key)?;
        Some(node)
    }

    /// Stores `node` (whose key has tag `tag`), returning the entry it replaced. The
    /// caller has already charged the new entry's bytes and released the old one's.
    fn insert(
        &mut self,
        mut node: Box<Node>,
        tag: u32,
        tags: &Tags,
        totals: &Totals,
    ) -> Option<Box<Node>> {
        let hash = spread(tag);
        let key = node.key.as_bytes();
        let old = match self.map.find_entry(hash, |n| n.key.as_bytes() == key) {
            Ok(found) => Some(found.remove().0),
            Err(_) => None,
        };
        let deadline = node.deadline;
        // Same slot: the new entry takes the old one's place (same key, same tag).
        let same_slot = old
            .as_ref()
            .filter(|old| old.key.place() != NEAR && slot_of(old.deadline) == slot_of(deadline))
            .and_then(|old| {
                let slot = self.index.far.get_mut(&slot_of(deadline))?;
                slot.min = slot.min.min(deadline);
                Some(old.key.place())
            });
        let place = match (same_slot, &old) {
            (Some(place), _) => place,
            (None, Some(old)) => {
                self.index.unfile(old, tag, &mut self.map);
                self.index.file(deadline, tag)
            }
            (None, None) => self.index.file(deadline, tag),
        };
        node.key.set_place(place);
        if let Some(old) = &old {
            totals.toggle(old);
            self.order.recreate(old.created_ms, node.created_ms, tag);
        } else {
            self.order.add(node.key.as_bytes(), node.created_ms, tag);
        }
        totals.toggle(&node);
        self.map
            .insert_unique(hash, node, |n| spread(tags.of(n.key.as_bytes())));
        old
    }

    /// Removes the entry under `key` (whose tag is `tag`).
    fn remove(&mut self, key: &[u8], tag: u32, totals: &Totals) -> Option<Box<Node>> {
        let found = self
            .map
            .find_entry(spread(tag), |n| n.key.as_bytes() == key);
        let (node, _) = found.ok()?.remove();
        totals.release(&node);
        self.index.unfile(&node, tag, &mut self.map);
        self.order.remove(key, node.created_ms, tag);
        Some(node)
    }

    /// Removes entries with `deadline <= now`, earliest first, moving them into `freed`
    /// (so the caller can drop the payloads after unlocking), until about `budget`
    /// entries were looked up or removed. Returns how many it removed and whether it
    /// removed them all.
    // Boxes, not nodes: moving the entries out of the map then copies no node and frees
    // no allocation under the lock.
    #[allow(clippy::vec_box)]
    fn purge_due(
        &mut self,
        now: i64,
        budget: usize,
        tags: &Tags,
        totals: &Totals,
        freed: &mut Vec<Box<Node>>,
    ) -> (usize, bool) {
        let first_freed = freed.len();
        let mut work = 0;
        let done = loop {
            if work >= budget {
                break false;
            }
            let room = budget - work;
            let taken = self.index.take_ended(now, room, &mut self.map, freed);
            if taken > 0 {
                work += taken;
                continue;
            }
            let moved = self.index.promote(now, room, &mut self.map);
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
            for _ in 0..count {
                let Ok(found) = self.map.find_entry(spread(tag), |node| {
                    node.deadline == deadline
                        && node.key.place() == NEAR
                        && tags.of(node.key.as_bytes()) == tag
                }) else {
                    break;
                };
                freed.push(found.remove().0);
                work += 1;
            }
        };
        let removed = freed.len() - first_freed;
        for node in &freed[first_freed..] {
            totals.release(node);
            let key = node.key.as_bytes();
            self.order.remove(key, node.created_ms, tags.of(key));
        }
        self.purged_total += removed as u64;
        (removed, done)
    }
}

#[cfg(test)]
impl State {
    /// Asserts that the expiry index files exactly the entries of the map, each where
    /// its [`Key::place`] says.
    fn check_index(&self, tags: &Tags) {
        assert_eq!(self.order.lens(), (self.map.len(), self.map.len()));
        let index = &self.index;
        let mut near = BTreeMap::new();
        let mut far = BTreeMap::new();
        for node in self.map.iter() {
            let tag = tags.of(node.key.as_bytes());
            let place = node.key.place();
            if place == NEAR {
                *near.entry((node.deadline, tag)).or_insert(0u32) += 1;
            } else {
                let s = slot_of(node.deadline);
                let slot = &index.far[&s];
                assert_eq!(slot.tags[place as usize], tag);
                assert!(slot.min <= node.deadline);
                *far.entry(s).or_insert(0usize) += 1;
            }
        }
        assert_eq!(index.near, near);
        let filed: BTreeMap<i64, usize> = index
            .far
            .iter()
            .map(|(&s, slot)| (s, slot.tags.len()))
            .collect();
        assert_eq!(filed, far);
        for (i, &s) in index.far.keys().enumerate() {
            assert!(i == 0 || slot_start(s) >= index.near_end);
        }
        for &(deadline, _) in index.near.keys() {
            assert!(deadline < index.near_end);
        }
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
        Store::with_tags(max_bytes, Tags::new())
    }

    fn with_tags(max_bytes: u64, tags: Tags) -> Store {
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
                epoch: Instant::now(),
                tags,
                listed: AtomicU64::new(0),
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
        self.apply_over(key, rec, u64::MAX)
    }

    /// [`Store::apply`], except that a held version whose HLC is above `ceiling` (dated
    /// beyond the clock skew this node tolerates: stored before its clock stepped back,
    /// or by an older build) never wins: `rec` replaces it. Without this, such an entry
    /// would beat every real write of its key for as long as it lives.
    pub fn apply_over(&self, key: &str, rec: Record, ceiling: u64) -> Result<Applied, StoreError> {
        let now = Instant::now();
        if rec.expires_at <= now {
            return Ok(Applied::Expired);
        }
        let shared = &*self.shared;
        let now = shared.offset(now);
        let deadline = shared.offset(rec.expires_at);
        let cost = Record::cost(key, rec.value.len());
        let tags = &shared.tags;
        let totals = &shared.totals;
        let tag = tags.of(key.as_bytes());
        let node = Box::new(Node {
            key: Key::new(key),
            value: rec.value,
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            deadline,
            version: rec.version,
        });
        let mut freed = Vec::new();
        let mut purged = false;
        let (replaced, earliest, old_cost) = loop {
            let mut state = shared.lock(tag);
            let mut old_cost = None;
            if let Some(old) = state.get(key.as_bytes(), tag) {
                if old.deadline > now {
                    if rec.version <= old.version && old.version.hlc <= ceiling {
                        return Ok(Applied::Stale);
                    }
                    old_cost = Some(old.cost());
                } else if let Some(dead) = state.remove(key.as_bytes(), tag, totals) {
                    // Expired but not yet purged: counts as absent.
                    state.purged_total += 1;
                    freed.push(dead);
                }
            }
            // Charge the new bytes and release the replaced ones in one step.
            let limit = shared.max_bytes;
            let reserved = totals.bytes.fetch_update(
                AtomicOrdering::Relaxed,
                AtomicOrdering::Relaxed,
                |bytes| {
                    let others = bytes.saturating_sub(old_cost.unwrap_or(0));
                    (others.saturating_add(cost) <= limit).then(|| others + cost)
                },
            );
            match reserved {
                Ok(_) => {
                    let earliest = state.index.earliest();
                    let replaced = state.insert(node, tag, tags, totals);
                    break (replaced, earliest, old_cost);
                }
                Err(bytes) if purged => {
                    let others = bytes.saturating_sub(old_cost.unwrap_or(0));
                    return Err(StoreError::Full {
                        needed: cost,
                        available: limit.saturating_sub(others),
                        limit,
                    });
                }
                Err(_) => {
                    // Free what has expired in every shard, then try once more.
                    drop(state);
                    self.purge_expired();
                    purged = true;
                }
            }
        };
        drop(freed);
        drop(replaced);

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
        let tag = self.shared.tags.of(key.as_bytes());
        let state = self.shared.lock(tag);
        let node = state.get(key.as_bytes(), tag)?;
        (node.deadline > now).then(|| self.shared.record(node))
    }

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
                state.get(key, tag).is_some_and(|n| n.deadline > now)
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
                let same = state.map.iter_hash(spread(tag));
                let live = same.filter(|n| n.created_ms == ms && n.deadline > now);
                page.extend(live.map(|n| Reverse((ms, n.key.string()))));
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

    /// The memory budget given to [`Store::new`].
    pub fn max_bytes(&self) -> u64 {
        self.shared.max_bytes
    }

    /// Removes every entry whose deadline is `<= now` and returns how many. Walks the
    /// expiry index only as far as the due entries, in batches so readers are not
    /// blocked for long; payloads are freed outside the lock.
    pub fn purge_expired(&self) -> usize {
        let shared = &*self.shared;
        let now = shared.offset(Instant::now());
        let mut total = 0;
        let mut freed = Vec::new();
        for shard in shared.shards.iter() {
            loop {
                let (n, done) = shard.lock().purge_due(
                    now,
                    PURGE_BATCH,
                    &shared.tags,
                    &shared.totals,
                    &mut freed,
                );
                let bytes: u64 = freed.iter().map(|node| node.cost()).sum();
                PURGED_BYTES.fetch_add(bytes, AtomicOrdering::Relaxed);
                freed.clear();
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

    /// Every live entry, for sending a full copy to a joining peer. Values are shared
    /// handles, not copies.
    pub fn snapshot(&self) -> Vec<(String, Record)> {
        self.collect(|node| Some((node.key.string(), self.shared.record(node))))
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
            (n.version.wall_ms() <= settled_ms && flagged).then(|| (n.key.string(), n.version))
        })
    }

    /// `pick` applied to every live entry, shard by shard, keeping its `Some`s.
    fn collect<T>(&self, mut pick: impl FnMut(&Node) -> Option<T>) -> Vec<T> {
        let now = self.shared.offset(Instant::now());
        let mut out = Vec::new();
        for shard in self.shared.shards.iter() {
            let state = shard.lock();
            let live = state.map.iter().filter(|node| node.deadline > now);
            out.extend(live.filter_map(|node| pick(node)));
        }
        out
    }

    /// The version of the live entry under `key`.
    pub fn version(&self, key: &str) -> Option<Version> {
        let now = self.shared.offset(Instant::now());
        let tag = self.shared.tags.of(key.as_bytes());
        let state = self.shared.lock(tag);
        let node = state.get(key.as_bytes(), tag)?;
        (node.deadline > now).then_some(node.version)
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
    /// Checks the expiry index of every shard, and that each entry is in the shard of its
    /// tag; returns the entries filed.
    fn check_all(store: &Store) -> usize {
        let shared = &store.shared;
        let mut filed = 0;
        for (i, shard) in shared.shards.iter().enumerate() {
            let state = shard.lock();
            state.check_index(&shared.tags);
            for node in state.map.iter() {
                let tag = shared.tags.of(node.key.as_bytes());
                assert!(std::ptr::eq(shared.shard(tag), &shared.shards[i]));
            }
            filed += state.index.len();
        }
        filed
    }

    /// A store whose keys all land in shard 0 (tags keep 27 bits).
    fn one_shard_store() -> Store {
        Store::with_tags(u64::MAX, Tags::masked(u32::MAX >> SHARD_BITS))
    }

    /// Shard 0 of a store whose other shards are empty.
    fn only(store: &Store) -> MutexGuard<'_, State> {
        let shards = &store.shared.shards;
        assert!(shards[1..].iter().all(|s| s.lock().map.is_empty()));
        shards[0].lock()
    }

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
    async fn a_held_version_beyond_the_ceiling_never_wins() {
        let store = Store::new(1024);
        store
            .apply("k", rec("from-the-future", 10_000, 1_000))
            .unwrap();
        // Under the plain rule the newer version stays ...
        assert_eq!(store.apply("k", rec("now", 10_000, 10)), Ok(Applied::Stale));
        // ... but not when it lies above the ceiling: then any version replaces it.
        assert_eq!(
            store.apply_over("k", rec("now", 10_000, 10), 999),
            Ok(Applied::Replaced)
        );
        assert_eq!(value(&store, "k").as_deref(), Some(&b"now"[..]));
        assert_eq!(
            store.apply_over("k", rec("older", 10_000, 9), 999),
            Ok(Applied::Stale)
        );
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
        assert_eq!(check_all(&store), 1);
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

    /// Threads writing to different shards at once share one budget: together they never
    /// overrun it, and the bytes charged are exactly those of the entries stored.
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
        assert_eq!(check_all(&store), 1);
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
            let _guards: Vec<_> = s.shared.shards.iter().map(|shard| shard.0.lock()).collect();
            panic!("poison the locks");
        })
        .join();
        assert!(panicked.is_err());
        assert!(store
            .shared
            .shards
            .iter()
            .all(|shard| shard.0.is_poisoned()));
        assert_eq!(store.len(), 0);
        assert_eq!(store.get("k"), None);
    }

    /// Random writes, reads, time steps and purges against a plain map model.
    #[tokio::test(start_paused = true)]
    async fn randomized_matches_model() {
        against_model(Store::new(u64::MAX), 7).await;
    }

    /// The same with every key on one of two tags (0 and 1): the map and the expiry
    /// index must tell entries apart by key and deadline.
    #[tokio::test(start_paused = true)]
    async fn randomized_with_tag_collisions() {
        against_model(Store::with_tags(u64::MAX, Tags::masked(1)), 8).await;
        against_model(Store::with_tags(u64::MAX, Tags::masked(0)), 9).await;
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

    #[tokio::test(start_paused = true)]
    async fn keys_page_in_order_and_skip_expired_entries() {
        let store = Store::new(u64::MAX);
        let mut live = Vec::new();
        for i in 0..2000u64 {
            let key = format!("p{}/{i:05}", i % 3);
            // Every fifth key expires before the listing.
            let ttl = if i % 5 == 0 { 1_000 } else { 60_000 };
            store.apply(&key, rec("v", ttl, 1)).unwrap();
            if i % 5 != 0 {
                live.push(key);
            }
        }
        advance(Duration::from_secs(2)).await;
        live.sort();
        assert_eq!(pages(&store, "", 100), live);
        assert_eq!(pages(&store, "", 1), live);
        let p1: Vec<_> = live
            .iter()
            .filter(|k| k.starts_with("p1/"))
            .cloned()
            .collect();
        assert_eq!(pages(&store, "p1/", 7), p1);
        // A cursor before the prefix starts at the prefix; one after it ends the list.
        assert_eq!(store.keys("p1/", Some("a"), 5).0, p1[..5]);
        assert_eq!(store.keys("p1/", Some("p2"), 5), (vec![], None));
        assert_eq!(store.keys("p1/", Some(&p1[9]), 1).0, [p1[10].clone()]);
        assert_eq!(store.keys("q", None, 5), (vec![], None));
        let (page, next) = store.keys("", None, live.len());
        assert_eq!((page.len(), next), (live.len(), None));
        store.purge_expired();
        check_all(&store);
        assert_eq!(pages(&store, "", 64), live);
    }

    #[tokio::test(start_paused = true)]
    async fn scan_gives_the_most_recent_keys_oldest_first() {
        let store = Store::new(u64::MAX);
        let mut want = Vec::new();
        for i in 0..500u64 {
            let mut r = rec("v", if i % 7 == 0 { 1_000 } else { 60_000 }, 1);
            // Creation times out of insertion order, several keys per millisecond.
            r.created_ms = 1_000_000 + (i * 37 % 500) / 3;
            let key = format!("k{i}");
            store.apply(&key, r.clone()).unwrap();
            if i % 7 != 0 {
                want.push((r.created_ms, key));
            }
        }
        // A rewrite moves a key to its new creation time.
        let mut r = rec("w", 60_000, 2);
        r.created_ms = 2_000_000;
        store.apply("k1", r).unwrap();
        want.retain(|(_, k)| k != "k1");
        want.push((2_000_000, "k1".to_string()));
        advance(Duration::from_secs(2)).await;
        want.sort();
        let keys: Vec<String> = want.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(store.scan(10_000), keys);
        assert_eq!(store.scan(20), keys[keys.len() - 20..]);
        assert_eq!(store.scan(1), ["k1"]);
        assert!(store.scan(0).is_empty());
        store.purge_expired();
        check_all(&store);
        assert_eq!(store.scan(100), keys[keys.len() - 100..]);
    }

    #[tokio::test(start_paused = true)]
    async fn purge_under_tag_collisions_removes_only_expired_entries() {
        let store = Store::with_tags(u64::MAX, Tags::masked(0));
        // One tag for all; deadlines 1..=4 s, several keys on each.
        for i in 0..20u64 {
            let ttl = 1000 * (i % 4 + 1);
            store.apply(&format!("k{i}"), rec("v", ttl, 1)).unwrap();
        }
        advance(Duration::from_millis(2000)).await;
        assert_eq!(store.purge_expired(), 10);
        for i in 0..20u64 {
            assert_eq!(store.get(&format!("k{i}")).is_some(), i % 4 >= 2, "k{i}");
        }
        assert_eq!(store.len(), 10);
        assert_eq!(
            store.next_expiry(),
            Some(Instant::now() + Duration::from_secs(1))
        );
        check_all(&store);
        advance(Duration::from_millis(2000)).await;
        assert_eq!(store.purge_expired(), 10);
        assert!(store.is_empty());
        assert_eq!(check_all(&store), 0);
    }

    /// Overwrites move entries between slots and into `near`; the index keeps exactly one
    /// record per entry, and slots give back memory as they empty.
    #[tokio::test(start_paused = true)]
    async fn overwrites_keep_the_index_exact() {
        let store = one_shard_store();
        let keys = 1000;
        let ttls = [3_600_000, 7_200_000, 5_000, 100];
        for round in 0..40u64 {
            let ttl = ttls[round as usize % ttls.len()];
            for k in 0..keys {
                store.apply(&format!("k{k}"), rec("v", ttl, round)).unwrap();
            }
            advance(Duration::from_millis(50)).await;
            if round % 7 == 0 {
                store.purge_expired();
            }
            let state = only(&store);
            state.check_index(&store.shared.tags);
            assert_eq!(state.index.len(), state.map.len(), "round {round}");
            let capacity: usize = state.index.far.values().map(|s| s.tags.capacity()).sum();
            assert!(capacity <= 2 * keys + 16 * state.index.far.len());
        }
        // All in one slot, then 90% leave it: the slot gives back its room.
        for k in 0..keys {
            store
                .apply(&format!("k{k}"), rec("v", 3_600_000, 100))
                .unwrap();
        }
        for k in 0..keys * 9 / 10 {
            store.apply(&format!("k{k}"), rec("v", 100, 101)).unwrap();
        }
        advance(Duration::from_secs(1)).await;
        store.purge_expired();
        let state = only(&store);
        state.check_index(&store.shared.tags);
        assert_eq!(state.map.len(), keys / 10);
        let capacity: usize = state.index.far.values().map(|s| s.tags.capacity()).sum();
        assert!(capacity <= 4 * keys / 10, "{capacity}");
    }

    /// One lock's worth of [`Store::purge_expired`], with a work budget of `budget`.
    fn one_purge_batch(store: &Store, budget: usize) -> (usize, bool) {
        let now = store.shared.offset(Instant::now());
        let mut freed = Vec::new();
        let mut state = only(store);
        let (tags, totals) = (&store.shared.tags, &store.shared.totals);
        state.purge_due(now, budget, tags, totals, &mut freed)
    }

    /// A slot that has wholly expired is freed a batch at a time, without going through
    /// `near`; writes between batches keep the index exact.
    #[tokio::test(start_paused = true)]
    async fn an_expired_slot_is_freed_in_batches() {
        let store = Store::with_tags(u64::MAX, Tags::masked(0xff));
        let n = 3 * PURGE_BATCH;
        for i in 0..n {
            store.apply(&format!("k{i}"), rec("v", 1000, 1)).unwrap();
        }
        store.apply("live", rec("v", 60_000, 1)).unwrap();
        let s = slot_of(store.shared.offset(Instant::now() + Duration::from_secs(1)));
        advance(Duration::from_secs(2)).await;
        assert!(
            slot_end(s) <= store.shared.offset(Instant::now()),
            "the slot is over"
        );
        assert_eq!(one_purge_batch(&store, 1000), (1000, false));
        let tags = &store.shared.tags;
        assert!(only(&store).index.near.is_empty());
        only(&store).check_index(tags);
        // Between batches: expired keys written again (their old entries leave the slot).
        for i in (0..n).step_by(89) {
            assert_eq!(
                store.apply(&format!("k{i}"), rec("w", 5000, 2)),
                Ok(Applied::Inserted)
            );
        }
        only(&store).check_index(tags);
        let rewritten = (0..n).step_by(89).count();
        let gone_before = (0..n).step_by(89).filter(|&i| i >= n - 1000).count();
        assert_eq!(store.purge_expired(), n - 1000 - (rewritten - gone_before));
        assert!(!only(&store).index.far.contains_key(&s));
        assert_eq!(store.len(), rewritten + 1);
        only(&store).check_index(tags);
    }

    /// The purge moves a slot into `near` a batch at a time; between batches, writes,
    /// overwrites and removals in that slot keep the index exact.
    #[tokio::test(start_paused = true)]
    async fn a_slot_moves_into_near_in_batches() {
        let store = Store::with_tags(u64::MAX, Tags::masked(0xff));
        let n = 3 * PURGE_BATCH;
        // All in one slot, 2 s from now, a microsecond apart.
        for i in 0..n {
            let mut r = rec("v", 2000, 1);
            r.expires_at += Duration::from_micros(i as u64);
            store.apply(&format!("k{i}"), r).unwrap();
        }
        let s = slot_of(store.shared.offset(Instant::now() + Duration::from_secs(2)));
        advance(Duration::from_millis(2000) - Duration::from_nanos(1)).await;
        assert!(
            slot_start(s) <= store.shared.offset(Instant::now()),
            "the slot has started"
        );
        assert_eq!(one_purge_batch(&store, 1000), (0, false));
        let tags = &store.shared.tags;
        {
            let state = only(&store);
            state.check_index(tags);
            assert_eq!(state.index.near.len(), 1000);
            assert_eq!(state.index.far[&s].tags.len(), n - 1000);
        }
        // Mid-move: overwrite moved and unmoved entries, add one, remove some.
        for i in (0..n).step_by(97) {
            store.apply(&format!("k{i}"), rec("w", 2000, 2)).unwrap();
        }
        store.apply("new", rec("v", 1, 1)).unwrap();
        only(&store).check_index(tags);
        assert_eq!(store.purge_expired(), 0, "nothing due yet");
        only(&store).check_index(tags);
        assert_eq!(store.len(), n + 1);
        assert!(!only(&store).index.far.contains_key(&s));
        advance(Duration::from_nanos(1 + n as u64 * 1000)).await;
        let overwritten = (0..n).step_by(97).count();
        assert_eq!(store.purge_expired(), n - overwritten + 1);
        assert_eq!(store.len(), overwritten);
        only(&store).check_index(tags);
    }
}
