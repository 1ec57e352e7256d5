//! The instance lists of one process: cached, refreshed in the background, retried with backoff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{FluxError, LocationClient, LocationUrl};

/// Timing of [`LocationCache`].
#[derive(Clone, Debug)]
pub struct LocationTiming {
    /// Limit for one request (connect + TLS + answer).
    pub timeout: Duration,
    /// A successful answer is reused this long.
    pub refresh_every: Duration,
    /// First retry delay after a failure; doubles per failure.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long the very first call waits for the first answer.
    pub first_wait: Duration,
}

impl Default for LocationTiming {
    /// 5 s per request, refreshed every 20 s (nodes re-resolve every 30 s), retries from
    /// 5 s doubling to 5 min, first call waits up to 6 s.
    fn default() -> Self {
        LocationTiming {
            timeout: Duration::from_secs(5),
            refresh_every: Duration::from_secs(20),
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            first_wait: Duration::from_secs(6),
        }
    }
}

/// The retry delay after `failures` consecutive failures (1 = first failure):
/// `min_backoff * 2^(failures-1)`, at most `max_backoff`.
pub fn backoff_after(failures: u32, timing: &LocationTiming) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    timing
        .min_backoff
        .saturating_mul(factor)
        .min(timing.max_backoff)
}

/// State of one (API URL, app) pair.
#[derive(Debug, Default)]
struct Slot {
    /// The last successful list.
    good: Option<Vec<IpAddr>>,
    /// The last error, while failing.
    error: Option<FluxError>,
    /// When the next request may start.
    next_fetch: Option<Instant>,
    /// Consecutive failures.
    failures: u32,
    in_flight: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    done: Notify,
}

/// Instance lists shared by every node of a process; see the module docs.
/// Owned by the cluster and passed to discovery.
#[derive(Default)]
pub struct LocationCache {
    slots: Mutex<HashMap<(String, String), Arc<Shared>>>,
    client: Arc<LocationClient>,
}

impl LocationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The instance IPs of `app` (own IP not removed). Returns the last good list at
    /// once (starting a background refresh when due); only the first call waits, up to
    /// `timing.first_wait`. While the API fails, the last good list is kept; with none,
    /// the last error is returned.
    pub async fn get(
        &self,
        api: &str,
        app: &str,
        timing: &LocationTiming,
    ) -> Result<Vec<IpAddr>, FluxError> {
        let url = LocationUrl::new(api, app)?;
        let shared = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry((api.to_string(), app.to_string()))
                .or_default()
                .clone()
        };
        let notified = shared.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (start, first) = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            let first = slot.good.is_none() && slot.error.is_none();
            let due = match slot.next_fetch {
                None => true,
                Some(t) => Instant::now() >= t,
            };
            let start = due && !slot.in_flight;
            if start {
                slot.in_flight = true;
            }
            (start, first)
        };
        if start {
            tokio::spawn(refresh(
                shared.clone(),
                self.client.clone(),
                url,
                app.to_string(),
                timing.clone(),
            ));
        }
        if first {
            let _ = tokio::time::timeout(timing.first_wait, notified).await;
        }
        let slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        match (&slot.good, &slot.error) {
            (Some(ips), _) => Ok(ips.clone()),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(FluxError::Pending),
        }
    }
}

/// One background request; records the outcome and wakes first-time waiters.
async fn refresh(
    shared: Arc<Shared>,
    client: Arc<LocationClient>,
    url: LocationUrl,
    app: String,
    timing: LocationTiming,
) {
    let result = client.fetch(&url, timing.timeout).await;
    let now = Instant::now();
    {
        let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.in_flight = false;
        match result {
            Ok(list) => {
                if slot.failures > 0 {
                    info!(app = %app, url = %url, failures = slot.failures, "Flux location API answers again");
                }
                if list.skipped > 0 {
                    warn!(app = %app, url = %url, skipped = list.skipped, "Flux location list has entries without a usable ip; skipped them");
                }
                if slot.good.as_ref() != Some(&list.ips) {
                    info!(app = %app, instances = list.ips.len(), ips = ?list.ips, "Flux instance list");
                } else {
                    debug!(app = %app, instances = list.ips.len(), "Flux instance list unchanged");
                }
                slot.good = Some(list.ips);
                slot.error = None;
                slot.failures = 0;
                slot.next_fetch = Some(now + timing.refresh_every);
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                let retry = backoff_after(slot.failures, &timing);
                warn!(
                    app = %app,
                    error = %e,
                    retry_in_s = retry.as_secs(),
                    kept_instances = slot.good.as_ref().map_or(0, Vec::len),
                    "Flux location API failed; other discovery sources carry on"
                );
                slot.error = Some(e);
                slot.next_fetch = Some(now + retry);
            }
        }
    }
    shared.done.notify_waiters();
}
