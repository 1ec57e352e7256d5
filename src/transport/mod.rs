//! Node-to-node calls: one wire [`Message`] sent to a peer's `/internal/` route, one
//! message back, through a [`Transport`]: in production in memory to the nodes of this
//! process and over HTTP ([`http`]) to the others ([`local_first`]); in tests that run on
//! paused time, in memory ([`memory`]).

pub mod http;
pub mod local_first;
pub mod memory;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::StatusCode;

use crate::wire::{Message, WireError};

pub use self::http::HttpTransport;
pub use local_first::LocalFirst;
pub use memory::MemoryTransport;

/// Route of membership exchanges.
pub const GOSSIP_PATH: &str = "/internal/v1/gossip";
/// Route of replication batches.
pub const REPLICATE_PATH: &str = "/internal/v1/replicate";
/// Route of catch-up pages.
pub const SYNC_PATH: &str = "/internal/v1/sync";
/// Content type of wire messages.
pub const CONTENT_TYPE: &str = "application/x-repram-wire";
/// Response header of every `/internal/` answer: the answering node's wall clock, ms
/// since the Unix epoch. Probes read it to measure each peer's clock skew (see
/// [`crate::skew`]); an extra header, so nodes without it interoperate.
pub const CLOCK_HEADER: &str = "x-repram-clock-ms";
/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the deadline.
    #[error("timed out")]
    Timeout,
    /// The connection was refused: nothing listens at that address.
    #[error("connection refused")]
    Refused,
    /// Connecting or talking HTTP failed.
    #[error("http: {0}")]
    Http(String),
    /// The peer answered with a non-200 status.
    #[error("peer answered {0}")]
    Status(StatusCode),
    /// The reply is not a valid message.
    #[error("bad reply: {0}")]
    Wire(#[from] WireError),
}

/// How node messages reach a peer.
pub trait Transport: Send + Sync + 'static {
    /// Send an encoded message for `path` to the node at `addr` (`to`: its id when known,
    /// which a signed message names) and decode its answer, within `timeout`; with the
    /// peer's clock ([`CLOCK_HEADER`]) when its answer carried one, also on an error.
    fn call_clocked<'a>(
        &'a self,
        addr: &'a str,
        to: Option<&'a str>,
        path: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, (Result<Message, CallError>, Option<u64>)>;

    /// GET `path` of a peer's public API within `timeout`: the status (any) and a body
    /// of at most `max_bytes` (a longer one is an error); refused and timed out as a call.
    fn get<'a>(
        &'a self,
        addr: &'a str,
        path: &'a str,
        max_bytes: usize,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(StatusCode, Bytes), CallError>>;
}

/// A node's handle on its transport. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient(Arc<dyn Transport>);

impl Default for PeerClient {
    fn default() -> Self {
        Self::new(None)
    }
}

impl PeerClient {
    /// Over HTTP, with keep-alive pooling and `TCP_NODELAY`, signing its requests when a
    /// cluster secret is given.
    pub fn new(secret: Option<&str>) -> Self {
        PeerClient(Arc::new(HttpTransport::new(secret)))
    }

    /// To the nodes of this process (`local`) in memory, to the others over HTTP, signing
    /// with a clock moved by `clock_offset_ms` (the clock test hook).
    pub fn local_first(
        local: local_first::LocalNodes,
        secret: Option<&str>,
        clock_offset_ms: i64,
    ) -> Self {
        let http = HttpTransport::new(secret).with_clock_offset(clock_offset_ms);
        PeerClient(Arc::new(LocalFirst::new(local, Arc::new(http))))
    }

    /// Through `transport`.
    pub fn over(transport: Arc<dyn Transport>) -> Self {
        PeerClient(transport)
    }

    /// Send `msg` to the node at `addr` for `path` and decode the reply, all within
    /// `timeout`. `to` is the id of the node expected there, when known: a signed message
    /// names it (see [`crate::auth`]), and only gossip may go to an address whose node is
    /// unknown.
    pub async fn call(
        &self,
        addr: &str,
        to: Option<&str>,
        path: &str,
        msg: &Message,
        timeout: Duration,
    ) -> Result<Message, CallError> {
        self.call_encoded(addr, to, path, msg.encode(), timeout)
            .await
    }

    /// Like [`PeerClient::call`] with an already encoded message.
    pub async fn call_encoded(
        &self,
        addr: &str,
        to: Option<&str>,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Message, CallError> {
        self.0.call_clocked(addr, to, path, body, timeout).await.0
    }

    /// Like [`PeerClient::call_encoded`], with the peer's clock when its answer carried one.
    pub async fn call_clocked(
        &self,
        addr: &str,
        to: Option<&str>,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> (Result<Message, CallError>, Option<u64>) {
        self.0.call_clocked(addr, to, path, body, timeout).await
    }

    /// GET `path` of a peer's public API and parse its JSON answer (any status).
    pub async fn get_json(
        &self,
        addr: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(StatusCode, serde_json::Value), CallError> {
        let (status, body) = self.get(addr, path, 64 << 10, timeout).await?;
        let doc = serde_json::from_slice(&body).map_err(|e| CallError::Http(e.to_string()))?;
        Ok((status, doc))
    }

    /// GET `path` of a peer's public API: the status and a body of at most `max_bytes`.
    pub async fn get(
        &self,
        addr: &str,
        path: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        self.0.get(addr, path, max_bytes, timeout).await
    }
}
