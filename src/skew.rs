//! Clock skew of peers as this node measures it, and how loudly to say so.
//!
//! Every `/internal/` answer carries the answering node's wall clock
//! (the `x-repram-clock-ms` header, see `transport`); a probe compares it with the middle of its own
//! round trip. Only answers to this node's own probes are measured (direct contact, as
//! for membership). A peer beyond [`MAX_SKEW_MS`] either way splits the cluster: its
//! writes are refused here (ahead) or ours are refused there (behind), and with a
//! cluster secret its signatures fail. That is logged as a warning naming the peer, at
//! most once per [`WARN_EVERY`] per peer, and shown in `/status` and the dashboard.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub use crate::clock::MAX_SKEW_MS;

/// Most peers and reasons remembered as warned about (more than a member table holds).
const MAX_WARNED: usize = 4096;

/// Least time between two warnings about one peer (or one kind of refusal).
pub const WARN_EVERY: Duration = Duration::from_secs(30);

/// Skew this node measured for one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSkew {
    /// The peer's clock minus ours, ms (positive: the peer is ahead).
    pub skew_ms: i64,
    /// Uncertainty: half the round trip of the measuring probe, ms.
    pub error_ms: u64,
    /// When it was measured.
    pub at: Instant,
}

impl PeerSkew {
    /// True when the skew is beyond [`MAX_SKEW_MS`] even allowing for the uncertainty.
    pub fn splits(&self) -> bool {
        self.skew_ms.unsigned_abs().saturating_sub(self.error_ms) > MAX_SKEW_MS
    }
}

/// The skew of `peer_ms` (a peer's clock read between `sent_ms` and `received_ms` of our
/// clock), and its uncertainty.
pub fn measure(sent_ms: u64, received_ms: u64, peer_ms: u64) -> (i64, u64) {
    let rtt = received_ms.saturating_sub(sent_ms);
    let mid = sent_ms.saturating_add(rtt / 2);
    let skew = i128::from(peer_ms) - i128::from(mid);
    let skew = skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    (skew, rtt.div_ceil(2))
}

/// Skews of the peers of one node, and when each was last warned about.
#[derive(Debug, Default)]
pub struct SkewTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    peers: HashMap<String, PeerSkew>,
    warned: HashMap<String, Instant>,
}

impl SkewTable {
    /// Record a measurement; true when it should be warned about now (beyond the bound,
    /// and not warned about for this peer within [`WARN_EVERY`]).
    pub fn record(&self, peer: &str, skew: PeerSkew) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let warn = skew.splits() && throttle(&mut inner.warned, peer, skew.at);
        inner.peers.insert(peer.to_string(), skew);
        warn
    }

    /// True when a warning about `what` (a peer or a reason) is due at `now`.
    pub fn warn_due(&self, what: &str, now: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        throttle(&mut inner.warned, what, now)
    }

    /// Forget a peer (it left or died).
    pub fn remove(&self, peer: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.peers.remove(peer);
        inner.warned.remove(peer);
    }

    /// The last measurement of `peer`.
    pub fn get(&self, peer: &str) -> Option<PeerSkew> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.peers.get(peer).cloned()
    }
}

/// True (and noted) when `what` was not warned about within [`WARN_EVERY`] of `now`.
fn throttle(warned: &mut HashMap<String, Instant>, what: &str, now: Instant) -> bool {
    let due = warned
        .get(what)
        .map_or(true, |at| now.saturating_duration_since(*at) >= WARN_EVERY);
    if due {
        // Bounded: peers come from the member table, reasons are a closed set.
        if warned.len() > MAX_WARNED {
            warned.clear();
        }
        warned.insert(what.to_string(), now);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_measured_against_the_middle_of_the_round_trip() {
        assert_eq!(measure(1_000, 1_010, 1_005), (0, 5));
        assert_eq!(measure(1_000, 1_010, 3_601_005), (3_600_000, 5));
        assert_eq!(measure(3_601_000, 3_601_000, 1_000), (-3_600_000, 0));
        // Nonsense from the wire never overflows.
        assert_eq!(measure(0, 0, u64::MAX), (i64::MAX, 0));
        assert_eq!(measure(u64::MAX, 0, 0).1, 0);
    }

    #[test]
    fn warnings_beyond_the_bound_are_rate_limited_per_peer() {
        let t = SkewTable::default();
        let now = Instant::now();
        let skew = |ms, at| PeerSkew {
            skew_ms: ms,
            error_ms: 10,
            at,
        };
        assert!(!t.record("a", skew(1_000, now)), "small skew: no warning");
        assert!(t.record("b", skew(-3_600_000, now)));
        assert!(!t.record("b", skew(-3_600_000, now + Duration::from_secs(1))));
        assert!(t.record("b", skew(-3_600_000, now + WARN_EVERY)));
        assert_eq!(t.get("b").map(|s| s.skew_ms), Some(-3_600_000));
        // Within the uncertainty of the bound: not a split.
        assert!(!skew(30_005, now).splits());
        assert!(skew(30_011, now).splits());
        t.remove("b");
        assert!(t.get("b").is_none());
    }
}
