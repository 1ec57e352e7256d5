//! The creation-order index of a shard: (created ms, tag) pairs in order, 12 bytes each
//! in [`SortedChunks`].

use std::ops::Bound;

use super::chunks::SortedChunks;

/// One (created ms, tag) pair: three `u32`s, so 12 bytes with no padding. Ordered by
/// ms, then tag (the derived order compares the fields in turn).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    ms_high: u32,
    ms_low: u32,
    tag: u32,
}

impl Stamp {
    fn new(ms: u64, tag: u32) -> Stamp {
        Stamp {
            // Truncation intended: the two halves of the 64-bit ms.
            ms_high: (ms >> 32) as u32,
            ms_low: ms as u32,
            tag,
        }
    }

    fn ms(self) -> u64 {
        u64::from(self.ms_high) << 32 | u64::from(self.ms_low)
    }
}

/// A sorted multiset of (created ms, tag) pairs (two keys may share both).
#[derive(Default)]
pub struct CreatedIndex {
    pairs: SortedChunks<Stamp>,
}

impl CreatedIndex {
    /// Files one pair.
    pub fn add(&mut self, ms: u64, tag: u32) {
        self.pairs.insert(Stamp::new(ms, tag));
    }

    /// Unfiles one pair equal to (`ms`, `tag`); false if none was filed.
    pub fn remove(&mut self, ms: u64, tag: u32) -> bool {
        self.pairs.remove(&Stamp::new(ms, tag))
    }

    /// Pairs filed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// The pairs created before `before` (all if `None`), newest first: at least
    /// `budget` distinct pairs (fewer at the end), then the rest of the last millisecond
    /// taken, so that a page never splits a millisecond; a pair filed twice is taken
    /// once. `None` when it reached the oldest pair, else the millisecond to continue
    /// before.
    pub fn created_page(
        &self,
        before: Option<u64>,
        budget: usize,
        mut take: impl FnMut(u64, u32),
    ) -> Option<u64> {
        let end = before.map(|ms| Stamp::new(ms, 0));
        let end = end.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let mut last: Option<Stamp> = None;
        let mut seen = 0;
        for &s in self.pairs.iter_before(end) {
            if last == Some(s) {
                continue;
            }
            if seen >= budget && last.map(Stamp::ms) != Some(s.ms()) {
                return last.map(Stamp::ms);
            }
            take(s.ms(), s.tag);
            seen += 1;
            last = Some(s);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ops::Bound;

    use proptest::prelude::*;

    use super::*;

    /// What a page holds, by the model (counted pairs).
    fn page_of(
        model: &BTreeMap<(u64, u32), u32>,
        before: Option<u64>,
        budget: usize,
    ) -> (Vec<(u64, u32)>, Option<u64>) {
        let end = before.map_or(Bound::Unbounded, |ms| Bound::Excluded((ms, 0)));
        let mut out = Vec::new();
        let mut last_ms = None;
        for (&(ms, tag), _) in model.range((Bound::Unbounded, end)).rev() {
            if out.len() >= budget && last_ms != Some(ms) {
                return (out, last_ms);
            }
            out.push((ms, tag));
            last_ms = Some(ms);
        }
        (out, None)
    }

    proptest! {
        #[test]
        fn behaves_like_a_counted_map(ops in prop::collection::vec((0u8..4, 0u64..600, 0u32..3), 1..3000)) {
            let mut index = CreatedIndex::default();
            let mut model: BTreeMap<(u64, u32), u32> = BTreeMap::new();
            for (op, ms, tag) in ops {
                // Mostly increasing times, as writes arrive; some from the past.
                if op < 3 {
                    index.add(ms, tag);
                    *model.entry((ms, tag)).or_insert(0) += 1;
                } else {
                    let had = model.get(&(ms, tag)).copied().unwrap_or(0) > 0;
                    prop_assert_eq!(index.remove(ms, tag), had);
                    if had {
                        let n = model.get_mut(&(ms, tag)).expect("counted");
                        *n -= 1;
                        if *n == 0 {
                            model.remove(&(ms, tag));
                        }
                    }
                }
                index.pairs.check();
            }
            prop_assert_eq!(index.len(), model.values().map(|&n| n as usize).sum::<usize>());
            for budget in [1, 7, 100] {
                let mut before = None;
                for _ in 0..1000 {
                    let mut got = Vec::new();
                    let next = index.created_page(before, budget, |ms, tag| got.push((ms, tag)));
                    let (want, want_next) = page_of(&model, before, budget);
                    prop_assert_eq!(&got, &want);
                    prop_assert_eq!(next, want_next);
                    match next {
                        Some(ms) => before = Some(ms),
                        None => break,
                    }
                }
            }
        }
    }

    #[test]
    fn a_pair_is_twelve_bytes() {
        assert_eq!(std::mem::size_of::<Stamp>(), 12);
    }
}
