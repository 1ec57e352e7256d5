//! The key index of a shard: its keys in order, packed into sorted runs of bytes
//! (`[length as LEB128][key]` each). A key costs its own length and a byte or two, with
//! no fixed-size slot and no allocation of its own, however long it is.

use std::ops::Bound;

/// Most bytes in one run: an insert or removal scans and moves at most about this many.
const RUN_BYTES: usize = 1024;
/// Room a run is given beyond [`KeyRuns::run_bytes`] when it grows: every growing run
/// has the same size, so a freed run's memory fits the next one, and a burst of writes
/// does not leave a trail of outgrown runs in the heap (which it did when runs grew in
/// small steps: RSS after every key expired stayed higher).
const RUN_SLACK: usize = 256;

/// A sorted set of byte strings, compared as bytes (which orders exactly like `str`).
pub struct KeyRuns {
    /// Non-empty runs of entries in increasing order; every key of a run is below every
    /// key of the next.
    runs: Vec<Vec<u8>>,
    /// [`head`] of each run's first key, so finding a run mostly reads this array rather
    /// than a run of its own.
    heads: Vec<u128>,
    len: usize,
    /// Size at which a run splits ([`RUN_BYTES`]; smaller in tests).
    run_bytes: usize,
}

impl Default for KeyRuns {
    fn default() -> Self {
        KeyRuns::with_run_bytes(RUN_BYTES)
    }
}

/// Writes the LEB128 form of `n` at the start of `out`; returns its length.
fn put_len(n: usize, out: &mut [u8; 10]) -> usize {
    let (mut n, mut i) = (n, 0);
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out[i] = low;
            return i + 1;
        }
        out[i] = low | 0x80;
        i += 1;
    }
}

/// The key of the entry starting at `at` in `run`, and where the next entry starts.
fn entry_at(run: &[u8], at: usize) -> (&[u8], usize) {
    let (mut len, mut shift, mut i) = (0usize, 0, at);
    loop {
        let b = run[i];
        i += 1;
        len |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    (&run[i..i + len], i + len)
}

fn first(run: &[u8]) -> &[u8] {
    entry_at(run, 0).0
}

/// The first 16 bytes of `key`, zero padded, as a number: when the heads of two keys
/// differ, they order the keys (a shorter key padded with zeros is either below the
/// other or has the same head).
fn head(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

/// Where in `run` the first entry not below `key` (with `past`: above it) starts, and
/// whether the entry there is `key` itself.
fn seek(run: &[u8], key: &[u8], past: bool) -> (usize, bool) {
    let mut at = 0;
    while at < run.len() {
        let (k, next) = entry_at(run, at);
        match k.cmp(key) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal if past => {}
            std::cmp::Ordering::Equal => return (at, true),
            std::cmp::Ordering::Greater => return (at, false),
        }
        at = next;
    }
    (at, false)
}

impl KeyRuns {
    /// The capacity of a run that grows.
    fn full_capacity(&self) -> usize {
        self.run_bytes.saturating_add(RUN_SLACK)
    }

    /// Empty, splitting runs above `run_bytes` bytes.
    pub fn with_run_bytes(run_bytes: usize) -> KeyRuns {
        KeyRuns {
            runs: Vec::new(),
            heads: Vec::new(),
            len: 0,
            run_bytes,
        }
    }

    /// The run that holds `key` if anything does: the last whose first key is not above
    /// it (the first run when none is). Only called with runs present.
    fn run_for(&self, key: &[u8]) -> usize {
        let h = head(key);
        let below = self.heads.partition_point(|&x| x < h);
        let tied = self.heads[below..].partition_point(|&x| x == h);
        let runs = &self.runs[below..below + tied];
        (below + runs.partition_point(|r| first(r) <= key)).saturating_sub(1)
    }

    /// Adds `key`; false if it was there already.
    pub fn insert(&mut self, key: &[u8]) -> bool {
        let mut buf = [0u8; 10];
        let n = put_len(key.len(), &mut buf);
        let len_bytes = &buf[..n];
        let add = len_bytes.len() + key.len();
        if self.runs.is_empty() {
            let mut run = Vec::with_capacity(self.full_capacity().max(add));
            run.extend_from_slice(len_bytes);
            run.extend_from_slice(key);
            self.runs.push(run);
            self.heads.push(head(key));
            self.len = 1;
            return true;
        }
        let r = self.run_for(key);
        let last = r + 1 == self.runs.len();
        let full = self.full_capacity();
        let run = &mut self.runs[r];
        let (at, found) = seek(run, key, false);
        if found {
            return false;
        }
        let old = run.len();
        if run.capacity() < old + add {
            let want = full.max(old + add);
            run.reserve_exact(want - old);
        }
        run.splice(at..at, len_bytes.iter().chain(key).copied());
        self.len += 1;
        if at == 0 {
            self.heads[r] = head(key);
        }
        if run.len() > self.run_bytes {
            let split = if last && at >= old - old / 16 {
                // Appending (or nearly), as keys that start with a time do: the full run
                // keeps what it had and stays full.
                at
            } else {
                Self::middle(run)
            };
            if split > 0 && split < run.len() {
                let mut right = Vec::with_capacity(full);
                right.extend_from_slice(&run[split..]);
                run.truncate(split);
                self.heads.insert(r + 1, head(first(&right)));
                self.runs.insert(r + 1, right);
            }
        }
        true
    }

    /// The entry boundary nearest after the middle of `run`.
    fn middle(run: &[u8]) -> usize {
        let mut at = 0;
        while at < run.len() / 2 {
            at = entry_at(run, at).1;
        }
        at
    }

    /// Removes `key`; false if it was not there.
    pub fn remove(&mut self, key: &[u8]) -> bool {
        if self.runs.is_empty() {
            return false;
        }
        let r = self.run_for(key);
        let run = &mut self.runs[r];
        let (at, found) = seek(run, key, false);
        if !found {
            return false;
        }
        let next = entry_at(run, at).1;
        run.drain(at..next);
        self.len -= 1;
        if run.is_empty() {
            self.runs.remove(r);
            self.heads.remove(r);
            if self.runs.is_empty() {
                self.runs = Vec::new();
                self.heads = Vec::new();
            }
        } else {
            if at == 0 {
                self.heads[r] = head(first(run));
            }
            self.tidy(r);
        }
        true
    }

    /// After a removal from run `r`: merges it into a neighbour when both fit in one run,
    /// and gives back spare capacity, so memory follows what is held.
    fn tidy(&mut self, r: usize) {
        let size = |i: usize| self.runs.get(i).map_or(usize::MAX, Vec::len);
        let small = self.runs[r].len();
        if small <= self.run_bytes / 4 {
            let into = [r.wrapping_sub(1), r + 1]
                .into_iter()
                .filter(|&n| size(n).saturating_add(small) <= self.run_bytes)
                .min_by_key(|&n| size(n));
            if let Some(n) = into {
                let (left, right) = (r.min(n), r.max(n));
                let moved = self.runs.remove(right);
                self.heads.remove(right);
                self.runs[left].extend_from_slice(&moved);
                return;
            }
        }
        let run = &mut self.runs[r];
        if run.capacity() >= 2 * run.len() + 64 {
            run.shrink_to(run.len() + run.len() / 4);
        }
    }

    /// The keys from `from` on, in order.
    pub fn iter_from<'a>(&'a self, from: Bound<&[u8]>) -> Keys<'a> {
        let (run, at) = match from {
            Bound::Unbounded => (0, 0),
            Bound::Included(key) | Bound::Excluded(key) if !self.runs.is_empty() => {
                let r = self.run_for(key);
                let (at, _) = seek(&self.runs[r], key, matches!(from, Bound::Excluded(_)));
                (r, at)
            }
            _ => (0, 0),
        };
        Keys {
            runs: &self.runs,
            run,
            at,
        }
    }

    /// Keys held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Bytes held by the runs (their capacity), for tests of memory use.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        self.runs.iter().map(Vec::capacity).sum()
    }

    /// Asserts the runs' invariants.
    #[cfg(test)]
    pub fn check(&self) {
        let mut n = 0;
        let mut previous: Option<&[u8]> = None;
        assert_eq!(self.heads.len(), self.runs.len());
        for (run, &h) in self.runs.iter().zip(&self.heads) {
            assert!(!run.is_empty() && run.len() <= self.run_bytes);
            assert_eq!(h, head(first(run)));
            let mut at = 0;
            while at < run.len() {
                let (key, next) = entry_at(run, at);
                assert!(previous.is_none_or(|p| p < key));
                previous = Some(key);
                at = next;
                n += 1;
            }
            assert_eq!(at, run.len());
        }
        assert_eq!(n, self.len);
    }
}

/// Keys in order, from [`KeyRuns::iter_from`].
pub struct Keys<'a> {
    runs: &'a [Vec<u8>],
    run: usize,
    at: usize,
}

impl<'a> Iterator for Keys<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let run = self.runs.get(self.run)?;
            if self.at < run.len() {
                let (key, next) = entry_at(run, self.at);
                self.at = next;
                return Some(key);
            }
            self.run += 1;
            self.at = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// Short keys, and keys that share their first 16 bytes (a tie of heads); a zero
    /// byte among them, so that padding ties too.
    fn key(parts: &[u8]) -> Vec<u8> {
        let mut k = Vec::new();
        if parts.first() == Some(&2) {
            k.extend_from_slice(b"0123456789abcdef");
        }
        k.extend(parts.iter().map(|&p| [0, b'a', b'b'][usize::from(p)]));
        k
    }

    fn bound(kind: u8, q: &[u8]) -> Bound<&[u8]> {
        match kind {
            0 => Bound::Unbounded,
            1 => Bound::Included(q),
            _ => Bound::Excluded(q),
        }
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(
            ops in prop::collection::vec((0u8..4, prop::collection::vec(0u8..3, 0..7)), 1..3000),
            probes in prop::collection::vec((0u8..3, prop::collection::vec(0u8..3, 0..7)), 1..20),
        ) {
            // Small runs (a few times the longest key), so that splits and merges happen
            // often.
            let mut runs = KeyRuns::with_run_bytes(128);
            let mut model = BTreeSet::new();
            for (op, parts) in ops {
                let k = key(&parts);
                if op < 3 {
                    prop_assert_eq!(runs.insert(&k), model.insert(k));
                } else {
                    prop_assert_eq!(runs.remove(&k), model.remove(&k));
                }
                runs.check();
            }
            prop_assert_eq!(runs.len(), model.len());
            for (kind, parts) in probes {
                let q = key(&parts);
                let got: Vec<&[u8]> = runs.iter_from(bound(kind, &q)).collect();
                let want: Vec<&[u8]> = model
                    .range::<[u8], _>((bound(kind, &q), Bound::Unbounded))
                    .map(Vec::as_slice)
                    .collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn long_keys_take_two_length_bytes() {
        let mut runs = KeyRuns::default();
        let keys: Vec<Vec<u8>> = [0usize, 1, 127, 128, 250, 300, 20_000]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for k in keys.iter().rev() {
            assert!(runs.insert(k));
        }
        let got: Vec<&[u8]> = runs.iter_from(Bound::Unbounded).collect();
        let want: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        assert_eq!(got, want);
        assert!(runs.remove(&keys[4]));
        assert!(!runs.remove(&keys[4]));
        let after: Vec<&[u8]> = runs.iter_from(Bound::Excluded(&keys[3])).collect();
        assert_eq!(after, [&keys[5][..], &keys[6][..]]);
    }

    #[test]
    fn keys_cost_their_length_and_a_byte_and_the_runs_spare_room() {
        // Keys that start with a time arrive in order and fill their runs; others land at
        // random and leave runs between half and wholly full, as a B-tree's nodes.
        for (in_order, limit) in [(true, 15.0 * 1.3), (false, 15.0 * 1.85)] {
            let mut runs = KeyRuns::default();
            let n = 100_000u64;
            for i in 0..n {
                let i = if in_order {
                    i
                } else {
                    i.wrapping_mul(2_654_435_761) % n
                };
                assert!(runs.insert(format!("mem-n1-{i:07}").as_bytes()));
            }
            runs.check();
            let per = runs.held_bytes() as f64 / n as f64;
            assert!(
                per < limit,
                "{per} bytes per 14-byte key (in order: {in_order})"
            );
        }
        // A Fade key (25 bytes), in time order.
        let mut runs = KeyRuns::default();
        for i in 0..10_000u64 {
            runs.insert(format!("fade-{}-abc123", 1_765_000_000_000 + i).as_bytes());
        }
        let per = runs.held_bytes() as f64 / 10_000.0;
        assert!(per < 26.0 * 1.3, "{per} bytes per 25-byte key");
    }

    #[test]
    fn memory_follows_removals() {
        let mut runs = KeyRuns::default();
        let n = 20_000u32;
        for i in 0..n {
            runs.insert(&i.to_be_bytes());
        }
        // Expiry frees keys in another order than they were filed.
        for i in (0..n).filter(|i| i % 10 != 0) {
            assert!(runs.remove(&i.to_be_bytes()));
        }
        runs.check();
        assert_eq!(runs.len(), 2_000);
        let per = runs.held_bytes() as f64 / 2_000.0;
        assert!(per < 5.0 * 3.0, "{per} bytes per remaining 4-byte key");
        for i in (0..n).step_by(10) {
            assert!(runs.remove(&i.to_be_bytes()));
        }
        assert_eq!(runs.len(), 0);
        assert_eq!(runs.held_bytes(), 0);
        assert!(!runs.remove(&5u32.to_be_bytes()));
    }
}
