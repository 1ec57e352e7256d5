//! A sorted multiset in chunks: the creation-time index of a shard. Items sit in sorted
//! runs of at most [`CHUNK`], so an index costs little more than its items: a B-tree's
//! nodes stay about half full when filled in order, as creation times mostly are.

use std::borrow::Borrow;
use std::ops::Bound;

/// Most items in one chunk: an insert or removal moves at most this many.
const CHUNK: usize = 256;

/// Sorted items, equal ones allowed (in insertion order).
pub struct SortedChunks<T> {
    /// Non-empty sorted runs, each at most [`CHUNK`] long; every item of a chunk is at
    /// most every item of the next.
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for SortedChunks<T> {
    fn default() -> Self {
        SortedChunks {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Ord> SortedChunks<T> {
    /// The first chunk whose last item is not below `q` (with `or_equal`: above it), or
    /// the number of chunks.
    fn chunk_after<Q>(&self, q: &Q, or_equal: bool) -> usize
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        self.chunks.partition_point(|c| {
            c.last()
                .is_some_and(|l| l.borrow() < q || (or_equal && l.borrow() == q))
        })
    }

    /// Adds `item`, after any equal ones.
    pub fn insert(&mut self, item: T) {
        self.len += 1;
        let c = self.chunk_after(&item, false);
        let Some(c) = c.checked_sub(usize::from(c == self.chunks.len())) else {
            self.chunks.push(vec![item]);
            return;
        };
        let last = c + 1 == self.chunks.len();
        let chunk = &mut self.chunks[c];
        let at = chunk.partition_point(|x| *x <= item);
        if chunk.len() < CHUNK {
            chunk.insert(at, item);
        } else if last && at >= CHUNK - CHUNK / 16 {
            // Appending (or nearly: the same millisecond, the next key of a run), as
            // writes mostly do: the full chunk keeps what comes before and stays full.
            let mut right = Vec::with_capacity(CHUNK / 16 + 1);
            right.push(item);
            right.extend(chunk.drain(at..));
            self.chunks.push(right);
        } else {
            let mut right = chunk.split_off(CHUNK / 2);
            if at <= CHUNK / 2 {
                chunk.insert(at, item);
            } else {
                right.insert(at - CHUNK / 2, item);
            }
            self.chunks.insert(c + 1, right);
        }
    }

    /// Removes one item equal to `q`; false if there is none.
    pub fn remove<Q>(&mut self, q: &Q) -> bool
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let c = self.chunk_after(q, false);
        let Some(chunk) = self.chunks.get_mut(c) else {
            return false;
        };
        let Ok(at) = chunk.binary_search_by(|x| x.borrow().cmp(q)) else {
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
    /// chunk, and gives back spare capacity, so memory follows what is held.
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
                let mut moved = self.chunks.remove(second);
                self.chunks[first].append(&mut moved);
                return;
            }
        }
        let chunk = &mut self.chunks[c];
        if chunk.capacity() >= 2 * chunk.len() + 16 {
            chunk.shrink_to(chunk.len() + chunk.len() / 4);
        }
    }

    /// The items before `end`, last first.
    pub fn iter_before<'a, Q>(&'a self, end: Bound<&Q>) -> impl Iterator<Item = &'a T> + 'a
    where
        T: Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let before = |x: &T| match end {
            Bound::Unbounded => true,
            Bound::Included(q) => x.borrow() <= q,
            Bound::Excluded(q) => x.borrow() < q,
        };
        // The chunks holding an item before `end`; only the last may hold others too.
        let upto = self
            .chunks
            .partition_point(|c| c.first().is_some_and(&before));
        let (last, rest) = match upto.checked_sub(1) {
            Some(l) => {
                let chunk = &self.chunks[l];
                (
                    &chunk[..chunk.partition_point(|x| before(x))],
                    &self.chunks[..l],
                )
            }
            None => (&[][..], &[][..]),
        };
        last.iter()
            .rev()
            .chain(rest.iter().rev().flat_map(|c| c.iter().rev()))
    }

    /// Items held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes held by the chunks (their capacity), for tests of memory use.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        let items = self.chunks.iter().map(Vec::capacity).sum::<usize>();
        items * std::mem::size_of::<T>()
    }

    /// Asserts the chunks' invariants.
    #[cfg(test)]
    pub fn check(&self) {
        let mut n = 0;
        for (i, chunk) in self.chunks.iter().enumerate() {
            assert!(!chunk.is_empty() && chunk.len() <= CHUNK);
            assert!(chunk.windows(2).all(|w| w[0] <= w[1]));
            if let Some(next) = self.chunks.get(i + 1) {
                assert!(chunk.last() <= next.first());
            }
            n += chunk.len();
        }
        assert_eq!(n, self.len);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn bound(kind: u8, q: &u32) -> Bound<&u32> {
        match kind {
            0 => Bound::Unbounded,
            1 => Bound::Included(q),
            _ => Bound::Excluded(q),
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_counted_map(
            ops in prop::collection::vec((0u8..4, 0u32..2000), 1..4000),
            probes in prop::collection::vec((0u8..3, 0u32..2000), 1..20),
        ) {
            let mut chunks = SortedChunks::default();
            let mut model: BTreeMap<u32, usize> = BTreeMap::new();
            for (op, x) in ops {
                if op < 3 {
                    chunks.insert(x);
                    *model.entry(x).or_insert(0) += 1;
                } else {
                    let had = model.get(&x).is_some_and(|&n| n > 0);
                    prop_assert_eq!(chunks.remove(&x), had);
                    if had {
                        let n = model.get_mut(&x).expect("counted");
                        *n -= 1;
                        if *n == 0 {
                            model.remove(&x);
                        }
                    }
                }
                chunks.check();
            }
            let all: Vec<u32> = model.iter().flat_map(|(&x, &n)| std::iter::repeat(x).take(n)).collect();
            prop_assert_eq!(chunks.len(), all.len());
            for (kind, q) in probes {
                let before: Vec<u32> = chunks.iter_before(bound(kind, &q)).copied().collect();
                let want: Vec<u32> = all.iter().rev().copied().filter(|&x| match kind {
                    0 => true,
                    1 => x <= q,
                    _ => x < q,
                }).collect();
                prop_assert_eq!(before, want);
            }
        }
    }

    #[test]
    fn in_order_inserts_fill_their_chunks() {
        let mut chunks = SortedChunks::default();
        let n = 100_000u64;
        // Ascending with ties broken at random, as (created ms, tag) pairs arrive.
        for i in 0..n {
            chunks.insert((i / 3, (i * 2_654_435_761) as u32));
        }
        chunks.check();
        let per = chunks.held_bytes() as f64 / n as f64;
        let item = std::mem::size_of::<(u64, u32)>() as f64;
        assert!(per < item * 1.1, "{per} bytes per {item}-byte item");
    }

    #[test]
    fn memory_follows_removals() {
        let mut chunks = SortedChunks::default();
        let n = 20_000u32;
        for i in 0..n {
            chunks.insert(i);
        }
        // Expiry frees items in another order than they were filed.
        for i in (0..n).filter(|i| i % 10 != 0) {
            assert!(chunks.remove(&i));
        }
        chunks.check();
        assert_eq!(chunks.len(), 2_000);
        let per = chunks.held_bytes() as f64 / 2_000.0;
        assert!(per < 4.0 * 3.0, "{per} bytes per remaining 4-byte item");
        for i in (0..n).step_by(10) {
            assert!(chunks.remove(&i));
        }
        assert!(chunks.is_empty());
        assert_eq!(chunks.held_bytes(), 0);
        assert!(!chunks.remove(&5));
    }
}
