//! The byte budget: totals over all shards, and reservations for uploads being received.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

use super::entry::Entry;
use super::{Store, StoreError};

/// What the shards add up together.
pub(super) struct Totals {
    /// Sum of [`Record::cost`] over all entries. A write reserves its bytes here before
    /// it inserts, so concurrent writes never overrun the budget together.
    pub(super) bytes: AtomicU64,
    /// Per anti-entropy bucket, the XOR of the entry hashes of its entries (XOR is
    /// commutative, so shards update it independently).
    pub(super) digest: Box<[AtomicU64]>,
}

impl Totals {
    /// Add or remove (XOR is its own inverse) `node` in the digest.
    pub(super) fn toggle(&self, node: &Entry<'_>) {
        let (bucket, hash) = node.digest_part();
        if let Some(slot) = self.digest.get(bucket) {
            slot.fetch_xor(hash, AtomicOrdering::Relaxed);
        }
    }

    /// `node` left the store.
    pub(super) fn release(&self, node: &Entry<'_>) {
        self.bytes.fetch_sub(node.cost(), AtomicOrdering::Relaxed);
        self.toggle(node);
    }
}

/// Bytes of a store's budget promised to an upload being received ([`Store::reserve`]);
/// given back when dropped.
#[derive(Debug)]
pub struct StoreReservation {
    store: Store,
    bytes: u64,
}

impl StoreReservation {
    /// Promise `bytes` more (a chunked upload, as it streams).
    pub fn grow(&mut self, bytes: u64) -> Result<(), StoreError> {
        self.store.take(bytes)?;
        self.bytes += bytes;
        Ok(())
    }
}

impl Drop for StoreReservation {
    fn drop(&mut self) {
        self.store
            .shared
            .reserved
            .fetch_sub(self.bytes, AtomicOrdering::AcqRel);
    }
}

impl Store {
    /// Promise `bytes` of the budget to an upload before it is read: refused with
    /// [`StoreError::Full`] when the stored bytes and the other promises leave less.
    /// The promise lasts until the returned guard drops; the write itself is charged
    /// by [`Store::apply`] as usual.
    pub fn reserve(&self, bytes: u64) -> Result<StoreReservation, StoreError> {
        self.take(bytes)?;
        Ok(StoreReservation {
            store: self.clone(),
            bytes,
        })
    }

    /// Like the budget check of [`Store::apply`]: expired entries never block it.
    pub(super) fn take(&self, bytes: u64) -> Result<(), StoreError> {
        self.try_take(bytes).or_else(|_| {
            self.purge_expired();
            self.try_take(bytes)
        })
    }

    pub(super) fn try_take(&self, bytes: u64) -> Result<(), StoreError> {
        let shared = &*self.shared;
        let limit = shared.max_bytes;
        let stored = shared.totals.bytes.load(AtomicOrdering::Relaxed);
        shared
            .reserved
            .fetch_update(
                AtomicOrdering::AcqRel,
                AtomicOrdering::Acquire,
                |reserved| {
                    let total = reserved.checked_add(bytes)?;
                    (stored.saturating_add(total) <= limit).then_some(total)
                },
            )
            .map(|_| ())
            .map_err(|reserved| StoreError::Full {
                needed: bytes,
                available: limit.saturating_sub(stored.saturating_add(reserved)),
                limit,
            })
    }
}
