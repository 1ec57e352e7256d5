//! Periodic anti-entropy: pull from a random peer what this node lacks.

use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::{debug, info};

use crate::antientropy::{self, FETCH_CHUNK};
use crate::store::Applied;
use crate::transport::{CallError, SYNC_PATH};
use crate::wire::Message;

use super::Node;

/// How a pull runs (see [`Node::pull_via`]).
pub(super) struct Pull<'a> {
    /// Leave out writes younger than [`antientropy::SETTLE_MS`] (periodic rounds).
    pub settle: bool,
    /// Nodes of this process still catching up that take each page too.
    pub share: &'a [Arc<Node>],
    /// Skip what the store refused for want of room (catch-up).
    pub skip_refused: bool,
    /// Pages fetched at once.
    pub parallel: usize,
}

impl Node {
    /// One anti-entropy pull through `call`, which carries a sync message to the peer and
    /// returns its answer (tests hand it to a peer in memory): one page at a time, as
    /// the periodic rounds do. How many entries changed here.
    pub async fn sync_via<F, Fut>(&self, settle: bool, call: F) -> Result<usize, CallError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        let how = Pull {
            settle,
            share: &[],
            skip_refused: false,
            parallel: 1,
        };
        self.pull_via(how, call).await
    }

    /// The one pull of anti-entropy and catch-up: ask the peer (through `call`) for the
    /// versions it holds against our digest, fetch in pages what is worth fetching
    /// ([`antientropy::worth_fetching`]), and apply each page here and to the nodes of
    /// `how.share` still catching up. How many entries changed here.
    pub(super) async fn pull_via<F, Fut>(
        &self,
        how: Pull<'_>,
        mut call: F,
    ) -> Result<usize, CallError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        let unexpected = |m: Message| CallError::Http(format!("unexpected reply {}", m.kind()));
        let mut versions = match call(Message::Digest(self.store.digest())).await? {
            Message::Versions(v) => v,
            other => return Err(unexpected(other)),
        };
        if how.skip_refused {
            // Not again what the store refused for want of room, while it has no more.
            let mut refused = self
                .refused_for_room
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            refused.forget_if_room(self.store.bytes());
            versions.retain(|(k, v)| !refused.skips(k, *v));
        }
        let now = self.wall_ms();
        let fetches: Vec<Message> =
            antientropy::worth_fetching(&versions, |k| self.store.version(k), now, how.settle)
                .chunks(FETCH_CHUNK)
                .map(|chunk| Message::Fetch(chunk.iter().map(|k| k.to_string()).collect()))
                .collect();
        drop(versions);
        let mut pages = futures::stream::iter(fetches)
            .map(&mut call)
            .buffer_unordered(how.parallel.max(1));
        let mut repaired = 0;
        while let Some(reply) = pages.next().await {
            let entries = match reply? {
                Message::Replicate(entries) => entries,
                other => return Err(unexpected(other)),
            };
            for e in &entries {
                if matches!(
                    self.apply_remote(e),
                    Some(Applied::Inserted | Applied::Replaced)
                ) {
                    repaired += 1;
                }
            }
            for sibling in how.share {
                if !sibling.catchup.is_done() {
                    sibling.apply_batch(&entries);
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

    /// One periodic anti-entropy round, paced by `pacer`: `None` when the pacer skips
    /// it, otherwise the settled pull of [`Node::sync_via`] through `call`.
    pub async fn anti_entropy_round<F, Fut>(
        &self,
        pacer: &mut antientropy::Pacer,
        call: F,
    ) -> Option<Result<usize, CallError>>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        if !pacer.round_due(self.store.digest()) {
            return None;
        }
        Some(self.sync_via(true, call).await)
    }

    /// Anti-entropy rounds against a random live peer, forever (until shutdown).
    pub(super) async fn anti_entropy_loop(self: Arc<Self>) {
        const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
        let mut shutdown = self.shutdown.clone();
        let mut pacer = antientropy::Pacer::default();
        loop {
            let jitter = rand::thread_rng()
                .gen_range(0..=self.tuning.anti_entropy_interval.as_millis() as u64 / 4);
            tokio::select! {
                _ = tokio::time::sleep(self.tuning.anti_entropy_interval + Duration::from_millis(jitter)) => {}
                _ = shutdown.changed() => return,
            }
            let peer = {
                let m = self.membership();
                let peers: Vec<_> = m
                    .peers()
                    .filter(|p| !p.suspect)
                    .map(|p| (p.info.id.clone(), p.addr()))
                    .collect();
                if peers.is_empty() {
                    continue;
                }
                peers[rand::thread_rng().gen_range(0..peers.len())].clone()
            };
            // Signed sync requests name the member they are meant for.
            let (id, peer) = peer;
            let client = &self.client;
            let call = |msg: Message| {
                let (peer, id) = (&peer, &id);
                async move {
                    client
                        .call(peer, Some(id), SYNC_PATH, &msg, ROUND_TIMEOUT)
                        .await
                }
            };
            match self.anti_entropy_round(&mut pacer, call).await {
                None | Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    info!(node = %self.id, port = self.port, peer = %peer, repaired = n, "anti-entropy repaired entries")
                }
                Some(Err(e)) => {
                    debug!(node = %self.id, port = self.port, peer = %peer, error = %e, "anti-entropy round failed")
                }
            }
        }
    }
}
