//! The expiry index: coarse slots for far deadlines, an exact ordered set for near ones.

use std::collections::{btree_map, BTreeMap};

use hashbrown::HashTable;

use super::arena::Handle;
use super::records::Records;
use super::spread;
#[cfg(doc)]
use super::Entry;

/// log2 of the width of an expiry slot, in nanoseconds (2^30 ns ≈ 1.07 s).
pub(super) const SLOT_BITS: u32 = 30;

/// [`Entry::place`] of an entry filed in [`Expiry::near`].
pub(super) const NEAR: u32 = u32::MAX;

pub(super) fn slot_of(deadline: i64) -> i64 {
    deadline >> SLOT_BITS
}

pub(super) fn slot_start(slot: i64) -> i64 {
    slot.saturating_mul(1 << SLOT_BITS)
}

pub(super) fn slot_end(slot: i64) -> i64 {
    slot.saturating_add(1).saturating_mul(1 << SLOT_BITS)
}

/// The expiry index: which entries the purge removes, and when.
///
/// Deadlines from `near_end` on are filed coarsely, in slots of 2^[`SLOT_BITS`] ns: per
/// slot, the tags of its entries in no order (4 bytes an entry), and each entry knows its
/// position there ([`Entry::place`]), so removing one is a swap with the slot's last tag.
/// Once a slot has started, the purge moves its entries, a batch at a time, into `near`:
/// (deadline, tag) in order, counted for the rare entries that share both. Deadlines
/// before `near_end` (short TTLs) are filed there directly.
pub(super) struct Expiry {
    pub(super) near: BTreeMap<(i64, u32), u32>,
    /// Only grows. Every slot but the first starts at or after it; the first may start
    /// before it while the purge is moving it into `near`.
    pub(super) near_end: i64,
    pub(super) far: BTreeMap<i64, Slot>,
}

pub(super) struct Slot {
    /// The tags of the entries filed here, at their [`Entry::place`].
    pub(super) tags: Vec<u32>,
    /// No entry here expires before this (exact until the earliest one leaves).
    pub(super) min: i64,
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
    /// Files a new entry; returns its [`Entry::place`].
    pub(super) fn file(&mut self, deadline: i64, tag: u32) -> u32 {
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
    pub(super) fn unfile(
        &mut self,
        place: u32,
        deadline: i64,
        tag: u32,
        map: &HashTable<Handle>,
        records: &mut Records,
    ) {
        if place == NEAR {
            if let btree_map::Entry::Occupied(mut e) = self.near.entry((deadline, tag)) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
            return;
        }
        let s = slot_of(deadline);
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
            if let Some(other) = at_place(map, records, moved, s, last) {
                records.set_place(other, place as u32);
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
    pub(super) fn promote(
        &mut self,
        now: i64,
        budget: usize,
        map: &HashTable<Handle>,
        records: &mut Records,
    ) -> usize {
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
            if let Some(h) = at_place(map, records, tag, s, tags.len()) {
                records.set_place(h, NEAR);
                let deadline = records.entry(h).deadline();
                *self.near.entry((deadline, tag)).or_insert(0) += 1;
            }
        }
        if tags.is_empty() {
            first.remove();
        }
        moved
    }

    /// Removes up to `budget` entries of the first slot from `map` into `freed` if that
    /// whole slot has expired by `now`. Returns how many it took (0: none has).
    pub(super) fn take_ended(
        &mut self,
        now: i64,
        budget: usize,
        map: &mut HashTable<Handle>,
        records: &Records,
        freed: &mut Vec<Handle>,
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
            let found = map.find_entry(spread(tag), |&h| {
                let node = records.entry(h);
                node.place() == place && slot_of(node.deadline()) == s
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
    pub(super) fn earliest(&self) -> Option<i64> {
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
    pub(super) fn len(&self) -> usize {
        let near: u32 = self.near.values().sum();
        near as usize + self.far.values().map(|s| s.tags.len()).sum::<usize>()
    }
}

/// The entry filed at `place` in slot `s` with tag `tag` (the place is unique in a
/// slot, so the tag only narrows the search).
pub(super) fn at_place(
    map: &HashTable<Handle>,
    records: &Records,
    tag: u32,
    s: i64,
    place: usize,
) -> Option<Handle> {
    let place = u32::try_from(place).ok()?;
    map.iter_hash(spread(tag)).copied().find(|&h| {
        let node = records.entry(h);
        node.place() == place && slot_of(node.deadline()) == s
    })
}
