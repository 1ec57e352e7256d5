//! Periodic anti-entropy: pull from a random peer what this node lacks.

use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info};

use crate::antientropy::{self, FETCH_CHUNK};
use crate::store::Applied;
use crate::transport::{CallError, SYNC_PATH};
use crate::wire::Message;

use super::Node;

impl Node {
    /// One anti-entropy pull (as [`Node::sync_with`], one page at a time) over any transport: `call` carries a sync message to the peer
    /// and returns its answer (tests hand it to a peer in memory).
    pub async fn sync_via<F, Fut>(&self, settle: bool, mut call: F) -> Result<usize, CallError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        let digest = Message::Digest(self.store.digest());
        let versions = match call(digest).await? {
            Message::Versions(v) => v,
            other => {
                return Err(CallError::Http(format!(
                    "unexpected reply {}",
                    other.kind()
                )))
            }
        };
        let now = self.wall_ms();
        let wanted: Vec<String> =
            antientropy::worth_fetching(&versions, |k| self.store.version(k), now, settle)
                .into_iter()
                .map(String::from)
                .collect();
        let mut repaired = 0;
        for chunk in wanted.chunks(FETCH_CHUNK) {
            match call(Message::Fetch(chunk.to_vec())).await? {
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
