//! Where a sender task delivers its batches, and which peers then hold them.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::job::Job;
use super::relays::Relays;
use super::siblings::Siblings;
use super::{hand_over, lock, BATCH_TIMEOUT};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::transport::{PeerClient, REPLICATE_PATH};
use crate::wire::{self, Message};

/// Which of a batch's peers hold it.
pub(super) enum Held {
    /// Every peer the batch was sent for.
    All,
    /// The nodes with these ids.
    Nodes(HashSet<String>),
}

impl Held {
    pub(super) fn nobody(&self) -> bool {
        matches!(self, Held::Nodes(ids) if ids.is_empty())
    }
}

/// Where a sender task delivers its batches.
pub(super) enum Target {
    /// POST to the peer's `/internal/v1/replicate` at this address.
    Http {
        client: PeerClient,
        addr: String,
        /// The peer's node id, which signed batches name.
        id: String,
    },
    /// The nodes of this process: apply in memory on each that serves.
    Siblings {
        nodes: Arc<Mutex<Arc<Siblings>>>,
        metrics: Arc<Metrics>,
        /// The writer's store (see [`SiblingLink::store`](super::siblings::SiblingLink::store)).
        held_in: Store,
    },
    /// Another process: POST a relay request to one of its nodes.
    Process(Relays),
}

impl Target {
    /// Deliver `batch`: which of its peers hold every entry of it now.
    pub(super) async fn deliver(&mut self, batch: &[Job]) -> Result<Held, String> {
        let held = match self {
            Target::Http { client, addr, id } => {
                let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
                match client
                    .call_encoded(addr, Some(id), REPLICATE_PATH, body, BATCH_TIMEOUT)
                    .await
                {
                    Ok(Message::Ack(n)) => n,
                    Ok(m) => return Err(format!("unexpected reply {m:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Target::Siblings {
                nodes,
                metrics,
                held_in,
            } => {
                let nodes = lock(nodes).clone();
                let mut holders = HashSet::with_capacity(nodes.nodes.len());
                let each = nodes.nodes.iter().map(|(id, n)| (id.as_str(), n.upgrade()));
                let entries = || batch.iter().map(|j| j.entry.as_ref());
                hand_over(each, batch.len(), entries, Some(held_in), |id, whole| {
                    if whole {
                        holders.insert(id.to_string());
                    } else {
                        metrics.replication_failures.inc();
                        tracing::debug!(peer = %id, entries = batch.len(), "peer in this process did not take the batch (not serving)");
                    }
                });
                // Those that did not take it were counted above, one by one.
                return Ok(Held::Nodes(holders));
            }
            Target::Process(relays) => return relays.deliver(batch).await,
        };
        if held as usize == batch.len() {
            Ok(Held::All)
        } else {
            Err(format!("peer holds {held} of {} entries", batch.len()))
        }
    }
}
