//! A shard: one lock over a map of entries, their expiry index and listing order.

#[cfg(test)]
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use super::expiry::slot_of;
#[cfg(test)]
use super::expiry::slot_start;
use super::{spread, Expiry, Node, Tags, Totals, NEAR};
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
    pub(super) map: HashTable<Box<Node>>,
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

impl State {
    /// The entry under `key` (whose tag is `tag`).
    pub(super) fn get(&self, key: &[u8], tag: u32) -> Option<&Node> {
        let node = self.map.find(spread(tag), |n| n.key() == key)?;
        Some(node)
    }

    /// Stores `node` (whose key has tag `tag`), returning the entry it replaced. The
    /// caller has already charged the new entry's bytes and released the old one's.
    pub(super) fn insert(
        &mut self,
        mut node: Box<Node>,
        tag: u32,
        tags: &Tags,
        totals: &Totals,
    ) -> Option<Box<Node>> {
        let hash = spread(tag);
        let key = node.key();
        let old = match self.map.find_entry(hash, |n| n.key() == key) {
            Ok(found) => Some(found.remove().0),
            Err(_) => None,
        };
        let deadline = node.deadline;
        // Same slot: the new entry takes the old one's place (same key, same tag).
        let same_slot = old
            .as_ref()
            .filter(|old| old.place() != NEAR && slot_of(old.deadline) == slot_of(deadline))
            .and_then(|old| {
                let slot = self.index.far.get_mut(&slot_of(deadline))?;
                slot.min = slot.min.min(deadline);
                Some(old.place())
            });
        let place = match (same_slot, &old) {
            (Some(place), _) => place,
            (None, Some(old)) => {
                self.index.unfile(old, tag, &mut self.map);
                self.index.file(deadline, tag)
            }
            (None, None) => self.index.file(deadline, tag),
        };
        node.set_place(place);
        if let Some(old) = &old {
            totals.toggle(old);
            self.order.recreate(old.created_ms, node.created_ms, tag);
        } else {
            self.order.add(node.key(), node.created_ms, tag);
        }
        totals.toggle(&node);
        self.map
            .insert_unique(hash, node, |n| spread(tags.of(n.key())));
        old
    }

    /// Removes the entry under `key` (whose tag is `tag`).
    pub(super) fn remove(&mut self, key: &[u8], tag: u32, totals: &Totals) -> Option<Box<Node>> {
        let found = self.map.find_entry(spread(tag), |n| n.key() == key);
        let (node, _) = found.ok()?.remove();
        totals.release(&node);
        self.index.unfile(&node, tag, &mut self.map);
        self.order.remove(key, node.created_ms, tag);
        Some(node)
    }
}

#[cfg(test)]
impl State {
    /// Asserts that the expiry index files exactly the entries of the map, each where
    /// its [`Node::place`] says.
    pub(super) fn check_index(&self, tags: &Tags) {
        assert_eq!(self.order.lens(), (self.map.len(), self.map.len()));
        let index = &self.index;
        let mut near = BTreeMap::new();
        let mut far = BTreeMap::new();
        for node in self.map.iter() {
            let tag = tags.of(node.key());
            let place = node.place();
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
