//! Node-to-node calls: one wire [`Message`] POSTed to a peer's `/internal/` route, one
//! message back. Connections are pooled and kept alive per peer.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use std::sync::Arc;

use crate::auth;
use crate::clock::now_ms;
use crate::wire::{Message, WireError};

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
/// Largest reply accepted from a peer.
const MAX_REPLY_BYTES: usize = 256 << 20;

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

/// A pooled HTTP/1.1 client for node-to-node messages. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    http: Client<HttpConnector, Full<Bytes>>,
    /// The cluster secret: when set, every request is signed with it.
    secret: Option<Arc<[u8]>>,
    /// Added to the wall clock of signatures (the clock test hook, see
    /// `Tuning::clock_offset_ms`): a host with a wrong clock signs with it.
    clock_offset_ms: i64,
}

impl Default for PeerClient {
    fn default() -> Self {
        Self::new(None)
    }
}

impl PeerClient {
    /// A client with keep-alive pooling and `TCP_NODELAY`, signing its requests when a
    /// cluster secret is given.
    pub fn new(secret: Option<&str>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(15))
            .pool_max_idle_per_host(2)
            .build(connector);
        PeerClient {
            http,
            secret: secret.map(|s| Arc::from(s.as_bytes())),
            clock_offset_ms: 0,
        }
    }

    /// This client with its signatures' clock moved by `ms` (a test hook).
    pub fn with_clock_offset(mut self, ms: i64) -> Self {
        self.clock_offset_ms = ms;
        self
    }

    /// POST `msg` to `http://{addr}{path}` and decode the reply, all within `timeout`.
    /// `to` is the id of the node expected there, when known: a signed message names it
    /// (see [`crate::auth`]), and only gossip may go to an address whose node is unknown.
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
        self.call_clocked(addr, to, path, body, timeout).await.0
    }

    /// GET `http://{addr}{path}` of a peer's public API and parse its JSON answer (any
    /// status), within `timeout`: the status and the document.
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

    /// GET `http://{addr}{path}` of a peer's public API, within `timeout`: the status and
    /// a body of at most `max_bytes` (a longer one is an error).
    pub async fn get(
        &self,
        addr: &str,
        path: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let get = async {
            let req = Request::get(format!("http://{addr}{path}"))
                .body(Full::new(Bytes::new()))
                .map_err(|e| CallError::Http(e.to_string()))?;
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| CallError::Http(e.to_string()))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| CallError::Http(e.to_string()))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, get)
            .await
            .map_err(|_| CallError::Timeout)?
    }

    /// Like [`PeerClient::call_encoded`], with the peer's clock ([`CLOCK_HEADER`]) when
    /// its answer carried one, also when the answer is an error status.
    pub async fn call_clocked(
        &self,
        addr: &str,
        to: Option<&str>,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> (Result<Message, CallError>, Option<u64>) {
        let mut clock = None;
        let result =
            tokio::time::timeout(timeout, self.call_inner(addr, to, path, body, &mut clock))
                .await
                .unwrap_or(Err(CallError::Timeout));
        (result, clock)
    }

    async fn call_inner(
        &self,
        addr: &str,
        to: Option<&str>,
        path: &str,
        body: Bytes,
        clock: &mut Option<u64>,
    ) -> Result<Message, CallError> {
        let mut req = Request::post(format!("http://{addr}{path}"))
            .header(header::CONTENT_TYPE, CONTENT_TYPE);
        if let Some(secret) = &self.secret {
            let receiver = to.unwrap_or(auth::ANY_RECEIVER);
            let signed_at = crate::clock::offset_ms(now_ms(), self.clock_offset_ms);
            let sig = auth::sign(secret, "POST", path, receiver, signed_at, &body);
            req = req
                .header(auth::TIMESTAMP_HEADER, sig.timestamp_ms)
                .header(auth::NONCE_HEADER, sig.nonce)
                .header(auth::SIGNATURE_HEADER, sig.signature)
                .header(auth::RECEIVER_HEADER, sig.receiver);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| CallError::Http(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| {
            if is_refused(&e) {
                CallError::Refused
            } else {
                CallError::Http(e.to_string())
            }
        })?;
        let status = resp.status();
        *clock = resp
            .headers()
            .get(CLOCK_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = Limited::new(resp.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| CallError::Http(e.to_string()))?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(CallError::Status(status));
        }
        Ok(Message::decode(body)?)
    }
}

/// True when `err` or one of its sources is a refused connection.
fn is_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_port_is_reported_as_refused() {
        // Bind then drop: nothing listens on that port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let client = PeerClient::new(None);
        let err = client
            .call(
                &format!("127.0.0.1:{port}"),
                None,
                GOSSIP_PATH,
                &Message::Ack(0),
                Duration::from_secs(2),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Refused), "{err:?}");
    }
}
