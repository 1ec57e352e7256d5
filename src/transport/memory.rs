//! The in-memory transport: a call goes straight to the receiving node's handler, through
//! the wire encoding both ways, with no socket. Links can refuse, delay or hang calls, so
//! tests on paused tokio time can play lost peers and slow ones.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::StatusCode;

use super::{CallError, Transport};
use crate::wire::Message;

/// A node as the in-memory transport delivers to it.
pub trait Handler: Send + Sync {
    /// Answer `msg`, sent for `path` from `source`: the reply, or the status of a refusal.
    fn handle<'a>(
        self: Arc<Self>,
        path: &'a str,
        msg: Message,
        source: IpAddr,
    ) -> BoxFuture<'a, Result<Message, StatusCode>>;

    /// Its wall clock, ms since the Unix epoch (what an HTTP answer's clock header says).
    fn clock_ms(&self) -> u64;
}

/// What happens to calls to one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Refused at once, as by a port where nothing listens.
    Refuse,
    /// Answered after this long (the caller's timeout still applies).
    Delay(Duration),
    /// Taken but never answered: the caller's timeout ends it.
    Hang,
    /// Taken, then dropped without an answer, as by a peer that closes the connection.
    Break,
    /// Answered with this status and no message, as by a gate that turns the caller away.
    Answer(StatusCode),
}

#[derive(Default)]
struct Links {
    nodes: HashMap<String, Weak<dyn Handler>>,
    faults: HashMap<String, Fault>,
}

/// Nodes by address, reached in memory. Holds them weakly: a node holding the transport
/// never keeps itself alive.
#[derive(Default)]
pub struct MemoryTransport {
    links: Mutex<Links>,
    /// Calls made, by address.
    calls: Mutex<HashMap<String, u64>>,
}

impl MemoryTransport {
    /// No nodes yet.
    pub fn new() -> Arc<MemoryTransport> {
        Arc::new(MemoryTransport::default())
    }

    fn links(&self) -> MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Deliver calls to `addr` to `node` (replacing whoever was there).
    pub fn add(&self, addr: &str, node: Weak<dyn Handler>) {
        self.links().nodes.insert(addr.to_string(), node);
    }

    /// Nobody is at `addr` any more: calls there are refused.
    pub fn remove(&self, addr: &str) {
        self.links().nodes.remove(addr);
    }

    /// Calls to `addr` meet `fault` from now on (`None`: delivered normally again).
    pub fn set_fault(&self, addr: &str, fault: Option<Fault>) {
        let mut links = self.links();
        match fault {
            Some(f) => links.faults.insert(addr.to_string(), f),
            None => links.faults.remove(addr),
        };
    }

    /// How many calls went to `addr` (whatever became of them).
    pub fn calls_to(&self, addr: &str) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(addr).copied().unwrap_or(0)
    }

    async fn deliver(
        &self,
        addr: &str,
        path: &str,
        body: Bytes,
    ) -> (Result<Message, CallError>, Option<u64>) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(addr.to_string())
            .or_default() += 1;
        let (node, fault) = {
            let links = self.links();
            (
                links.nodes.get(addr).and_then(Weak::upgrade),
                links.faults.get(addr).copied(),
            )
        };
        let Some(node) = node else {
            return (Err(CallError::Refused), None);
        };
        match fault {
            Some(Fault::Refuse) => return (Err(CallError::Refused), None),
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Break) => {
                return (
                    Err(CallError::Http("connection closed before an answer".into())),
                    None,
                )
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            Some(Fault::Answer(status)) => return (Err(CallError::Status(status)), None),
            None => {}
        }
        let msg = match Message::decode(body) {
            Ok(m) => m,
            Err(_) => return (Err(CallError::Status(StatusCode::BAD_REQUEST)), None),
        };
        let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let clock = Some(node.clock_ms());
        let reply = node.handle(path, msg, source).await;
        match reply {
            // Through the encoding, as over HTTP.
            Ok(reply) => (
                Message::decode(reply.encode()).map_err(CallError::from),
                clock,
            ),
            Err(status) => (Err(CallError::Status(status)), clock),
        }
    }
}

/// A stand-in peer that answers each message as `answer` says: with a reply, or with
/// the status of a refusal (a node of an older version refuses an unknown kind with
/// 400). Its clock reads 0.
pub struct Scripted<F>(F);

impl<F> Scripted<F>
where
    F: Fn(&str, Message) -> Result<Message, StatusCode> + Send + Sync + 'static,
{
    /// A peer answering with `answer(path, message)`.
    pub fn new(answer: F) -> Arc<Scripted<F>> {
        Arc::new(Scripted(answer))
    }
}

impl<F> Handler for Scripted<F>
where
    F: Fn(&str, Message) -> Result<Message, StatusCode> + Send + Sync + 'static,
{
    fn handle<'a>(
        self: Arc<Self>,
        path: &'a str,
        msg: Message,
        _source: IpAddr,
    ) -> BoxFuture<'a, Result<Message, StatusCode>> {
        Box::pin(async move { (self.0)(path, msg) })
    }

    fn clock_ms(&self) -> u64 {
        0
    }
}

impl Transport for MemoryTransport {
    fn call_clocked<'a>(
        &'a self,
        addr: &'a str,
        _to: Option<&'a str>,
        path: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, (Result<Message, CallError>, Option<u64>)> {
        Box::pin(async move {
            tokio::time::timeout(timeout, self.deliver(addr, path, body))
                .await
                .unwrap_or((Err(CallError::Timeout), None))
        })
    }

    fn get<'a>(
        &'a self,
        _addr: &'a str,
        _path: &'a str,
        _max_bytes: usize,
        _timeout: Duration,
    ) -> BoxFuture<'a, Result<(StatusCode, Bytes), CallError>> {
        // Only node messages travel in memory; the public API is HTTP's.
        Box::pin(async { Err(CallError::Http("no public API in memory".into())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{PeerClient, GOSSIP_PATH};
    use tokio::time::Instant;

    /// Answers every message with `Ack(7)` at clock 42.
    struct Echo;

    impl Handler for Echo {
        fn handle<'a>(
            self: Arc<Self>,
            _path: &'a str,
            _msg: Message,
            _source: IpAddr,
        ) -> BoxFuture<'a, Result<Message, StatusCode>> {
            Box::pin(async { Ok(Message::Ack(7)) })
        }

        fn clock_ms(&self) -> u64 {
            42
        }
    }

    async fn call(client: &PeerClient, addr: &str) -> (Result<Message, CallError>, Option<u64>) {
        let body = Message::Ack(0).encode();
        let timeout = Duration::from_secs(2);
        client
            .call_clocked(addr, None, GOSSIP_PATH, body, timeout)
            .await
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_delivered_refused_delayed_or_hung_as_told() {
        let transport = MemoryTransport::new();
        let node: Arc<dyn Handler> = Arc::new(Echo);
        transport.add("n:1", Arc::downgrade(&node));
        let client = PeerClient::over(transport.clone());

        let (reply, clock) = call(&client, "n:1").await;
        assert!(matches!(reply, Ok(Message::Ack(7))), "{reply:?}");
        assert_eq!(clock, Some(42));
        let (nobody, _) = call(&client, "n:2").await;
        assert!(matches!(nobody, Err(CallError::Refused)), "{nobody:?}");

        transport.set_fault("n:1", Some(Fault::Refuse));
        assert!(matches!(
            call(&client, "n:1").await.0,
            Err(CallError::Refused)
        ));

        transport.set_fault("n:1", Some(Fault::Answer(StatusCode::FORBIDDEN)));
        assert!(matches!(
            call(&client, "n:1").await.0,
            Err(CallError::Status(StatusCode::FORBIDDEN))
        ));

        transport.set_fault("n:1", Some(Fault::Delay(Duration::from_millis(300))));
        let started = Instant::now();
        assert!(matches!(call(&client, "n:1").await.0, Ok(Message::Ack(7))));
        assert_eq!(started.elapsed(), Duration::from_millis(300));

        transport.set_fault("n:1", Some(Fault::Hang));
        let started = Instant::now();
        assert!(matches!(
            call(&client, "n:1").await.0,
            Err(CallError::Timeout)
        ));
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(2),
            "the caller's timeout"
        );

        transport.set_fault("n:1", None);
        transport.remove("n:1");
        assert!(matches!(
            call(&client, "n:1").await.0,
            Err(CallError::Refused)
        ));
        assert_eq!(transport.calls_to("n:1"), 6);
        drop(node);
    }

    #[tokio::test(start_paused = true)]
    async fn a_scripted_peer_answers_or_refuses_as_told_and_a_broken_link_drops_the_call() {
        let transport = MemoryTransport::new();
        // Acknowledges gossip with its path's length, refuses anything else with 400.
        let peer = Scripted::new(|path: &str, msg| match msg {
            Message::Ack(_) if path == GOSSIP_PATH => Ok(Message::Ack(path.len() as u32)),
            _ => Err(StatusCode::BAD_REQUEST),
        });
        transport.add("n:1", Arc::downgrade(&(peer.clone() as Arc<dyn Handler>)));
        let client = PeerClient::over(transport.clone());

        let (reply, clock) = call(&client, "n:1").await;
        assert!(
            matches!(reply, Ok(Message::Ack(n)) if n as usize == GOSSIP_PATH.len()),
            "{reply:?}"
        );
        assert_eq!(clock, Some(0));
        let timeout = Duration::from_secs(2);
        let other = Message::Holders(Vec::new()).encode();
        let refused = client
            .call_encoded("n:1", None, GOSSIP_PATH, other, timeout)
            .await;
        assert!(
            matches!(refused, Err(CallError::Status(StatusCode::BAD_REQUEST))),
            "{refused:?}"
        );

        transport.set_fault("n:1", Some(Fault::Break));
        let started = Instant::now();
        let (broken, clock) = call(&client, "n:1").await;
        assert!(matches!(broken, Err(CallError::Http(_))), "{broken:?}");
        assert_eq!(clock, None, "no answer, no clock");
        assert_eq!(started.elapsed(), Duration::ZERO, "dropped at once");
        assert_eq!(transport.calls_to("n:1"), 3);
    }
}
