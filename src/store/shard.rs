//! A shard: one lock over a map of entries, their expiry index and listing order.

#[cfg(test)]
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use super::arena::Handle;
use super::entry::{Big, Draft, Entry};
use super::expiry::slot_of;
#[cfg(test)]
use super::expiry::slot_start;
use super::records::Records;
use super::{spread, Expiry, Tags, Totals, NEAR};
use crate::listing::Order;

/// log2 of [`SHARDS`].
pub(super) const SHARD_BITS: u32 = 5;
/// Independently locked parts of a store.
pub const SHARDS: usize = 1 << SHARD_BITS;

/// One shard, on a cache line of its own so that two threads locking neighbouring
/// shards do not contend.
#[repr(align(64))]
pub(super) struct Shard(pub(super) Mutex<State>);

/// One shard's entries.
#[derive(Default)]
pub(super) struct State {
    /// Every entry of the shard, hashed by the tag of its key ([`Tags`]) so that the
    /// expiry index can find an entry from its tag alone.
    pub(super) map: HashTable<Handle>,
    /// The entries themselves.
    pub(super) records: Records,
    /// When each entry expires: the purge's work list.
    pub(super) index: Expiry,
    /// Key order and creation order, for listings.
    pub(super) order: Order,
    pub(super) purged_total: u64,
}

impl Shard {
    /// Locks the shard, recovering from poison: no critical section can panic half-way
    /// through a mutation, so the state is still consistent.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The hash of the entry at `h`, for the map's growth.
pub(super) fn rehash<'a>(records: &'a Records, tags: &'a Tags) -> impl Fn(&Handle) -> u64 + 'a {
    move |h| spread(tags.of(records.entry(*h).key()))
}

impl State {
    /// The handle of the entry under `key` (whose tag is `tag`).
    pub(super) fn find(&self, key: &[u8], tag: u32) -> Option<Handle> {
        let records = &self.records;
        let h = self
            .map
            .find(spread(tag), |h| records.entry(*h).key() == key)?;
        Some(*h)
    }

    /// The entry under `key` (whose tag is `tag`).
    pub(super) fn get(&self, key: &[u8], tag: u32) -> Option<Entry<'_>> {
        self.find(key, tag).map(|h| self.records.entry(h))
    }

    /// Stores `draft` (whose key has tag `tag`) in place of the entry under its key, if
    /// any. The caller has already charged the new entry's bytes and released the old
    /// one's. Returns whether an entry was replaced, and big values to drop once
    /// unlocked; `None` (nothing changed) when the shard has no room left.
    pub(super) fn insert(
        &mut self,
        draft: &Draft<'_>,
        tag: u32,
        tags: &Tags,
        totals: &Totals,
    ) -> Option<(bool, Vec<Big>)> {
        let hash = spread(tag);
        let new = self.records.add(draft)?;
        let records = &self.records;
        let old = match self
            .map
            .find_entry(hash, |h| records.entry(*h).key() == draft.key)
        {
            Ok(found) => Some(found.remove().0),
            Err(_) => None,
        };
        let deadline = draft.deadline;
        let old_at = old.map(|h| {
            let e = self.records.entry(h);
            (e.place(), e.deadline(), e.created_ms())
        });
        // Same slot: the new entry takes the old one's place (same key, same tag).
        let same_slot = old_at
            .filter(|&(place, old_deadline, _)| {
                place != NEAR && slot_of(old_deadline) == slot_of(deadline)
            })
            .and_then(|(place, _, _)| {
                let slot = self.index.far.get_mut(&slot_of(deadline))?;
                slot.min = slot.min.min(deadline);
                Some(place)
            });
        let place = match (same_slot, old_at) {
            (Some(place), _) => place,
            (None, Some((place, old_deadline, _))) => {
                self.index
                    .unfile(place, old_deadline, tag, &self.map, &mut self.records);
                self.index.file(deadline, tag)
            }
            (None, None) => self.index.file(deadline, tag),
        };
        self.records.set_place(new, place);
        if let (Some(h), Some((_, _, old_created))) = (old, old_at) {
            totals.toggle(&self.records.entry(h));
            self.order.recreate(old_created, draft.created_ms, tag);
        } else {
            self.order.add(draft.key, draft.created_ms, tag);
        }
        totals.toggle(&self.records.entry(new));
        self.map
            .insert_unique(hash, new, rehash(&self.records, tags));
        let mut dropped = Vec::new();
        if let Some(h) = old {
            dropped.extend(self.records.remove(h));
        }
        // Also when nothing was removed: the block filled before may have been left sparse.
        self.records.tidy(&mut self.map, tags);
        Some((old.is_some(), dropped))
    }

    /// Removes the entry under `key` (whose tag is `tag`); returns its cost, and its big
    /// value to drop once unlocked.
    pub(super) fn remove(
        &mut self,
        key: &[u8],
        tag: u32,
        tags: &Tags,
        totals: &Totals,
    ) -> Option<(u64, Option<Big>)> {
        let records = &self.records;
        let found = self
            .map
            .find_entry(spread(tag), |h| records.entry(*h).key() == key);
        let (h, _) = found.ok()?.remove();
        let e = self.records.entry(h);
        let (cost, place, deadline, created) = (e.cost(), e.place(), e.deadline(), e.created_ms());
        totals.release(&e);
        self.index
            .unfile(place, deadline, tag, &self.map, &mut self.records);
        self.order.remove(key, created, tag);
        let big = self.records.remove(h);
        self.records.tidy(&mut self.map, tags);
        Some((cost, big))
    }
}

#[cfg(test)]
impl State {
    /// Asserts that the expiry index files exactly the entries of the map, each where
    /// its [`Entry::place`] says, and that the records of the map's entries are exactly the
    /// live ones.
    pub(super) fn check_index(&self, tags: &Tags) {
        assert_eq!(self.order.lens(), (self.map.len(), self.map.len()));
        let index = &self.index;
        let mut near = BTreeMap::new();
        let mut far = BTreeMap::new();
        for &h in self.map.iter() {
            let node = self.records.entry(h);
            let tag = tags.of(node.key());
            let place = node.place();
            if place == NEAR {
                *near.entry((node.deadline(), tag)).or_insert(0u32) += 1;
            } else {
                let s = slot_of(node.deadline());
                let slot = &index.far[&s];
                assert_eq!(slot.tags[place as usize], tag);
                assert!(slot.min <= node.deadline());
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
        let mut live = 0;
        let mut bigs = 0;
        for &h in self.map.iter() {
            let rec = self.records.entry(h).rec;
            live += super::arena::footprint(super::entry::record_len(rec));
            bigs += usize::from(super::entry::big_index(rec).is_some());
        }
        let (blocks, arena_live, arena_bigs) = self.records.usage();
        assert_eq!((arena_live, arena_bigs), (live, bigs));
        // Every block but the one being filled is at least a quarter live.
        let sparse_below = super::arena::BLOCK_BYTES / 4;
        assert!(
            blocks <= 1 + live / sparse_below,
            "{blocks} blocks for {live} bytes"
        );
        for (i, &s) in index.far.keys().enumerate() {
            assert!(i == 0 || slot_start(s) >= index.near_end);
        }
        for &(deadline, _) in index.near.keys() {
            assert!(deadline < index.near_end);
        }
    }
}
