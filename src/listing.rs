//! Ordered indexes of a store shard, and the merge that pages through all shards, so a
//! listing (`/keys` by key, `/scan` by creation time) costs O(limit), not O(store).
//!
//! Each shard keeps its keys in key order and its (created, tag) pairs in time order,
//! updated under the shard's lock with the map. A listing takes a few dozen entries of
//! one shard at a time (a lock held for microseconds), and merges the shards' runs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::Bound;

mod chunks;
mod created;
mod key_runs;

use created::CreatedIndex;
use key_runs::KeyRuns;

/// One shard's listing indexes.
#[derive(Default)]
pub struct Order {
    /// Every key of the shard.
    by_key: KeyRuns,
    /// (created ms, tag) of every entry.
    by_created: CreatedIndex,
}

impl Order {
    /// Files a new entry.
    pub fn add(&mut self, key: &[u8], created_ms: u64, tag: u32) {
        self.by_key.insert(key);
        self.by_created.add(created_ms, tag);
    }

    /// Unfiles an entry that left the map.
    pub fn remove(&mut self, key: &[u8], created_ms: u64, tag: u32) {
        self.by_key.remove(key);
        self.by_created.remove(created_ms, tag);
    }

    /// The entry under a key that stays filed changed its creation time.
    pub fn recreate(&mut self, from_ms: u64, to_ms: u64, tag: u32) {
        if from_ms != to_ms {
            self.by_created.remove(from_ms, tag);
            self.by_created.add(to_ms, tag);
        }
    }

    /// Entries filed (by key, by creation time); equal unless the index is broken.
    #[cfg(test)]
    pub fn lens(&self) -> (usize, usize) {
        (self.by_key.len(), self.by_created.len())
    }

    /// Up to `budget` keys from `from` on, in order, while they start with `prefix`;
    /// those for which `live` is true go to `out`. Returns where to resume (the last key
    /// looked at), or `None` when no more keys of the shard can match, and how many
    /// keys it looked at.
    pub fn keys_page(
        &self,
        from: Bound<&[u8]>,
        prefix: &[u8],
        budget: usize,
        mut live: impl FnMut(&[u8]) -> bool,
        out: &mut VecDeque<Box<[u8]>>,
    ) -> (Option<Box<[u8]>>, usize) {
        let mut seen = 0;
        for key in self.by_key.iter_from(from) {
            seen += 1;
            if !key.starts_with(prefix) {
                return (None, seen);
            }
            if live(key) {
                out.push_back(key.into());
            }
            if seen >= budget {
                return (Some(key.into()), seen);
            }
        }
        (None, seen)
    }

    /// The (created ms, tag) pairs created before `before` (all if `None`), newest
    /// first: at least `budget` of them (fewer at the end), then the rest of the last
    /// millisecond taken, so that a page never splits a millisecond. `None` when it
    /// reached the oldest entry, else the millisecond to continue before.
    pub fn created_page(
        &self,
        before: Option<u64>,
        budget: usize,
        take: impl FnMut(u64, u32),
    ) -> Option<u64> {
        self.by_created.created_page(before, budget, take)
    }
}

/// Where one shard's run stands in a merge.
pub struct Run<T> {
    /// Items fetched and not yet merged, in merge order.
    pub buf: VecDeque<T>,
    /// Where the next fetch starts; `None` once the shard has nothing more.
    pub resume: Option<Resume>,
}

/// A place to continue a shard's run.
#[derive(Clone, Debug)]
pub enum Resume {
    /// Not started yet.
    Start,
    /// After this key.
    AfterKey(Box<[u8]>),
    /// Before this creation millisecond.
    BeforeMs(u64),
}

/// Merges the runs of `shards` shards into their first `want` items, smallest first.
/// `fetch(shard, run)` appends the next items of a shard's run (in order) and moves its
/// resume point; it is called only while that run is empty and not finished. Runs must
/// be disjoint; each item is taken once and moved, never copied.
pub fn merge<T: Ord>(
    shards: usize,
    want: usize,
    mut fetch: impl FnMut(usize, &mut Run<T>),
) -> Vec<T> {
    let mut runs: Vec<Run<T>> = (0..shards)
        .map(|_| Run {
            buf: VecDeque::new(),
            resume: Some(Resume::Start),
        })
        .collect();
    let mut out = Vec::new();
    if want == 0 {
        return out;
    }
    // The next item of a run, fetching more while it is empty and not finished.
    let mut next = |i: usize, run: &mut Run<T>| {
        while run.buf.is_empty() && run.resume.is_some() {
            fetch(i, run);
        }
        run.buf.pop_front()
    };
    // Each run's smallest item not yet taken.
    let mut heads = BinaryHeap::new();
    for (i, run) in runs.iter_mut().enumerate() {
        if let Some(head) = next(i, run) {
            heads.push(Reverse((head, i)));
        }
    }
    while out.len() < want {
        let Some(Reverse((item, i))) = heads.pop() else {
            break;
        };
        out.push(item);
        if let Some(head) = runs.get_mut(i).and_then(|run| next(i, run)) {
            heads.push(Reverse((head, i)));
        }
    }
    out
}

/// How many entries a shard is asked for at once when `want` items are wanted from
/// `shards` shards: a little over its share, and never so many that its lock is held
/// for more than a few microseconds.
pub fn batch(want: usize, shards: usize) -> usize {
    (want.saturating_add(want / 4) / shards.max(1)).clamp(8, 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_takes_the_smallest_across_runs() {
        // Three shards holding interleaved numbers, fetched two at a time.
        let data: Vec<Vec<u32>> = vec![vec![1, 4, 7, 10], vec![2, 5, 8], vec![3, 6, 9, 11, 12]];
        let mut fetches = 0;
        let out = merge(3, 7, |i, run: &mut Run<u32>| {
            fetches += 1;
            let from = match &run.resume {
                Some(Resume::AfterKey(k)) => usize::from(k[0]),
                _ => 0,
            };
            let items = &data[i][from.min(data[i].len())..];
            run.buf.extend(items.iter().take(2));
            run.resume = (items.len() > 2).then(|| Resume::AfterKey(vec![(from + 2) as u8].into()));
        });
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7]);
        assert!(fetches <= 7, "{fetches}");
        assert!(merge(3, 0, |_, _: &mut Run<u32>| unreachable!()).is_empty());
    }

    #[test]
    fn created_pages_never_split_a_millisecond() {
        let mut order = Order::default();
        for (i, ms) in [5u64, 5, 5, 4, 3, 3, 1].iter().enumerate() {
            order.add(format!("k{i}").as_bytes(), *ms, i as u32);
        }
        let mut seen = Vec::new();
        let next = order.created_page(None, 1, |ms, _| seen.push(ms));
        assert_eq!(seen, [5, 5, 5]);
        assert_eq!(next, Some(5));
        seen.clear();
        let next = order.created_page(next, 2, |ms, _| seen.push(ms));
        assert_eq!(seen, [4, 3, 3]);
        seen.clear();
        assert_eq!(order.created_page(next, 2, |ms, _| seen.push(ms)), None);
        assert_eq!(seen, [1]);
        order.remove(b"k0", 5, 0);
        order.recreate(5, 9, 1);
        assert_eq!(order.lens(), (6, 6));
        seen.clear();
        order.created_page(None, 1, |ms, _| seen.push(ms));
        assert_eq!(seen, [9]);
    }
}
