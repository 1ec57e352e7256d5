//! A forging client: builds node-to-node messages with the library's own `wire` types and
//! POSTs them to `/internal/v1/…` on 127.0.0.1, as a buggy or compromised cluster member
//! (or one with a wrong clock) could. Loopback is a cluster host, so these are accepted
//! as node traffic: what they may change is decided by membership and the store.
//!
//! [`FakeNode`] is a listener that answers membership probes under an id of its own (so
//! it can really become a member) and can be told to fall silent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use repram_flux::clock::{now_ms, Version};
use repram_flux::wire::{Entry, Gossip, MemberState, Message, NodeInfo, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::request;

/// POST `msg` to `path` on 127.0.0.1:`port`: the status and the decoded answer (when the
/// answer is a message).
pub async fn post(port: u16, path: &str, msg: &Message) -> Option<(u16, Option<Message>)> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let reply = request(
        Method::POST,
        &url,
        msg.encode(),
        &[("content-type", "application/x-repram-wire")],
    )
    .await?;
    Some((reply.status, Message::decode(reply.body).ok()))
}

/// Send a gossip message to the node on `port`; its answer.
pub async fn gossip(port: u16, g: Gossip) -> Option<Gossip> {
    match post(port, "/internal/v1/gossip", &Message::Gossip(g)).await? {
        (200, Some(Message::Gossip(reply))) => Some(reply),
        _ => None,
    }
}

/// Send a replication batch to the node on `port`; how many entries it acknowledged.
pub async fn replicate(port: u16, entries: Vec<Entry>) -> Option<u32> {
    match post(port, "/internal/v1/replicate", &Message::Replicate(entries)).await? {
        (200, Some(Message::Ack(n))) => Some(n),
        _ => None,
    }
}

/// A node at 127.0.0.1:`port`.
pub fn node(id: &str, port: u16) -> NodeInfo {
    NodeInfo {
        id: id.to_string(),
        host: "127.0.0.1".into(),
        port,
    }
}

/// A gossip message from `from` (which need not exist) carrying `updates`.
pub fn message(from: NodeInfo, updates: Vec<Update>) -> Gossip {
    Gossip {
        from,
        updates,
        ..Gossip::default()
    }
}

/// News that `node` is in `state` at `incarnation`.
pub fn news(node: NodeInfo, incarnation: u64, state: MemberState) -> Update {
    Update {
        node,
        incarnation,
        state,
    }
}

/// The id of a node of a made-up process (its own failure domain).
pub fn fake_id(i: usize) -> String {
    format!("flux-node-{}-fake{i:04}", i % 10 + 1)
}

/// A write of `key` = `value` made at `created_ms` with a TTL of `ttl_ms`, versioned at
/// `created_ms` by the writer `origin`.
pub fn entry(key: &str, value: &'static [u8], created_ms: u64, ttl_ms: u64, origin: u64) -> Entry {
    Entry {
        key: key.to_string(),
        value: Bytes::from_static(value),
        created_ms,
        expires_ms: created_ms + ttl_ms,
        version: Version {
            hlc: created_ms << 16,
            origin,
        },
    }
}

/// Wall-clock ms now plus `ahead_ms`.
pub fn now_plus(ahead_ms: u64) -> u64 {
    now_ms() + ahead_ms
}

/// A listener on 127.0.0.1 that answers gossip under `id` (and acknowledges replication
/// batches) until [`FakeNode::fall_silent`]: from then on it accepts connections and
/// reads requests but never answers, as a member that hangs. Stops with the test.
pub struct FakeNode {
    pub info: NodeInfo,
    silent: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeNode {
    pub async fn start(id: &str) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let info = node(id, port);
        let silent = Arc::new(AtomicBool::new(false));
        let (me, quiet) = (info.clone(), silent.clone());
        let task = tokio::spawn(async move {
            // Bounded: the test ends long before this many connections.
            for _ in 0..10_000 {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, me.clone(), quiet.clone()));
            }
        });
        FakeNode { info, silent, task }
    }

    pub fn fall_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve one connection: HTTP/1.1 requests with a Content-Length body, one after another.
async fn serve(mut stream: TcpStream, me: NodeInfo, silent: Arc<AtomicBool>) {
    let mut buf = Vec::new();
    for _ in 0..100_000 {
        let Some(body) = read_request(&mut stream, &mut buf).await else {
            return;
        };
        if silent.load(Ordering::SeqCst) {
            // Hang: keep the connection open, answer nothing.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        let answer = match Message::decode(Bytes::from(body)) {
            Ok(Message::Gossip(g)) => Message::Gossip(Gossip {
                from: me.clone(),
                full: g.full,
                ..Gossip::default()
            }),
            Ok(Message::Replicate(es)) => Message::Ack(es.len() as u32),
            _ => Message::Ack(0),
        }
        .encode();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/x-repram-wire\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&answer).await.is_err()
        {
            return;
        }
    }
}

/// Read one request (headers, then a body of Content-Length bytes); `None` at EOF.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < end + len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[end..end + len].to_vec();
    buf.drain(..end + len);
    Some(body)
}
