//! Write fan-out: one bounded queue and one sender task per live peer.
//!
//! A write is handed to every peer's queue at once (the entry is shared, never copied per
//! peer). Each sender drains whatever has queued up into one batch, delivers it, and
//! acknowledges every write in the batch when the peer confirms. A peer in another process
//! gets the batch as one HTTP request; a peer serving in this process (see
//! [`crate::local`]) gets it handed over in memory, applied by the same code. A full
//! queue or a failed batch simply withholds the acknowledgement: the writer sees fewer
//! acks (202 instead of 201) and catch-up repairs the peer later. A slow peer never
//! delays the others. Acknowledgements are counted in one small shared [`Acks`] per
//! write, not sent through a channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::node::Node;
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

/// The acknowledgements of one write, collected from the peers' sender tasks without a
/// channel: a few atomics and a [`Notify`] shared by the writer and one [`AckToken`] per
/// peer the write was queued for.
pub struct Acks(Arc<AckState>);

struct AckState {
    /// Acknowledgements so far.
    got: AtomicUsize,
    /// Set (before `got` counts it) once an acknowledgement came from another domain.
    other_domain: AtomicBool,
    /// Tokens not yet used or dropped: peers that may still acknowledge.
    pending: AtomicUsize,
    /// Wakes the writer on every acknowledgement and when the last token is gone.
    notify: Notify,
}

/// One peer's share of a write's [`Acks`]: [`AckToken::ack`] when the peer holds the
/// write; dropping it unused means no acknowledgement from that peer.
pub struct AckToken(Arc<AckState>);

impl AckToken {
    /// The peer holds the write; `other_domain` when it is in another failure domain
    /// (process) than the writer.
    pub fn ack(self, other_domain: bool) {
        if other_domain {
            self.0.other_domain.store(true, Ordering::Release);
        }
        self.0.got.fetch_add(1, Ordering::AcqRel);
        self.0.notify.notify_one();
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_one();
        }
    }
}

impl Default for Acks {
    fn default() -> Self {
        Self::new()
    }
}

impl Acks {
    /// No tokens handed out yet.
    pub fn new() -> Self {
        Acks(Arc::new(AckState {
            got: AtomicUsize::new(0),
            other_domain: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            notify: Notify::new(),
        }))
    }

    /// A token for one more peer.
    pub fn token(&self) -> AckToken {
        self.0.pending.fetch_add(1, Ordering::AcqRel);
        AckToken(self.0.clone())
    }

    /// Wait until `needed` acknowledgements arrived (at least one of them from another
    /// failure domain when `need_other_domain`), every token is used or dropped, or
    /// `deadline`. Returns the number received, or fewer than `needed` when the domain
    /// rule is unmet (so the caller sees the quorum as not reached).
    pub async fn wait(&self, needed: usize, need_other_domain: bool, deadline: Instant) -> usize {
        let state = &*self.0;
        loop {
            let done = state.pending.load(Ordering::Acquire) == 0;
            let got = state.got.load(Ordering::Acquire);
            let domain_ok = !need_other_domain || state.other_domain.load(Ordering::Acquire);
            let result = if domain_ok {
                got
            } else {
                got.min(needed.saturating_sub(1))
            };
            if done || (got >= needed && domain_ok) {
                return result;
            }
            // A notification sent after the loads above is kept as a permit: none is lost.
            let woken = tokio::time::timeout_at(deadline, state.notify.notified()).await;
            if woken.is_err() {
                return result;
            }
        }
    }
}

struct Job {
    entry: Arc<Entry>,
    ack: Option<AckToken>,
}

struct Link {
    addr: String,
    tx: mpsc::Sender<Job>,
    other_domain: bool,
}

/// Where a sender task delivers its batches.
enum Target {
    /// POST to the peer's `/internal/v1/replicate` at this address.
    Http { client: PeerClient, addr: String },
    /// A node of this process: apply in memory while it serves.
    Local(Weak<Node>),
}

impl Target {
    /// Deliver `batch`: Ok when the peer holds every entry of it.
    async fn deliver(&self, batch: &[Job]) -> Result<(), String> {
        let held = match self {
            Target::Http { client, addr } => {
                let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
                match client
                    .call_encoded(addr, REPLICATE_PATH, body, BATCH_TIMEOUT)
                    .await
                {
                    Ok(Message::Ack(n)) => n,
                    Ok(m) => return Err(format!("unexpected reply {m:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Target::Local(peer) => {
                let peer = peer
                    .upgrade()
                    .filter(|p| p.accepts_replication())
                    .ok_or("peer in this process is not serving")?;
                peer.metrics.replication_received_memory.inc();
                peer.apply_batch(batch.iter().map(|j| j.entry.as_ref()))
            }
        };
        if held as usize == batch.len() {
            Ok(())
        } else {
            Err(format!("peer holds {held} of {} entries", batch.len()))
        }
    }
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

    /// Start replicating to a peer (replacing any link of the same id): in memory when it
    /// is a node of this node's own cluster serving in this process, else over HTTP at
    /// `addr`. (Only tests run several clusters in one process; between them, as between
    /// processes, batches go over HTTP.)
    pub fn add_peer(&self, id: &str, addr: String) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let other_domain = crate::ids::failure_domain(id) != self.domain;
        let local = if other_domain {
            None
        } else {
            crate::local::lookup(id)
        };
        let target = match local {
            Some(node) => Target::Local(node),
            None => Target::Http {
                client: self.client.clone(),
                addr: addr.clone(),
            },
        };
        let task = sender_task(target, addr.clone(), rx, other_domain, self.metrics.clone());
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

    /// True when writes have somewhere to go.
    pub fn has_peers(&self) -> bool {
        !lock(&self.links).is_empty()
    }

    /// Queue `entry` for every peer, each with a token of `acks` when given (a peer that
    /// stores the write acknowledges with it).
    pub fn broadcast(&self, entry: Arc<Entry>, acks: Option<&Acks>) -> Fanout {
        let links = lock(&self.links);
        let mut fanout = Fanout {
            peers: links.len(),
            queued: 0,
            other_domain: false,
        };
        for (id, link) in links.iter() {
            fanout.other_domain |= link.other_domain;
            let job = Job {
                entry: entry.clone(),
                ack: acks.map(Acks::token),
            };
            match link.tx.try_send(job) {
                Ok(()) => fanout.queued += 1,
                Err(_) => {
                    self.metrics.replication_dropped.inc();
                    tracing::debug!(peer = %id, addr = %link.addr, "replication queue full, write left to catch-up");
                }
            }
        }
        fanout
    }
}

/// What [`Replicator::broadcast`] did with a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Peers replicated to (live links).
    pub peers: usize,
    /// Peers whose queue took the write.
    pub queued: usize,
    /// True when some peer lives in another failure domain (process).
    pub other_domain: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sender_task(
    target: Target,
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
        let started = Instant::now();
        match target.deliver(&batch).await {
            Ok(()) => {
                metrics.replication_batches.inc();
                metrics.replication_entries.inc_by(batch.len() as u64);
                metrics
                    .replication_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                for job in batch.drain(..) {
                    if let Some(ack) = job.ack {
                        ack.ack(other_domain);
                    }
                }
            }
            Err(why) => {
                metrics.replication_failures.inc();
                tracing::debug!(peer = %addr, entries = batch.len(), error = %why, "replication batch failed");
                batch.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::node::{Node, Tuning};
    use bytes::Bytes;
    use tokio::sync::watch;

    /// An address where nothing listens: any HTTP batch sent there fails.
    fn closed_addr() -> String {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        format!("127.0.0.1:{port}")
    }

    /// Two nodes of one process (not serving HTTP); `a` replicates to `b`.
    fn pair(stop: &watch::Receiver<bool>) -> (Arc<Node>, Arc<Node>) {
        let config = Arc::new(Config::for_test());
        let tag = crate::ids::new_process_tag();
        let node = |index| {
            Node::new(
                crate::ids::node_id(index, &tag, 0),
                index,
                0,
                config.clone(),
                Tuning::default(),
                stop.clone(),
            )
        };
        (node(1), node(2))
    }

    /// A write on `a` gets no acknowledgement from its only peer `b`, which lacks it.
    async fn write_is_not_acknowledged(a: &Node, b: &Node) {
        let out = a
            .put("k1".into(), Bytes::from_static(b"v"), 60)
            .await
            .unwrap();
        assert_eq!(out.acks, 1, "no acknowledgement from the peer");
        assert!(b.store.get("k1").is_none());
        assert_eq!(a.metrics.replication_failures.get(), 1);
    }

    #[tokio::test]
    async fn a_peer_of_this_process_gets_writes_in_memory_without_http() {
        let (_stop_tx, stop) = watch::channel(false);
        let (a, b) = pair(&stop);
        let _serving = crate::local::register(&b);
        // Nothing listens at the address: only the in-memory path can deliver.
        a.replicator.add_peer(&b.id, closed_addr());
        let value = Bytes::from_static(b"shared value");
        let out = a.put("k1".into(), value.clone(), 60).await.unwrap();
        assert_eq!((out.acks, out.quorum), (2, 2), "b acknowledged");
        let held = b.store.get("k1").expect("b holds the write");
        assert_eq!(held.value, value);
        assert_eq!(
            held.value.as_ptr(),
            value.as_ptr(),
            "the value is shared, not copied"
        );
        assert_eq!(b.metrics.replication_received_memory.get(), 1);
        assert_eq!(b.metrics.replication_received_http.get(), 0);
        assert_eq!(b.metrics.entries_applied.get(), 1);
        assert_eq!(a.metrics.replication_entries.get(), 1);
        assert_eq!(a.metrics.replication_failures.get(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_stopped_serving_does_not_acknowledge() {
        let (_stop_tx, stop) = watch::channel(false);
        let (a, b) = pair(&stop);
        let serving = crate::local::register(&b);
        a.replicator.add_peer(&b.id, closed_addr());
        drop(serving);
        assert!(crate::local::lookup(&b.id).is_none(), "unregistered");
        write_is_not_acknowledged(&a, &b).await;
        assert_eq!(b.metrics.replication_received_memory.get(), 0);
    }

    #[tokio::test]
    async fn a_peer_that_is_shutting_down_does_not_acknowledge() {
        let (stop_tx, stop) = watch::channel(false);
        let (a, b) = pair(&stop);
        let _serving = crate::local::register(&b);
        a.replicator.add_peer(&b.id, closed_addr());
        stop_tx.send(true).unwrap();
        write_is_not_acknowledged(&a, &b).await;
    }

    #[tokio::test]
    async fn a_node_of_another_cluster_in_this_process_is_sent_http() {
        let (_stop_tx, stop) = watch::channel(false);
        let (a, _) = pair(&stop);
        let (b, _) = pair(&stop);
        assert_ne!(
            crate::ids::failure_domain(&a.id),
            crate::ids::failure_domain(&b.id)
        );
        let _serving = crate::local::register(&b);
        a.replicator.add_peer(&b.id, closed_addr());
        write_is_not_acknowledged(&a, &b).await;
    }

    #[tokio::test]
    async fn a_peer_not_serving_in_this_process_is_sent_http() {
        let (_stop_tx, stop) = watch::channel(false);
        let (a, b) = pair(&stop);
        // Not registered: the batch goes over HTTP, to an address where nothing listens.
        a.replicator.add_peer(&b.id, closed_addr());
        let _serving = crate::local::register(&b);
        write_is_not_acknowledged(&a, &b).await;
    }

    /// Hand out `sent.len()` tokens plus `silent` more, acknowledge with the first ones
    /// (true: from another domain), drop all, and wait for `needed`.
    async fn acks(sent: &[bool], needed: usize, other: bool) -> usize {
        let acks = Acks::new();
        let tokens: Vec<_> = sent.iter().map(|s| (acks.token(), *s)).collect();
        let silent = acks.token();
        let wait = acks.wait(needed, other, Instant::now() + Duration::from_secs(1));
        tokio::pin!(wait);
        // Nothing yet, one peer may still answer: the wait goes on.
        assert!(futures::poll!(wait.as_mut()).is_pending());
        for (token, remote) in tokens {
            token.ack(remote);
        }
        drop(silent);
        wait.await
    }

    #[tokio::test]
    async fn quorum_counts_acks_and_stops_when_every_peer_is_done() {
        assert_eq!(acks(&[false], 1, false).await, 1);
        assert_eq!(acks(&[false, false, false], 2, false).await, 3);
        assert_eq!(acks(&[], 1, false).await, 0);
        assert_eq!(acks(&[false], 2, false).await, 1);
    }

    #[tokio::test]
    async fn a_quorum_inside_one_process_is_not_enough_when_others_are_alive() {
        // Two local acks but none from another process: reported as short of quorum.
        assert_eq!(acks(&[false, false], 1, true).await, 0);
        assert_eq!(acks(&[false, false, true], 1, true).await, 3);
        assert_eq!(acks(&[true], 1, true).await, 1);
    }

    #[tokio::test]
    async fn the_wait_ends_at_the_quorum_while_other_peers_are_still_pending() {
        let acks = Acks::new();
        let (a, _b, _c) = (acks.token(), acks.token(), acks.token());
        let acker = tokio::spawn(async move { a.ack(false) });
        let got = tokio::time::timeout(
            Duration::from_secs(5),
            acks.wait(1, false, Instant::now() + Duration::from_secs(5)),
        )
        .await
        .expect("returns at the quorum, not at the deadline");
        assert_eq!(got, 1);
        acker.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_the_wait() {
        let acks = Acks::new();
        let token = acks.token();
        let got = acks
            .wait(1, false, Instant::now() + Duration::from_millis(50))
            .await;
        assert_eq!(got, 0);
        drop(token);
    }
}
