//! The HTTP transport: node messages POSTed to a peer's `/internal/` route over pooled
//! keep-alive connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::{CallError, Transport, CLOCK_HEADER, CONTENT_TYPE};
use crate::auth;
use crate::clock::now_ms;
use crate::wire::Message;

/// Largest reply accepted from a peer.
const MAX_REPLY_BYTES: usize = 256 << 20;

/// A pooled HTTP/1.1 client for node-to-node messages. Cheap to clone.
#[derive(Clone)]
pub struct HttpTransport {
    http: Client<HttpConnector, Full<Bytes>>,
    /// The cluster secret: when set, every request is signed with it.
    secret: Option<Arc<[u8]>>,
    /// Added to the wall clock of signatures (the clock test hook, see
    /// `Tuning::clock_offset_ms`): a host with a wrong clock signs with it.
    clock_offset_ms: i64,
}

impl Default for HttpTransport {
    fn default() -> Self {
        Self::new(None)
    }
}

impl HttpTransport {
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
        HttpTransport {
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

    /// GET `http://{addr}{path}` of a peer's public API, within `timeout`: the status and
    /// a body of at most `max_bytes` (a longer one is an error). Refused like a call.
    async fn get(
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
            let resp = self.http.request(req).await.map_err(request_error)?;
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

    /// POST an encoded message to `http://{addr}{path}` and decode the reply, all within
    /// `timeout` (see [`PeerClient::call`]), with the peer's clock ([`CLOCK_HEADER`]) when
    /// its answer carried one, also when the answer is an error status.
    async fn call_clocked(
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
        let resp = self.http.request(req).await.map_err(request_error)?;
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

impl Transport for HttpTransport {
    fn call_clocked<'a>(
        &'a self,
        addr: &'a str,
        to: Option<&'a str>,
        path: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, (Result<Message, CallError>, Option<u64>)> {
        Box::pin(HttpTransport::call_clocked(
            self, addr, to, path, body, timeout,
        ))
    }

    fn get<'a>(
        &'a self,
        addr: &'a str,
        path: &'a str,
        max_bytes: usize,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(StatusCode, Bytes), CallError>> {
        Box::pin(HttpTransport::get(self, addr, path, max_bytes, timeout))
    }
}

/// A failed request as a [`CallError`]: [`CallError::Refused`] when nothing listens.
fn request_error(err: hyper_util::client::legacy::Error) -> CallError {
    if is_refused(&err) {
        CallError::Refused
    } else {
        CallError::Http(err.to_string())
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
    use crate::transport::{PeerClient, GOSSIP_PATH};

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
