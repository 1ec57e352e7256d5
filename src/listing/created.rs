//! The creation-order index of a shard: (created ms, tag) pairs in order, 12 bytes each
//! in sorted chunks, instead of a B-tree map (whose nodes, half full when filled in
//! order as writes arrive, cost over three times as much per entry).

/// Most pairs in one chunk: a chunk is moved in memory at most 3 KiB at a time.
const CHUNK: usize = 256;

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
    /// Non-empty sorted runs, each at most [`CHUNK`] long; every pair of a chunk is at
    /// most every pair of the next.
    chunks: Vec<Vec<Stamp>>,
    len: usize,
}

impl CreatedIndex {
    /// Files one pair.
    pub fn add(&mut self, ms: u64, tag: u32) {
        let s = Stamp::new(ms, tag);
        self.len += 1;
        // The first chunk whose last pair is not below `s`, else the last chunk.
        let c = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&l| l < s));
        let Some(c) = c.checked_sub(usize::from(c == self.chunks.len())) else {
            self.chunks.push(vec![s]);
            return;
        };
        let last = c + 1 == self.chunks.len();
        let chunk = &mut self.chunks[c];
        let at = chunk.partition_point(|&x| x <= s);
        if chunk.len() < CHUNK {
            chunk.insert(at, s);
        } else if last && at >= CHUNK - CHUNK / 16 {
            // Appending (or nearly, for pairs of the same millisecond), as writes mostly
            // do: the full chunk keeps what comes before `s` and stays (nearly) full.
            let mut right = chunk.split_off(at);
            right.insert(0, s);
            self.chunks.push(right);
        } else {
            let mut right = chunk.split_off(CHUNK / 2);
            if at <= CHUNK / 2 {
                chunk.insert(at, s);
            } else {
                right.insert(at - CHUNK / 2, s);
            }
            self.chunks.insert(c + 1, right);
        }
    }

    /// Unfiles one pair equal to (`ms`, `tag`); false if none was filed.
    pub fn remove(&mut self, ms: u64, tag: u32) -> bool {
        let s = Stamp::new(ms, tag);
        let c = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|&l| l < s));
        let Some(chunk) = self.chunks.get_mut(c) else {
            return false;
        };
        let Ok(at) = chunk.binary_search(&s) else {
            return false;
        };
        chunk.remove(at);
        self.len -= 1;
        if chunk.is_empty() {
            self.chunks.remove(c);
        } else {
            self.tidy(c);
        }
        if self.chunks.is_empty() {
            self.chunks = Vec::new();
        }
        true
    }

    /// After a removal from chunk `c`: merges it into a neighbour when both fit in one
    /// chunk, and gives back spare capacity, so memory follows what is filed.
    fn tidy(&mut self, c: usize) {
        let len = |i: usize| self.chunks.get(i).map_or(usize::MAX, Vec::len);
        let small = self.chunks[c].len();
        if small <= CHUNK / 4 {
            let into = [c.wrapping_sub(1), c + 1]
                .into_iter()
                .filter(|&n| len(n).saturating_add(small) <= CHUNK)
                .min_by_key(|&n| len(n));
            if let Some(n) = into {
                let (first, second) = (c.min(n), c.max(n));
                let moved = self.chunks.remove(second);
                self.chunks[first].extend_from_slice(&moved);
                return;
            }
        }
        let chunk = &mut self.chunks[c];
        if chunk.capacity() >= 2 * chunk.len() + 16 {
            chunk.shrink_to(chunk.len() + chunk.len() / 4);
        }
    }

    /// Pairs filed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is filed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        // The chunks that hold a pair before `end`.
        let upto = match end {
            Some(e) => self
                .chunks
                .partition_point(|c| c.first().is_some_and(|&f| f < e)),
            None => self.chunks.len(),
        };
        let mut last: Option<Stamp> = None;
        let mut seen = 0;
        for chunk in self.chunks[..upto].iter().rev() {
            let n = match end {
                Some(e) => chunk.partition_point(|&x| x < e),
                None => chunk.len(),
            };
            for &s in chunk[..n].iter().rev() {
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
        }
        None
    }

    /// Bytes held by the chunks (their capacity), for tests of memory use.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        let chunks = self.chunks.iter().map(Vec::capacity).sum::<usize>();
        chunks * std::mem::size_of::<Stamp>()
    }

    /// Asserts the chunks' invariants.
    #[cfg(test)]
    fn check(&self) {
        let mut prev: Option<Stamp> = None;
        let mut n = 0;
        for chunk in &self.chunks {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
            for &s in chunk {
                assert!(prev.map_or(true, |p| p <= s));
                prev = Some(s);
            }
            n += chunk.len();
        }
        assert_eq!(n, self.len);
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
                index.check();
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
    fn in_order_writes_cost_about_twelve_bytes_each() {
        let mut index = CreatedIndex::default();
        let n = 100_000u64;
        for i in 0..n {
            index.add(1_700_000_000_000 + i / 3, (i * 2_654_435_761) as u32);
        }
        index.check();
        let per = index.held_bytes() as f64 / n as f64;
        assert!(per < 13.0, "{per} bytes per pair");
    }

    #[test]
    fn memory_follows_removals() {
        let mut index = CreatedIndex::default();
        let n = 20_000u64;
        for i in 0..n {
            index.add(i, (i * 7919) as u32);
        }
        // Expiry frees entries in another order than they were created.
        for i in (0..n).filter(|i| i % 10 != 0) {
            assert!(index.remove(i, (i * 7919) as u32));
        }
        index.check();
        assert_eq!(index.len(), 2_000);
        let per = index.held_bytes() as f64 / 2_000.0;
        assert!(per < 40.0, "{per} bytes per remaining pair");
        for i in (0..n).step_by(10) {
            assert!(index.remove(i, (i * 7919) as u32));
        }
        assert!(index.is_empty());
        assert_eq!(index.held_bytes(), 0);
        assert!(!index.remove(5, 5));
    }
}
