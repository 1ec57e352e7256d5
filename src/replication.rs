//! Write fan-out: one bounded queue and one sender task per live peer.
//!
//! A write is handed to every peer's queue at once (the entry is shared, never copied per
//! peer). Each sender drains whatever has queued up into one batch, POSTs it, and
//! acknowledges every write in the batch when the peer confirms. A full queue or a failed
//! batch simply withholds the acknowledgement: the writer sees fewer acks (202 instead of
//! 201) and catch-up repairs the peer later. A slow peer never delays the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::transport::{PeerClient, REPLICATE_PATH};
use crate::wire::{self, Entry, Message};

/// Writes queued per peer before new ones are refused for that peer.
pub const QUEUE_CAPACITY: usize = 8_192;
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 512;
/// Most value bytes in one batch (a single larger value still goes alone).
pub const MAX_BATCH_BYTES: usize = 4 << 20;
/// Deadline for one batch round trip.
const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Sent once by each peer that holds a write: true when that peer is in another
/// failure domain (process) than this node.
pub type AckSender = mpsc::UnboundedSender<bool>;

struct Job {
    entry: Arc<Entry>,
    ack: Option<AckSender>,
}

struct Link {
    addr: String,
    tx: mpsc::Sender<Job>,
    other_domain: bool,
}

/// The replication side of one node: its peers' queues.
pub struct Replicator {
    /// This node's failure domain (see [`crate::ids::failure_domain`]).
    domain: String,
    links: Mutex<HashMap<String, Link>>,
    client: PeerClient,
    metrics: Arc<Metrics>,
}

impl Replicator {
    /// No peers yet. `domain` is this node's failure domain.
    pub fn new(domain: String, client: PeerClient, metrics: Arc<Metrics>) -> Self {
        Replicator {
            domain,
            links: Mutex::new(HashMap::new()),
            client,
            metrics,
        }
    }

    /// Start replicating to a peer (replacing any link of the same id).
    pub fn add_peer(&self, id: &str, addr: String) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let other_domain = crate::ids::failure_domain(id) != self.domain;
        let task = sender_task(
            self.client.clone(),
            addr.clone(),
            rx,
            other_domain,
            self.metrics.clone(),
        );
        tokio::spawn(task);
        lock(&self.links).insert(
            id.to_string(),
            Link {
                addr,
                tx,
                other_domain,
            },
        );
    }

    /// Stop replicating to a peer. Its queued writes are still attempted.
    pub fn remove_peer(&self, id: &str) {
        lock(&self.links).remove(id);
    }

    /// Stop replicating to everyone.
    pub fn clear(&self) {
        lock(&self.links).clear();
    }

    /// Writes waiting in all peer queues.
    pub fn queued(&self) -> usize {
        lock(&self.links)
            .values()
            .map(|l| QUEUE_CAPACITY.saturating_sub(l.tx.capacity()))
            .sum()
    }

    /// True when some peer lives in another failure domain (process).
    pub fn has_other_domain(&self) -> bool {
        lock(&self.links).values().any(|l| l.other_domain)
    }

    /// Number of peers writes are sent to.
    pub fn peer_count(&self) -> usize {
        lock(&self.links).len()
    }

    /// Queue `entry` for every peer; each peer that stores it sends one `()` on `ack`.
    /// Returns how many peers it was queued for.
    pub fn broadcast(&self, entry: Arc<Entry>, ack: Option<&AckSender>) -> usize {
        let links = lock(&self.links);
        let mut queued = 0;
        for (id, link) in links.iter() {
            let job = Job {
                entry: entry.clone(),
                ack: ack.cloned(),
            };
            match link.tx.try_send(job) {
                Ok(()) => queued += 1,
                Err(_) => {
                    self.metrics.replication_dropped.inc();
                    tracing::debug!(peer = %id, addr = %link.addr, "replication queue full, write left to catch-up");
                }
            }
        }
        queued
    }
}

/// Wait until `needed` acknowledgements arrived (at least one of them from another
/// failure domain when `need_other_domain`), every sender is done, or `deadline`.
/// Returns the number received, or fewer than `needed` when the domain rule is unmet
/// (so the caller sees the quorum as not reached).
pub async fn await_acks(
    mut rx: mpsc::UnboundedReceiver<bool>,
    needed: usize,
    need_other_domain: bool,
    deadline: Instant,
) -> usize {
    let mut got = 0;
    let mut other_domain = !need_other_domain;
    while got < needed || !other_domain {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(remote)) => {
                got += 1;
                other_domain |= remote;
            }
            Ok(None) | Err(_) => break,
        }
    }
    if other_domain {
        got
    } else {
        got.min(needed.saturating_sub(1))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sender_task(
    client: PeerClient,
    addr: String,
    mut rx: mpsc::Receiver<Job>,
    other_domain: bool,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.entry.value.len();
        batch.push(first);
        while batch.len() < MAX_BATCH_ENTRIES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.entry.value.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
        let started = Instant::now();
        match client
            .call_encoded(&addr, REPLICATE_PATH, body, BATCH_TIMEOUT)
            .await
        {
            Ok(Message::Ack(n)) if n as usize == batch.len() => {
                metrics.replication_batches.inc();
                metrics.replication_entries.inc_by(batch.len() as u64);
                metrics
                    .replication_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                for job in batch.drain(..) {
                    if let Some(ack) = job.ack {
                        let _ = ack.send(other_domain);
                    }
                }
            }
            other => {
                metrics.replication_failures.inc();
                let why = match other {
                    Ok(m) => format!("unexpected reply {m:?}"),
                    Err(e) => e.to_string(),
                };
                tracing::debug!(peer = %addr, entries = batch.len(), error = %why, "replication batch failed");
                batch.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn acks(sent: &[bool], needed: usize, other: bool) -> usize {
        let (tx, rx) = mpsc::unbounded_channel();
        for s in sent {
            tx.send(*s).unwrap();
        }
        drop(tx);
        await_acks(rx, needed, other, Instant::now() + Duration::from_secs(1)).await
    }

    #[tokio::test]
    async fn quorum_counts_acks_and_stops_when_senders_are_done() {
        assert_eq!(acks(&[false], 1, false).await, 1);
        assert_eq!(acks(&[false, false, false], 2, false).await, 2);
        assert_eq!(acks(&[], 1, false).await, 0);
    }

    #[tokio::test]
    async fn a_quorum_inside_one_process_is_not_enough_when_others_are_alive() {
        // Two local acks but none from another process: reported as short of quorum.
        assert_eq!(acks(&[false, false], 1, true).await, 0);
        // It waits past the plain quorum for the cross-process ack.
        assert_eq!(acks(&[false, false, true], 1, true).await, 3);
        assert_eq!(acks(&[true], 1, true).await, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait() {
        let (tx, rx) = mpsc::unbounded_channel::<bool>();
        let got = await_acks(rx, 1, false, Instant::now() + Duration::from_millis(50)).await;
        assert_eq!(got, 0);
        drop(tx);
    }
}
