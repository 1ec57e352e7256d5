//! Another process as a link: one queue for all its nodes, each batch sent to one of
//! them (the relay), tried in an order of the writer's own.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::StatusCode;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::job::Job;
use super::lock;
use super::target::Held;
use super::view::{Peer, View};
use super::BATCH_TIMEOUT;
use crate::metrics::Metrics;
use crate::transport::{CallError, PeerClient, REPLICATE_PATH};
use crate::wire::{self, Message};

/// The relay order of `writer` over the nodes `members` (id → address): by a hash of
/// both ids, so it is stable for one writer and differs between writers.
pub(super) fn relay_order(writer: &str, members: &BTreeMap<String, String>) -> View {
    let rank = |peer: &str| {
        let mut h = DefaultHasher::new();
        (writer, peer).hash(&mut h);
        h.finish()
    };
    let mut peers: Vec<Peer> = members
        .iter()
        .map(|(id, addr)| Peer {
            id: id.clone(),
            addr: addr.clone(),
        })
        .collect();
    peers.sort_by_cached_key(|p| (rank(&p.id), p.id.clone()));
    View { peers }
}

/// Another process (failure domain): one queue and sender task for all its nodes.
pub(super) struct ProcessLink {
    pub(super) tx: mpsc::Sender<Job>,
    /// Its nodes known live: id → address.
    pub(super) members: BTreeMap<String, String>,
    /// `members` in relay order, as handed to new jobs.
    pub(super) view: Arc<View>,
    /// The same, as the sender task reads it for every batch.
    pub(super) shared: Arc<Mutex<Arc<View>>>,
}

impl ProcessLink {
    pub(super) fn publish(&mut self, writer: &str) {
        self.view = Arc::new(relay_order(writer, &self.members));
        *lock(&self.shared) = self.view.clone();
    }
}

/// Deadline for one batch to another process, across all the relays tried.
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process whose node refused a relay request as unknown (an older version)
/// gets plain batches, one per node, before relaying is tried again.
const PLAIN_PERIOD: Duration = Duration::from_secs(60);

/// The nodes of another process as relays of its batches.
pub(super) struct Relays {
    client: PeerClient,
    view: Arc<Mutex<Arc<View>>>,
    /// The relay that took the last batch: tried first while it is known.
    last: Option<String>,
    /// Until when every node gets its own plain batch (see [`PLAIN_PERIOD`]).
    plain_until: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl Relays {
    /// The nodes of `view`, as the process link publishes them, with no relay tried yet.
    pub(super) fn new(
        client: PeerClient,
        view: Arc<Mutex<Arc<View>>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Relays {
            client,
            view,
            last: None,
            plain_until: None,
            metrics,
        }
    }

    /// Send `batch` to the first relay that answers naming a known node as a holder,
    /// trying the others in order within [`RELAY_TIMEOUT`].
    pub(super) async fn deliver(&mut self, batch: &[Job]) -> Result<Held, String> {
        let view = lock(&self.view).clone();
        if self.plain_until.is_some_and(|t| Instant::now() < t) {
            return self.deliver_plain(&view, batch).await;
        }
        let n = view.peers.len();
        let first = self
            .last
            .as_ref()
            .and_then(|id| view.peers.iter().position(|p| &p.id == id))
            .unwrap_or(0);
        let body = wire::encode_relay(batch.iter().map(|j| j.entry.as_ref()));
        let deadline = Instant::now() + RELAY_TIMEOUT;
        let mut errors = Vec::new();
        for (tried, peer) in view.peers.iter().cycle().skip(first).take(n).enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if tried > 0 {
                self.metrics.relay_failovers.inc();
            }
            let reply = self
                .client
                .call_encoded(
                    &peer.addr,
                    Some(&peer.id),
                    REPLICATE_PATH,
                    body.clone(),
                    left.min(BATCH_TIMEOUT),
                )
                .await;
            match reply {
                Ok(Message::Holders(ids)) => {
                    let holders: HashSet<String> = ids.into_iter().collect();
                    if view.held_by(&holders) > 0 {
                        self.last = Some(peer.id.clone());
                        return Ok(Held::Nodes(holders));
                    }
                    errors.push(format!("{}: no known node holds the batch", peer.id));
                }
                Ok(m) => errors.push(format!("{}: unexpected reply {}", peer.id, m.kind())),
                // Only a node that does not know relay requests refuses a valid one as
                // bad: it runs an older version (as during a rolling upgrade).
                Err(CallError::Status(StatusCode::BAD_REQUEST)) => {
                    tracing::info!(peer = %peer.id, "relay request refused as unknown: sending that process plain batches for a while");
                    self.plain_until = Some(Instant::now() + PLAIN_PERIOD);
                    return self.deliver_plain(&view, batch).await;
                }
                Err(e) => errors.push(format!("{}: {e}", peer.id)),
            }
        }
        Err(format!("no relay took the batch ({})", errors.join("; ")))
    }

    /// Send `batch` to every node of `view` as a plain (not relayed) batch, at once.
    async fn deliver_plain(&self, view: &View, batch: &[Job]) -> Result<Held, String> {
        let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
        let calls = view.peers.iter().map(|peer| {
            let body = body.clone();
            async move {
                let reply = self
                    .client
                    .call_encoded(
                        &peer.addr,
                        Some(&peer.id),
                        REPLICATE_PATH,
                        body,
                        BATCH_TIMEOUT,
                    )
                    .await;
                match reply {
                    Ok(Message::Ack(n)) if n as usize == batch.len() => Some(peer.id.clone()),
                    _ => None,
                }
            }
        });
        let holders: HashSet<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        if holders.is_empty() {
            Err("no node took the plain batch".into())
        } else {
            Ok(Held::Nodes(holders))
        }
    }
}
