//! Anti-entropy: how two nodes find and repair the keys on which they differ.
//!
//! The key space is cut into [`BUCKETS`] buckets by a stable hash of the key. Each store
//! keeps, per bucket, the XOR of a hash of every (key, version) it holds, updated on every
//! insert and removal, so a node's digest costs nothing to produce. A round is a pull:
//!
//! 1. A sends its digest to B.
//! 2. B answers with the (key, version) pairs it holds in every bucket whose hash differs
//!    (leaving out writes younger than [`SETTLE_MS`], which replication is still
//!    delivering).
//! 3. A fetches the keys it lacks or holds an older version of, and applies them.
//!
//! Every node runs rounds against random peers, so differences in both directions heal.
//!
//! Clocks ([`worth_fetching`]): a version dated more than [`crate::clock::MAX_SKEW_MS`] ahead of this
//! node's clock is never fetched (it would be refused), and one this node holds is no
//! reason to refuse a peer's version (it is treated as absent, and the fetched entry
//! replaces it), so an entry stored before a clock stepped back cannot keep two replicas
//! apart for good. A version ahead but within the skew counts as in flight until this
//! node's clock passes it by [`SETTLE_MS`]: at most `MAX_SKEW_MS + SETTLE_MS` of delay,
//! never a skip forever.
//! Hashes are stable across processes and machines (FNV-1a and SplitMix64, no seeds).

use crate::clock::{hlc_ceiling, Version};

/// Number of digest buckets.
pub const BUCKETS: usize = 1024;
/// Writes younger than this are left to replication, not repaired.
pub const SETTLE_MS: u64 = 2_000;
/// Most keys asked for in one fetch.
pub const FETCH_CHUNK: usize = 1_000;

/// 64-bit FNV-1a of a key.
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The bucket a key belongs to.
pub fn bucket_of(key: &[u8]) -> usize {
    (key_hash(key) % BUCKETS as u64) as usize
}

fn mix(mut z: u64) -> u64 {
    // SplitMix64 finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The contribution of one (key, version) to its bucket's hash.
pub fn entry_hash(key: &[u8], version: Version) -> u64 {
    mix(key_hash(key) ^ mix(version.hlc ^ mix(version.origin)))
}

/// Buckets whose hashes differ. Digests of another size are wholly different.
pub fn differing(local: &[u64], remote: &[u64]) -> Vec<bool> {
    if local.len() != remote.len() {
        return vec![true; BUCKETS];
    }
    local.iter().zip(remote).map(|(a, b)| a != b).collect()
}

/// Keys of `remote` that this node lacks or holds an older version of.
pub fn wanted(
    remote: &[(String, Version)],
    local_version: impl Fn(&str) -> Option<Version>,
) -> Vec<&str> {
    remote
        .iter()
        .filter(|(k, v)| local_version(k).map_or(true, |mine| mine < *v))
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Keys of `remote` this node should fetch when its clock reads `now_ms`: those it lacks
/// or holds an older version of, leaving out versions beyond the tolerated skew and, when
/// `settle`, versions not yet [`SETTLE_MS`] old. A local version beyond the skew counts as
/// absent (see the module doc).
pub fn worth_fetching(
    remote: &[(String, Version)],
    local_version: impl Fn(&str) -> Option<Version>,
    now_ms: u64,
    settle: bool,
) -> Vec<&str> {
    let ceiling = hlc_ceiling(now_ms);
    let settled = now_ms.saturating_sub(SETTLE_MS);
    remote
        .iter()
        .filter(|(_, v)| v.hlc <= ceiling && (!settle || v.wall_ms() <= settled))
        .filter(|(k, v)| {
            local_version(k)
                .filter(|mine| mine.hlc <= ceiling)
                .map_or(true, |mine| mine < *v)
        })
        .map(|(k, _)| k.as_str())
        .collect()
}

/// Rounds of anti-entropy skipped in a row, at most, while a node's data keeps changing
/// (see [`Pacer`]).
pub const MAX_SKIPPED_ROUNDS: u32 = 7;

/// Paces anti-entropy rounds. While a node's data changes between rounds, writes are
/// flowing and digest buckets differ from a peer's mostly because of writes in flight:
/// a round would make the peer walk its whole store (under its lock) and send every
/// version, to repair little. Such rounds are skipped, but never more than
/// [`MAX_SKIPPED_ROUNDS`] in a row, so a hole left by a lost write is still repaired
/// under a steady load.
#[derive(Debug, Default)]
pub struct Pacer {
    last_digest: Vec<u64>,
    skipped: u32,
}

impl Pacer {
    /// Whether a round should run now, given the node's current digest.
    pub fn round_due(&mut self, digest: Vec<u64>) -> bool {
        let changed = digest != self.last_digest;
        self.last_digest = digest;
        if changed && self.skipped < MAX_SKIPPED_ROUNDS {
            self.skipped += 1;
            return false;
        }
        self.skipped = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MAX_SKEW_MS;

    #[test]
    fn pacer_skips_rounds_while_data_changes_but_not_forever() {
        let mut p = Pacer::default();
        // The first round sees a change (from nothing): skipped.
        assert!(!p.round_due(vec![1]));
        // Quiet data: every round runs.
        assert!(p.round_due(vec![1]));
        assert!(p.round_due(vec![1]));
        // Data changing every round: skipped, except one round after each 7 skipped.
        let ran: Vec<bool> = (0..20u64).map(|i| p.round_due(vec![i + 2])).collect();
        let runs: Vec<usize> = (0..20).filter(|&i| ran[i]).collect();
        assert_eq!(runs, vec![7, 15]);
        // Quiet again: runs at once.
        assert!(p.round_due(vec![21]));
    }

    fn v(hlc: u64) -> Version {
        Version { hlc, origin: 1 }
    }

    #[test]
    fn hashes_are_stable_and_spread() {
        assert_eq!(key_hash(b"greeting"), key_hash(b"greeting"));
        assert_ne!(entry_hash(b"k", v(1)), entry_hash(b"k", v(2)));
        assert_ne!(entry_hash(b"k", v(1)), entry_hash(b"j", v(1)));
        let mut used = vec![false; BUCKETS];
        for i in 0..20_000 {
            used[bucket_of(format!("key-{i}").as_bytes())] = true;
        }
        assert!(used.iter().all(|u| *u), "20k keys reach every bucket");
    }

    #[test]
    fn xor_digests_do_not_depend_on_insertion_order() {
        let entries: Vec<(String, Version)> = (0..500).map(|i| (format!("k{i}"), v(i))).collect();
        let digest = |order: &mut dyn Iterator<Item = &(String, Version)>| {
            let mut d = vec![0u64; BUCKETS];
            for (k, ver) in order {
                d[bucket_of(k.as_bytes())] ^= entry_hash(k.as_bytes(), *ver);
            }
            d
        };
        assert_eq!(
            digest(&mut entries.iter()),
            digest(&mut entries.iter().rev())
        );
    }

    #[test]
    fn future_versions_are_never_fetched_and_never_block_a_repair() {
        let now = 10_000_000u64;
        let at = |ms: u64| Version {
            hlc: ms << 16,
            origin: 1,
        };
        let remote = vec![
            ("settled".to_string(), at(now - SETTLE_MS - 1)),
            ("in-flight".to_string(), at(now - 10)),
            ("ahead-within-skew".to_string(), at(now + MAX_SKEW_MS - 1)),
            ("beyond-skew".to_string(), at(now + MAX_SKEW_MS + 1)),
            ("held-from-the-future".to_string(), at(now - SETTLE_MS - 1)),
        ];
        let local = |k: &str| (k == "held-from-the-future").then(|| at(now + 3_600_000));
        // A periodic round: settled versions only; the local entry from the future does
        // not keep the peer's out.
        assert_eq!(
            worth_fetching(&remote, local, now, true),
            vec!["settled", "held-from-the-future"]
        );
        // Catch-up takes what is in flight too, never what lies beyond the skew.
        assert_eq!(
            worth_fetching(&remote, local, now, false),
            vec![
                "settled",
                "in-flight",
                "ahead-within-skew",
                "held-from-the-future"
            ]
        );
        // An entry ahead within the skew is fetched once the clock has passed it: a
        // delay, not a skip forever.
        let later = now + MAX_SKEW_MS + SETTLE_MS;
        assert!(worth_fetching(&remote, |_| None, later, true).contains(&"ahead-within-skew"));
    }

    #[test]
    fn differing_buckets_and_wanted_keys() {
        let a = vec![1, 2, 3];
        assert_eq!(differing(&a, &[1, 9, 3]), vec![false, true, false]);
        assert_eq!(differing(&a, &[1]).len(), BUCKETS);
        let remote = vec![
            ("new".to_string(), v(5)),
            ("older-here".to_string(), v(5)),
            ("newer-here".to_string(), v(5)),
            ("same".to_string(), v(5)),
        ];
        let local = |k: &str| match k {
            "older-here" => Some(v(4)),
            "newer-here" => Some(v(6)),
            "same" => Some(v(5)),
            _ => None,
        };
        assert_eq!(wanted(&remote, local), vec!["new", "older-here"]);
    }
}
