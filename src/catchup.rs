//! Catch-up: how a node that starts late pulls the data its peers hold, and the
//! anti-entropy round it is built on (see [`crate::antientropy`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info};

use crate::antientropy::{self, FETCH_CHUNK, SETTLE_MS};
use crate::node::Node;
use crate::store::Applied;
use crate::transport::{CallError, SYNC_PATH};
use crate::wire::{Entry, Message};

pub(crate) const CATCH_UP_IDLE: u8 = 0;
pub(crate) const CATCH_UP_RUNNING: u8 = 1;
pub(crate) const CATCH_UP_DONE: u8 = 2;

impl Node {
    /// Anti-entropy step 2: our (key, version) pairs in the buckets where `remote` differs.
    pub fn versions_for(&self, remote: &[u64]) -> Message {
        let diff = antientropy::differing(&self.store.digest(), remote);
        Message::Versions(self.store.versions_in(&diff, u64::MAX))
    }

    /// Anti-entropy step 3: the live entries among `keys` (at most [`FETCH_CHUNK`]).
    pub fn fetch(&self, keys: &[String]) -> Message {
        let entries = keys
            .iter()
            .take(FETCH_CHUNK)
            .filter_map(|k| {
                let r = self.store.get(k)?;
                Some(Entry {
                    key: k.clone(),
                    value: r.value,
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                    version: r.version,
                })
            })
            .collect();
        Message::Replicate(entries)
    }

    /// One anti-entropy round: pull from the peer at `addr` every entry we lack or hold
    /// an older version of. Returns how many entries changed here.
    ///
    /// Periodic rounds (`settle`) leave out writes younger than [`SETTLE_MS`], which
    /// replication is still delivering; catch-up after start takes everything.
    pub async fn sync_with(&self, addr: &str, settle: bool) -> Result<usize, CallError> {
        const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
        let digest = Message::Digest(self.store.digest());
        let mut versions = match self
            .client
            .call(addr, SYNC_PATH, &digest, ROUND_TIMEOUT)
            .await?
        {
            Message::Versions(v) => v,
            other => {
                return Err(CallError::Http(format!(
                    "unexpected reply {}",
                    other.kind()
                )))
            }
        };
        if settle {
            let settled = (self.tuning.wall_ms)().saturating_sub(SETTLE_MS);
            versions.retain(|(_, v)| v.wall_ms() <= settled);
        }
        let wanted: Vec<String> = antientropy::wanted(&versions, |k| self.store.version(k))
            .into_iter()
            .map(String::from)
            .collect();
        let mut repaired = 0;
        for chunk in wanted.chunks(FETCH_CHUNK) {
            let fetch = Message::Fetch(chunk.to_vec());
            match self
                .client
                .call(addr, SYNC_PATH, &fetch, ROUND_TIMEOUT)
                .await?
            {
                Message::Replicate(entries) => {
                    for e in &entries {
                        if matches!(
                            self.apply_remote(e),
                            Some(Applied::Inserted | Applied::Replaced)
                        ) {
                            repaired += 1;
                        }
                    }
                }
                other => {
                    return Err(CallError::Http(format!(
                        "unexpected reply {}",
                        other.kind()
                    )))
                }
            }
            if self.is_stopping() {
                break;
            }
        }
        self.metrics.anti_entropy_rounds.inc();
        self.metrics.anti_entropy_repairs.inc_by(repaired as u64);
        Ok(repaired)
    }

    /// After start, pull everything from the first peer that answers. Only one catch-up
    /// runs at a time: peers that join meanwhile are left to periodic anti-entropy.
    pub(crate) async fn catch_up_from(self: Arc<Self>, peer: String, addr: String) {
        let claimed = self.caught_up.compare_exchange(
            CATCH_UP_IDLE,
            CATCH_UP_RUNNING,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if claimed.is_err() {
            return;
        }
        let started = Instant::now();
        match self.sync_with(&addr, false).await {
            Ok(n) => {
                self.caught_up.store(CATCH_UP_DONE, Ordering::Release);
                info!(node = %self.id, port = self.port, peer = %peer, entries = n, ms = started.elapsed().as_millis() as u64, "caught up from peer");
            }
            Err(e) => {
                // Let the next peer that joins try again.
                self.caught_up.store(CATCH_UP_IDLE, Ordering::Release);
                debug!(node = %self.id, port = self.port, peer = %peer, error = %e, "catch-up failed; anti-entropy will retry")
            }
        }
    }
}
