//! Timing and sizes of the membership protocol.

use std::time::Duration;

/// Timing and sizes of the protocol. See [`MembershipConfig::default`].
#[derive(Clone, Debug)]
pub struct MembershipConfig {
    /// One member is probed per interval. Must not be zero.
    pub probe_interval: Duration,
    /// Deadline of a direct probe at full health (stretched when health is poor).
    pub probe_timeout: Duration,
    /// Members asked to probe a member that missed a direct probe.
    pub indirect_probes: usize,
    /// Shortest suspicion before a suspect is declared dead (all confirmations in).
    pub suspicion_min: Duration,
    /// Longest suspicion (no independent confirmation). At least `suspicion_min`.
    pub suspicion_max: Duration,
    /// How often the whole member list is exchanged with one random member.
    pub full_sync_interval: Duration,
    /// How long dead and left members are remembered.
    pub tombstone_ttl: Duration,
    /// First retry delay for an address where nobody answered.
    pub min_backoff: Duration,
    /// Longest retry delay for an address where a node answered before (a peer that
    /// died or was cut off may come back there).
    pub max_backoff: Duration,
    /// Longest retry delay for an address where no node ever answered (an unused port of
    /// the range). Long, because a node that starts there later probes the range itself
    /// and reaches us.
    pub max_scan_backoff: Duration,
    /// Most news items carried by one message.
    pub max_piggyback: usize,
    /// Most discovery probes in flight at once (spreads a node's first scan of a large
    /// range, and most addresses are learned from the first members' lists anyway).
    pub max_discovery_in_flight: usize,
    /// Each news item is sent `retransmit_mult * ceil(log2(members + 2))` times.
    pub retransmit_mult: u32,
    /// Upper bound of the local health score (0 = healthy).
    pub max_health: u32,
}

impl Default for MembershipConfig {
    /// Probe one member every 200 ms with a 500 ms deadline, ask 3 others when it does
    /// not answer, suspect for 2-6 s, full exchange every 3 s, tombstones for 60 s,
    /// addresses of lost peers retried from 250 ms up to every 5 s, ports where nobody
    /// ever answered up to every 30 s.
    fn default() -> Self {
        MembershipConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(500),
            indirect_probes: 3,
            suspicion_min: Duration::from_secs(2),
            suspicion_max: Duration::from_secs(6),
            full_sync_interval: Duration::from_secs(3),
            tombstone_ttl: Duration::from_secs(60),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            max_scan_backoff: Duration::from_secs(30),
            max_piggyback: 16,
            max_discovery_in_flight: 16,
            retransmit_mult: 4,
            max_health: 8,
        }
    }
}
