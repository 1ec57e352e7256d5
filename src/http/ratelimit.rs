//! Per-client-IP token buckets for the public API (`REPRAM_RATE_LIMIT`, burst 2×): one
//! limiter per process, shared by its nodes, so spreading requests over the ports of a
//! process does not multiply a client's budget. Who the client is: [`super::client_addr`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Clients remembered before idle (full) buckets are forgotten.
const PRUNE_AT: usize = 10_000;

struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets keyed by client IP.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

impl RateLimiter {
    /// `per_second` requests per second per client with a burst of twice that; `None`
    /// when the limit is off (0).
    pub fn new(per_second: u32) -> Option<Self> {
        (per_second > 0).then(|| RateLimiter {
            rate: f64::from(per_second),
            burst: 2.0 * f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Take one token for `client`, or say how long until one is available.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= PRUNE_AT {
            // A bucket idle long enough to be full again is the same as no bucket.
            let refill = Duration::from_secs_f64(self.burst / self.rate);
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < refill);
        }
        let b = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn off_when_zero() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn burst_of_twice_the_rate_then_refill() {
        let rl = RateLimiter::new(5).unwrap();
        let t0 = Instant::now();
        let a = ip("203.0.113.1");
        for _ in 0..10 {
            assert!(rl.check(a, t0).is_ok());
        }
        let wait = rl.check(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(200));
        // Another client has its own bucket.
        assert!(rl.check(ip("203.0.113.2"), t0).is_ok());
        // 200 ms later one token is back.
        let t1 = t0 + Duration::from_millis(200);
        assert!(rl.check(a, t1).is_ok());
        assert!(rl.check(a, t1).is_err());
    }
}
