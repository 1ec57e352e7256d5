//! A stored value with its metadata, and what a write achieved.

use bytes::Bytes;
use tokio::time::Instant;

#[cfg(doc)]
use super::Store;
use crate::clock::Version;

/// One stored value and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The payload (a shared handle; cloning it never copies the bytes).
    pub value: Bytes,
    /// Wall-clock ms at the origin when written.
    pub created_ms: u64,
    /// Wall-clock ms at which it expires (the origin's absolute expiry; travels between nodes).
    pub expires_ms: u64,
    /// The same deadline as a local tokio `Instant`; reads compare against this.
    pub expires_at: Instant,
    /// Orders writes to the key (last writer wins).
    pub version: Version,
}

impl Record {
    /// Seconds of TTL the origin asked for: `(expires_ms - created_ms) / 1000`, rounded.
    pub fn original_ttl_s(&self) -> u64 {
        self.expires_ms
            .saturating_sub(self.created_ms)
            .saturating_add(500)
            / 1000
    }

    /// Remaining whole seconds at `now`, rounded up (0 once expired).
    pub fn remaining_ttl_s(&self, now: Instant) -> u64 {
        let left = self.expires_at.saturating_duration_since(now);
        left.as_secs() + u64::from(left.subsec_nanos() > 0)
    }

    /// Bytes charged against the budget for a value of `value_len` bytes under `key`.
    pub fn cost(key: &str, value_len: usize) -> u64 {
        key.len() as u64 + value_len as u64
    }
}

/// What [`Store::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The key was absent (or only held expired data) and now holds the record.
    Inserted,
    /// The record replaced an older version.
    Replaced,
    /// The store already had an equal or newer version: nothing changed.
    Stale,
    /// The record had already expired on arrival: ignored.
    Expired,
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// Storing the record would exceed the memory budget.
    #[error("storage full: {needed} bytes needed, {available} of {limit} available")]
    Full {
        /// Cost of the refused record ([`Record::cost`]).
        needed: u64,
        /// Budget left, counting the bytes a replaced record would free.
        available: u64,
        /// The budget ([`Store::max_bytes`]).
        limit: u64,
    },
}
