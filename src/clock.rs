//! Time and versions: wall-clock milliseconds, a hybrid logical clock (HLC), and the
//! [`Version`] that orders writes to one key (last writer wins, ties broken by origin).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the system clock (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How far ahead of this node's wall clock a peer's clock, write version, creation time
/// or HLC timestamp may be (ms). Beyond it an entry is refused (a peer that far ahead
/// would win every conflict and keep short-lived values for as long as it is ahead),
/// and the skew is warned about (see the `skew` module). As wide as the signature window
/// of the `auth` module, so a skew that breaks signatures is also one that is reported.
pub const MAX_SKEW_MS: u64 = 30_000;

/// `wall_ms` moved by `offset_ms` (a test hook: see `Tuning::clock_offset_ms` in `node`),
/// saturating at both ends.
pub fn offset_ms(wall_ms: u64, offset_ms: i64) -> u64 {
    wall_ms.saturating_add_signed(offset_ms)
}

/// Bits of an HLC timestamp that hold the logical counter; the rest hold wall-clock ms.
const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;

/// The version of one write: an HLC timestamp and the origin node's tag.
///
/// Ordered by timestamp, then by origin, so every node picks the same winner for
/// concurrent writes of one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Version {
    /// HLC timestamp: wall-clock ms in the high 48 bits, a counter in the low 16.
    pub hlc: u64,
    /// Stable 64-bit tag of the node that made the write ([`origin_tag`] of its id).
    pub origin: u64,
}

impl Version {
    /// Wall-clock milliseconds part of the timestamp.
    pub fn wall_ms(&self) -> u64 {
        self.hlc >> COUNTER_BITS
    }
}

/// 64-bit FNV-1a hash of a node id: the tie-breaker carried in every [`Version`].
pub fn origin_tag(node_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in node_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The largest HLC timestamp accepted when this node's wall clock reads `wall_ms`: any
/// counter value at [`MAX_SKEW_MS`] ahead.
pub fn hlc_ceiling(wall_ms: u64) -> u64 {
    wall_ms
        .saturating_add(MAX_SKEW_MS)
        .saturating_mul(1 << COUNTER_BITS)
        .saturating_add(COUNTER_MASK)
}

/// A hybrid logical clock: timestamps never go backwards, stay close to wall time, and
/// move past every timestamp this node has seen from others.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
}

impl Default for Hlc {
    fn default() -> Self {
        Self::new()
    }
}

impl Hlc {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Hlc {
            last: AtomicU64::new(0),
        }
    }

    /// A fresh timestamp for a local write, given the wall clock in ms.
    pub fn tick(&self, wall_ms: u64) -> u64 {
        let physical = wall_ms.saturating_mul(1 << COUNTER_BITS);
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let next = if physical > prev {
                physical
            } else {
                prev.saturating_add(1)
            };
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    /// Take note of a timestamp received from another node, so later local ticks exceed it.
    /// Timestamps more than `max_skew_ms` ahead of our wall clock are not adopted (a peer
    /// with a broken clock must not drag ours into the future); returns false for those.
    pub fn observe(&self, remote: u64, wall_ms: u64, max_skew_ms: u64) -> bool {
        if (remote >> COUNTER_BITS) > wall_ms.saturating_add(max_skew_ms) {
            return false;
        }
        self.last.fetch_max(remote, Ordering::AcqRel);
        true
    }

    /// The counter mask, exposed for tests of the packing.
    pub fn counter(ts: u64) -> u64 {
        ts & COUNTER_MASK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_strictly_increasing_even_if_wall_clock_stalls_or_goes_back() {
        let hlc = Hlc::new();
        let a = hlc.tick(1_000);
        let b = hlc.tick(1_000);
        let c = hlc.tick(900);
        assert!(a < b && b < c);
        assert_eq!(a >> COUNTER_BITS, 1_000);
        assert_eq!(Hlc::counter(b), 1);
    }

    #[test]
    fn observing_a_remote_timestamp_moves_later_ticks_past_it() {
        let hlc = Hlc::new();
        let remote = (5_000u64 << COUNTER_BITS) + 7;
        assert!(hlc.observe(remote, 4_990, 1_000));
        assert!(hlc.tick(4_990) > remote);
    }

    #[test]
    fn a_timestamp_far_in_the_future_is_not_adopted() {
        let hlc = Hlc::new();
        let remote = 1_000_000u64 << COUNTER_BITS;
        assert!(!hlc.observe(remote, 1_000, 60_000));
        assert!(hlc.tick(1_000) < remote);
    }

    #[test]
    fn versions_order_by_timestamp_then_origin() {
        let a = Version {
            hlc: 10,
            origin: 99,
        };
        let b = Version { hlc: 11, origin: 1 };
        let c = Version { hlc: 11, origin: 2 };
        assert!(a < b && b < c);
        assert_eq!(
            Version {
                hlc: 3 << 16,
                origin: 0
            }
            .wall_ms(),
            3
        );
    }

    #[test]
    fn origin_tags_are_stable_and_distinct() {
        assert_eq!(
            origin_tag("flux-node-1-abcd"),
            origin_tag("flux-node-1-abcd")
        );
        assert_ne!(
            origin_tag("flux-node-1-abcd"),
            origin_tag("flux-node-2-abcd")
        );
    }
}
