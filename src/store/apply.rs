//! Writes: last writer wins, within the byte budget.

use std::sync::atomic::Ordering as AtomicOrdering;

use tokio::time::Instant;

use super::entry::Draft;
use super::{Applied, Record, Store, StoreError};

impl Store {
    /// Stores `rec` under `key` unless the key holds an equal or newer version (last
    /// writer wins, so duplicate delivery is harmless). A record already expired at
    /// `Instant::now()` is ignored ([`Applied::Expired`]).
    ///
    /// Expired-but-unpurged entries count as absent and never block a write: before
    /// refusing with [`StoreError::Full`], due entries are purged. Replacing a key frees
    /// its old bytes first.
    pub fn apply(&self, key: &str, rec: Record) -> Result<Applied, StoreError> {
        self.apply_over(key, rec, u64::MAX)
    }

    /// [`Store::apply`], except that a held version whose HLC is above `ceiling` (dated
    /// beyond the clock skew this node tolerates: stored before its clock stepped back,
    /// or by an older build) never wins: `rec` replaces it. Without this, such an entry
    /// would beat every real write of its key for as long as it lives.
    pub fn apply_over(&self, key: &str, rec: Record, ceiling: u64) -> Result<Applied, StoreError> {
        let now = Instant::now();
        if rec.expires_at <= now {
            return Ok(Applied::Expired);
        }
        let shared = &*self.shared;
        let now = shared.offset(now);
        let deadline = shared.offset(rec.expires_at);
        let cost = Record::cost(key, rec.value.len());
        let tags = &shared.tags;
        let totals = &shared.totals;
        let tag = tags.of(key.as_bytes());
        let draft = Draft {
            key: key.as_bytes(),
            value: rec.value,
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            deadline,
            version: rec.version,
        };
        let mut freed = Vec::new();
        let mut purged = false;
        let (replaced, earliest, old_cost) = loop {
            let mut state = shared.lock(tag);
            let mut old_cost = None;
            if let Some(old) = state.get(key.as_bytes(), tag) {
                if old.deadline() > now {
                    let held = old.version();
                    if draft.version <= held && held.hlc <= ceiling {
                        return Ok(Applied::Stale);
                    }
                    old_cost = Some(old.cost());
                } else if let Some((_, dead)) = state.remove(key.as_bytes(), tag, tags, totals) {
                    // Expired but not yet purged: counts as absent.
                    state.purged_total += 1;
                    freed.extend(dead);
                }
            }
            // Charge the new bytes and release the replaced ones in one step.
            let limit = shared.max_bytes;
            let reserved = totals.bytes.fetch_update(
                AtomicOrdering::Relaxed,
                AtomicOrdering::Relaxed,
                |bytes| {
                    let others = bytes.saturating_sub(old_cost.unwrap_or(0));
                    (others.saturating_add(cost) <= limit).then(|| others + cost)
                },
            );
            match reserved {
                Ok(_) => {
                    let earliest = state.index.earliest();
                    let Some((_, replaced)) = state.insert(&draft, tag, tags, totals) else {
                        // No room for a record in the shard (16 GiB of them): undo the charge.
                        let _ = totals.bytes.fetch_update(
                            AtomicOrdering::Relaxed,
                            AtomicOrdering::Relaxed,
                            |bytes| Some(bytes.saturating_sub(cost) + old_cost.unwrap_or(0)),
                        );
                        return Err(StoreError::Full {
                            needed: cost,
                            available: 0,
                            limit,
                        });
                    };
                    break (replaced, earliest, old_cost);
                }
                Err(bytes) if purged => {
                    let others = bytes.saturating_sub(old_cost.unwrap_or(0));
                    return Err(StoreError::Full {
                        needed: cost,
                        available: limit.saturating_sub(others),
                        limit,
                    });
                }
                Err(_) => {
                    // Free what has expired in every shard, then try once more.
                    drop(state);
                    self.purge_expired();
                    purged = true;
                }
            }
        };
        drop(freed);
        drop(replaced);

        if earliest.map_or(true, |e| deadline < e) {
            shared.notify.notify_one();
        }
        Ok(if old_cost.is_some() {
            Applied::Replaced
        } else {
            Applied::Inserted
        })
    }
}
