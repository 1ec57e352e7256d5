//! Timing knobs of a node that are not part of the public configuration, and the
//! clock test hook.

use std::time::Duration;

use crate::clock::now_ms;
use crate::membership::MembershipConfig;

/// Timing knobs that are not part of the public configuration.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Membership timing.
    pub membership: MembershipConfig,
    /// How often DISCOVERY_DOMAIN is resolved again.
    pub resolve_interval: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// How long a header may take to arrive.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Time between anti-entropy rounds against a random peer.
    pub anti_entropy_interval: Duration,
    /// Wall clock in ms since the Unix epoch (write versions and expiry). Tests swap in a
    /// clock that follows tokio's paused time.
    pub wall_ms: fn() -> u64,
    /// **Test hook**: ms added to `wall_ms` (negative: behind), so one process can play a
    /// host whose clock is wrong. The binary sets it from `REPRAM_TEST_CLOCK_OFFSET_MS`
    /// (see [`Tuning::from_test_env`]); 0 in production.
    pub clock_offset_ms: i64,
}

/// The environment variable of the clock test hook ([`Tuning::clock_offset_ms`]).
pub const TEST_CLOCK_OFFSET_VAR: &str = "REPRAM_TEST_CLOCK_OFFSET_MS";

impl Tuning {
    /// The default tuning with the test hooks the environment sets: only
    /// [`TEST_CLOCK_OFFSET_VAR`], a whole number of ms. A process-wide variable because a
    /// wrong clock belongs to a host, not a node; it is how black-box tests run a real
    /// binary an hour ahead or behind. An invalid value is an error naming it.
    pub fn from_test_env() -> Result<Tuning, String> {
        let mut tuning = Tuning::default();
        if let Ok(raw) = std::env::var(TEST_CLOCK_OFFSET_VAR) {
            tuning.clock_offset_ms = raw.trim().parse().map_err(|_| {
                format!("{TEST_CLOCK_OFFSET_VAR}={raw}: expected a whole number of milliseconds")
            })?;
        }
        Ok(tuning)
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            membership: MembershipConfig::default(),
            resolve_interval: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(3),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            anti_entropy_interval: Duration::from_secs(2),
            wall_ms: now_ms,
            clock_offset_ms: 0,
        }
    }
}
