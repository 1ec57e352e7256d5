//! The per-process cap on request-body bytes being received (`REPRAM_MAX_INFLIGHT_BYTES`).
//!
//! An upload reserves its declared `Content-Length` before a byte of it is read (a
//! chunked one reserves as it streams); the reservation is a guard, released however
//! the request ends. So concurrent big uploads to all the nodes of a process together
//! hold at most the cap in memory, whatever the storage budgets allow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes of request bodies being received by every node of one process.
#[derive(Debug)]
pub struct Receiving {
    cap: u64,
    used: AtomicU64,
}

impl Receiving {
    /// Room for `cap` bytes at once.
    pub fn new(cap: u64) -> Arc<Receiving> {
        Arc::new(Receiving {
            cap,
            used: AtomicU64::new(0),
        })
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.cap)
            })
            .is_ok()
    }

    /// Reserve `n` bytes; `None` when they do not fit under the cap now.
    pub fn reserve(self: &Arc<Self>, n: u64) -> Option<Reserved> {
        self.take(n).then(|| Reserved {
            owner: self.clone(),
            bytes: n,
        })
    }
}

/// Bytes reserved in [`Receiving`]; given back when dropped.
#[derive(Debug)]
pub struct Reserved {
    owner: Arc<Receiving>,
    bytes: u64,
}

impl Reserved {
    /// Reserve `n` more bytes; false (and nothing taken) when they do not fit.
    pub fn grow(&mut self, n: u64) -> bool {
        let ok = self.owner.take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.owner.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fit_under_the_cap_and_come_back_when_dropped() {
        let r = Receiving::new(100);
        let a = r.reserve(60).expect("fits");
        assert!(r.reserve(41).is_none());
        let mut b = r.reserve(40).expect("fits exactly");
        assert_eq!(r.used(), 100);
        assert!(!b.grow(1));
        assert_eq!(b.bytes(), 40);
        drop(a);
        assert!(b.grow(60));
        assert_eq!((b.bytes(), r.used()), (100, 100));
        drop(b);
        assert_eq!(r.used(), 0);
        assert!(r.reserve(u64::MAX).is_none());
        assert_eq!(r.used(), 0);
    }
}
