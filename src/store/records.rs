//! A shard's entries: records in an [`Arena`], plus the [`Big`]s of big values, named by
//! [`Handle`]s that the shard's map holds.

use std::collections::HashMap;

use hashbrown::HashTable;

use super::arena::{footprint, Arena, Handle};
use super::entry::{self, Big, Draft, Entry};
use super::{spread, Tags};

/// The entries of one shard.
#[derive(Default)]
pub(super) struct Records {
    arena: Arena,
    /// Key and value of the big entries, in no order; each knows its record, and its
    /// record knows its index.
    bigs: Vec<Big>,
    /// The origins of the versions stored (a few per process that ever wrote), which
    /// records name by their index here: 2 bytes instead of 8. Only grows.
    origins: Vec<u64>,
    origin_index: HashMap<u64, u16>,
}

impl Records {
    /// The entry at `h`.
    pub(super) fn entry(&self, h: Handle) -> Entry<'_> {
        let rec = self.arena.bytes(h);
        let big = entry::big_index(rec).and_then(|i| self.bigs.get(i));
        Entry {
            rec,
            big,
            origins: &self.origins,
        }
    }

    /// Stores `draft` (its place: [`NEAR`](super::NEAR)); `None` when the arena is full.
    pub(super) fn add(&mut self, draft: &Draft<'_>) -> Option<Handle> {
        let big = draft.is_big();
        // Fits: more Bigs than 2^32 would not fit in memory.
        let index = self.bigs.len() as u32;
        let origin = self.origin_index(draft.version.origin);
        let h = self
            .arena
            .push(draft.len(origin), |out| draft.write(out, origin, index))?;
        if big {
            self.bigs.push(Big {
                record: h,
                key: draft.key.into(),
                value: draft.value.clone(),
            });
        }
        Some(h)
    }

    /// The index of `origin` in the table of origins, added if new; `None` once the
    /// table is full (the record then holds the origin itself).
    fn origin_index(&mut self, origin: u64) -> Option<u16> {
        if let Some(&i) = self.origin_index.get(&origin) {
            return Some(i);
        }
        let i = u16::try_from(self.origins.len()).ok()?;
        self.origins.push(origin);
        self.origin_index.insert(origin, i);
        Some(i)
    }

    pub(super) fn set_place(&mut self, h: Handle, place: u32) {
        entry::set_place(self.arena.bytes_mut(h), place);
    }

    /// The entry at `h` has left the map: its bytes count as free, its [`Big`] (if any)
    /// is returned, to be dropped outside the lock. Call [`Records::tidy`] once no entry
    /// is out of the map but still being read.
    pub(super) fn remove(&mut self, h: Handle) -> Option<Big> {
        let rec = self.arena.bytes_mut(h);
        if entry::is_dead(rec) {
            debug_assert!(false, "an entry removed twice");
            return None;
        }
        entry::mark_dead(rec);
        let len = entry::record_len(rec);
        let big = entry::big_index(rec).and_then(|i| self.take_big(i));
        self.arena.release(h, len);
        big
    }

    fn take_big(&mut self, i: usize) -> Option<Big> {
        if i >= self.bigs.len() {
            return None;
        }
        let big = self.bigs.swap_remove(i);
        if let Some(moved) = self.bigs.get(i) {
            // Fits: `i` was an index read from 4 bytes.
            entry::set_big_index(self.arena.bytes_mut(moved.record), i as u32);
        }
        if self.bigs.capacity() > 16 && self.bigs.len() < self.bigs.capacity() / 4 {
            self.bigs.shrink_to(self.bigs.len() * 2);
        }
        Some(big)
    }

    /// Empties the blocks that removals left mostly dead: their live records move to the
    /// block being filled, and `map` follows them.
    pub(super) fn tidy(&mut self, map: &mut HashTable<Handle>, tags: &Tags) {
        let mut copy = Vec::new();
        while let Some((b, mut bytes)) = self.arena.take_sparse() {
            let mut offset = 0;
            let mut moved = 0;
            while offset < bytes.len() {
                let rec = &mut bytes[offset..];
                let len = entry::record_len(rec);
                let from = Arena::handle(b, offset);
                if entry::is_dead(rec) {
                    offset += footprint(len);
                    continue;
                }
                copy.clear();
                copy.extend_from_slice(&rec[..len]);
                let Some(to) = self.arena.push(len, |out| out.extend_from_slice(&copy)) else {
                    // No room anywhere (16 GiB in one shard): the rest stays.
                    self.arena.restore(b, bytes, moved);
                    return;
                };
                entry::mark_dead(rec);
                moved += footprint(len);
                offset += footprint(len);
                let big = entry::big_index(&copy);
                debug_assert!(
                    big.map_or(true, |i| i < self.bigs.len()),
                    "a record names no big"
                );
                let key = match big {
                    Some(i) => match self.bigs.get_mut(i) {
                        Some(big) => {
                            big.record = to;
                            &big.key[..]
                        }
                        None => continue,
                    },
                    None => Entry {
                        rec: &copy,
                        big: None,
                        origins: &[],
                    }
                    .key(),
                };
                let slot = map.find_mut(spread(tags.of(key)), |h| *h == from);
                debug_assert!(slot.is_some(), "a live record the map does not name");
                if let Some(slot) = slot {
                    *slot = to;
                }
            }
            self.arena.drop_block(b);
        }
    }

    /// Blocks in use, and bytes live in them; big entries.
    #[cfg(test)]
    pub(super) fn usage(&self) -> (usize, usize, usize) {
        let (blocks, live) = self.arena.usage();
        (blocks, live, self.bigs.len())
    }
}
