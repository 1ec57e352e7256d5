//! Writes: a client's PUT and its fan-out, and the entries received from peers.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::clock::{hlc_ceiling, origin_tag, Version, MAX_SKEW_MS};
use crate::metrics::Refusal;
use crate::replication::{Acks, Fanout};
use crate::store::{Applied, Record, StoreError};
use crate::wire::{self, Entry};

use super::Node;

/// True when an applied entry is held here, readable (or superseded by a newer one).
fn holds(applied: Option<Applied>) -> bool {
    matches!(
        applied,
        Some(Applied::Inserted | Applied::Replaced | Applied::Stale)
    )
}

/// What a PUT achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// Nodes holding the write, this one included.
    pub acks: usize,
    /// Acknowledgements needed for a durable (201) write.
    pub quorum: usize,
}

impl PutOutcome {
    /// True when the quorum acknowledged.
    pub fn durable(&self) -> bool {
        self.acks >= self.quorum
    }
}

impl Node {
    /// Store a write locally, replicate it to every live peer at once, and wait for the
    /// quorum (or the write timeout).
    pub async fn put(
        &self,
        key: String,
        value: Bytes,
        ttl_s: u64,
    ) -> Result<PutOutcome, StoreError> {
        let created_ms = self.wall_ms();
        let ttl = Duration::from_secs(ttl_s);
        let version = Version {
            hlc: self.hlc.tick(created_ms),
            origin: self.origin,
        };
        let expires_ms = created_ms.saturating_add(ttl_s.saturating_mul(1000));
        // A clone turns the freshly read value into a shared one, which costs an extra
        // allocation for as long as the key lives: clone only for peers to send it to.
        let (stored, to_send) = if self.replicator.has_peers() {
            (value.clone(), Some(value))
        } else {
            (value, None)
        };
        let record = Record {
            value: stored,
            created_ms,
            expires_ms,
            expires_at: Instant::now() + ttl,
            version,
        };
        // A held version dated beyond the tolerated skew (our clock stepped back since)
        // must not beat this write: see `Store::apply_over`.
        self.store
            .apply_over(&key, record, hlc_ceiling(created_ms))?;
        let deadline = Instant::now() + self.config.write_timeout;
        let acks = Acks::new();
        let fanout = match to_send {
            Some(value) => {
                let entry = Arc::new(Entry {
                    key,
                    value,
                    created_ms,
                    expires_ms,
                    version,
                });
                self.replicator.broadcast(entry, Some(&acks))
            }
            // No peers when the write was stored: nothing to wait for (a peer that joins
            // now gets the key from catch-up).
            None => Fanout::default(),
        };
        let quorum = self.config.quorum(fanout.peers + 1);
        // With other processes alive, one copy must live outside this process, so a
        // durable write survives the loss of any one process.
        let need_other_domain = quorum > 1 && fanout.other_domain;
        let remote = if quorum > 1 && fanout.queued > 0 {
            acks.wait(quorum - 1, need_other_domain, deadline).await
        } else {
            0
        };
        Ok(PutOutcome {
            acks: 1 + remote,
            quorum,
        })
    }

    /// Apply a replication batch from a peer (received over HTTP or handed over in
    /// memory): how many of its entries this node now holds (or holds something newer of).
    /// That count is the acknowledgement, so it never includes an entry this node will not
    /// serve: refused, or already expired here on arrival (acks mean readable).
    pub fn apply_batch<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) -> u32 {
        entries
            .into_iter()
            .map(|e| u32::from(holds(self.apply_remote(e))))
            .sum()
    }

    /// Apply a batch a node of another process sent for relaying, then hand it over in
    /// memory to every other node of this cluster serving in this process: the ids of the
    /// nodes that now hold all of it (at most [`wire::MAX_HOLDERS`]).
    pub fn relay_batch(&self, entries: &[Entry]) -> Vec<String> {
        self.metrics.relay_batches.inc();
        self.metrics.relay_entries.inc_by(entries.len() as u64);
        let whole = |held: u32| held as usize == entries.len();
        let mut holders = Vec::new();
        let held_here = whole(self.apply_batch(entries));
        if held_here {
            holders.push(self.id.clone());
        }
        let siblings = self.local.serving_in(crate::ids::failure_domain(&self.id));
        let others = siblings
            .iter()
            .filter(|n| n.id != self.id)
            .map(|n| (n.id.as_str(), Some(n.clone())));
        crate::replication::hand_over(
            others,
            entries.len(),
            || entries.iter(),
            held_here.then_some(&self.store),
            |id, whole| {
                if whole && holders.len() < wire::MAX_HOLDERS {
                    holders.push(id.to_string());
                }
            },
        );
        holders
    }

    /// Apply one entry received from a peer. `None` when refused (invalid, dated beyond
    /// [`MAX_SKEW_MS`] ahead of our clock, or storage full); otherwise what the store did
    /// ([`Applied::Expired`] when it had expired by our clock: counted, not held). The
    /// value is shared with `e`, not copied.
    pub fn apply_remote(&self, e: &Entry) -> Option<Applied> {
        if crate::wire::check_key(&e.key).is_err() || e.value.len() > self.config.max_value_bytes {
            self.metrics.rejected_messages.inc();
            return None;
        }
        let now = self.wall_ms();
        // From a clock (or a forger) too far ahead: it would win every conflict of its key
        // and outlive its TTL by the skew. Refused, and its HLC not adopted.
        let ceiling = now.saturating_add(MAX_SKEW_MS);
        let ahead = e.version.wall_ms().max(e.created_ms);
        if ahead > ceiling {
            self.refused(e, Refusal::future, ahead - now);
            return None;
        }
        if e.expires_ms <= now {
            self.refused(e, Refusal::expired, now - e.expires_ms);
            return Some(Applied::Expired);
        }
        self.hlc.observe(e.version.hlc, now, MAX_SKEW_MS);
        // Trust the origin's expiry, but never beyond what our own policy allows.
        let max_ms = self
            .config
            .max_ttl
            .saturating_mul(1000)
            .saturating_add(MAX_SKEW_MS);
        let origin_remaining = e.expires_ms.saturating_sub(now);
        let remaining = origin_remaining.min(max_ms);
        let record = Record {
            value: e.value.clone(),
            // A creation time in the future is a faulty peer's: keep it within the skew
            // we tolerate, so X-Created-At stays a real date.
            created_ms: e.created_ms.min(now.saturating_add(MAX_SKEW_MS)),
            expires_ms: if remaining == origin_remaining {
                e.expires_ms
            } else {
                now + remaining
            },
            expires_at: Instant::now() + Duration::from_millis(remaining),
            version: e.version,
        };
        match self.store.apply_over(&e.key, record, hlc_ceiling(now)) {
            Ok(applied) => {
                if applied == Applied::Expired {
                    self.metrics.refused(Refusal::expired);
                }
                if matches!(applied, Applied::Inserted | Applied::Replaced) {
                    self.metrics.entries_applied.inc();
                    self.metrics
                        .replication_lag_seconds
                        .observe(now.saturating_sub(e.version.wall_ms()) as f64 / 1000.0);
                }
                Some(applied)
            }
            Err(err) => {
                debug!(node = %self.id, port = self.port, key = %e.key, error = %err, "replica refused");
                // Whether it came by replication or anti-entropy, do not pull it again
                // while there is no more room.
                self.refused_for_room
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .note(&e.key, e.version, self.store.bytes());
                None
            }
        }
    }

    /// Count and (rate-limited) log an entry refused for `reason`, `by_ms` beyond the
    /// limit, naming the peer that wrote it when it is a member we know.
    pub(super) fn refused(&self, e: &Entry, reason: Refusal, by_ms: u64) {
        self.metrics.refused(reason);
        let what = match reason {
            Refusal::future => "future",
            Refusal::expired => "expired",
        };
        if !self.skew.warn_due(what, Instant::now()) {
            return;
        }
        let origin = self
            .membership()
            .peers()
            .find(|p| origin_tag(&p.info.id) == e.version.origin)
            .map(|p| format!("{} at {}", p.info.id, p.addr()))
            .unwrap_or_else(|| format!("unknown writer (origin tag {:016x})", e.version.origin));
        match reason {
            Refusal::future => {
                warn!(node = %self.id, port = self.port, peer = %origin, key = %e.key, ahead_ms = by_ms, max_skew_ms = MAX_SKEW_MS, "refused entries dated beyond the tolerated clock skew ahead of this node's clock: check the writer's clock (more such refusals are counted in repram_entries_refused, logged again in 30 s)")
            }
            Refusal::expired => {
                warn!(node = %self.id, port = self.port, peer = %origin, key = %e.key, expired_ms_ago = by_ms, "refused (not acknowledged) entries already expired by this node's clock: is the writer's clock behind? (counted in repram_entries_refused, logged again in 30 s)")
            }
        }
    }
}
