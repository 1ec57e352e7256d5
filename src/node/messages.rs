//! Answers to node messages, however they arrived (the HTTP routes, or the in-memory
//! transport of tests).

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::StatusCode;

use crate::transport::memory::Handler;
use crate::transport::{GOSSIP_PATH, REPLICATE_PATH, SYNC_PATH};
use crate::wire::Message;

use super::Node;

impl Node {
    /// The answer to `msg`, sent for `path` from `source` (`addressed`: a signed message
    /// named this node as its receiver, or it came from a cluster host): the reply, or why
    /// the message does not belong there.
    pub async fn answer(
        self: &Arc<Self>,
        path: &str,
        msg: Message,
        source: IpAddr,
        addressed: bool,
    ) -> Result<Message, String> {
        Ok(match (path, msg) {
            (GOSSIP_PATH, Message::Gossip(g)) => self.on_gossip(g, source, addressed).await,
            (REPLICATE_PATH, Message::Replicate(entries)) => {
                Message::Ack(self.apply_batch(&entries))
            }
            (REPLICATE_PATH, Message::Relay(entries)) => {
                Message::Holders(self.relay_batch(&entries))
            }
            (SYNC_PATH, Message::Digest(d)) => self.versions_for(&d),
            (SYNC_PATH, Message::Fetch(keys)) => self.fetch(&keys),
            (_, other) => {
                self.metrics.rejected_messages.inc();
                return Err(format!(
                    "message kind {} does not belong on {path}",
                    other.kind()
                ));
            }
        })
    }

    /// Count `msg`, received over HTTP for `path`, as a replication batch that came
    /// `via="Http"` when it is one (the HTTP route calls this before [`Node::answer`];
    /// batches of other transports are no HTTP arrivals).
    pub fn count_http_arrival(&self, path: &str, msg: &Message) {
        if path == REPLICATE_PATH && matches!(msg, Message::Replicate(_) | Message::Relay(_)) {
            self.metrics.replication_received_http.inc();
        }
    }
}

/// Lets the in-memory transport reach a node: as a cluster host, like a loopback peer
/// over HTTP.
impl Handler for Node {
    fn handle<'a>(
        self: Arc<Self>,
        path: &'a str,
        msg: Message,
        source: IpAddr,
    ) -> BoxFuture<'a, Result<Message, StatusCode>> {
        Box::pin(async move {
            self.answer(path, msg, source, true)
                .await
                .map_err(|_| StatusCode::BAD_REQUEST)
        })
    }

    fn clock_ms(&self) -> u64 {
        self.wall_ms()
    }

    /// The same documents the HTTP routes serve (see [`Node::view`]), as the same text.
    fn get(&self, path: &str) -> Option<(StatusCode, Bytes)> {
        let (status, doc) = self.view(path)?;
        Some((status, Bytes::from(doc.to_string())))
    }
}
