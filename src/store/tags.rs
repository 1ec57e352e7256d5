//! Keyed 32-bit hashes of keys: how shards, the map and the expiry index name an entry.

use std::hash::{BuildHasher, RandomState};

/// Turns keys into tags: 32-bit keyed hashes (SipHash with a per-store random key, so
/// clients cannot aim collisions at the map). The map is hashed by the tag alone, which
/// lets the expiry index name an entry in 4 bytes.
pub(super) struct Tags {
    pub(super) hasher: RandomState,
    /// All ones; tests clear bits to force collisions.
    pub(super) mask: u32,
}

impl Tags {
    pub(super) fn new() -> Tags {
        Tags::masked(u32::MAX)
    }

    /// Tags limited to the bits of `mask` (`u32::MAX` but in tests).
    pub(super) fn masked(mask: u32) -> Tags {
        Tags {
            hasher: RandomState::new(),
            mask,
        }
    }

    pub(super) fn of(&self, key: &[u8]) -> u32 {
        // Truncation intended: the low 32 bits of a 64-bit hash.
        (self.hasher.hash_one(key) as u32) & self.mask
    }
}

/// The map hash of a tag: its 32 bits spread over 64 (hashbrown takes the control byte
/// from the top bits and the bucket from the bottom ones).
pub(super) fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
