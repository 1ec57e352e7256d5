//! Per-client-IP token buckets for the public API (`REPRAM_RATE_LIMIT`, burst 2×).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use hyper::header::HeaderMap;
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

/// The client a request counts against: the last `X-Forwarded-For` entry (the one our
/// proxy added) when the proxy is trusted, else the connection's address.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trust_proxy: bool) -> IpAddr {
    if !trust_proxy {
        return peer;
    }
    // Only the very last entry is trusted: the proxy appends it to the last line (or adds
    // a line of its own); everything before it comes from the client. Bytes that are not
    // text earlier on the line must not make the whole line, and so an earlier line the
    // client sent, count instead.
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().rsplit(|b| *b == b',').next())
        .and_then(|entry| std::str::from_utf8(entry).ok())
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

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

    #[test]
    fn forwarded_for_is_used_only_behind_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "1.1.1.1, 198.51.100.9".parse().unwrap());
        let peer = ip("10.0.0.1");
        assert_eq!(client_ip(peer, &h, false), peer);
        assert_eq!(client_ip(peer, &h, true), ip("198.51.100.9"));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(peer, &h, true), peer);
        // A spoofed earlier entry never wins over a bad last one.
        h.insert("x-forwarded-for", "1.1.1.1, garbage".parse().unwrap());
        assert_eq!(client_ip(peer, &h, true), peer);
        assert_eq!(client_ip(peer, &HeaderMap::new(), true), peer);
    }

    #[test]
    fn a_line_that_is_not_text_does_not_let_an_earlier_line_win() {
        let peer = ip("10.0.0.1");
        let mut h = HeaderMap::new();
        // The client sends two lines, the second with a non-ASCII byte; the proxy appends
        // the real address to the last one.
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        let spoiled = HeaderValue::from_bytes(b"\xff, 198.51.100.9").unwrap();
        h.append("x-forwarded-for", spoiled);
        assert_eq!(client_ip(peer, &h, true), ip("198.51.100.9"));
        let unreadable = HeaderValue::from_bytes(b"198.51.100.9\xff").unwrap();
        h.append("x-forwarded-for", unreadable);
        assert_eq!(client_ip(peer, &h, true), peer);
    }
}
