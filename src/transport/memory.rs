//! The in-memory transport: a call goes straight to the receiving node's handler, through
//! the wire encoding both ways, with no socket; a GET of a public JSON document the node
//! tells about itself (`/ready`, `/peers`, ...) is answered by the handler too. Links can
//! refuse, delay or hang calls and GETs alike, so tests on paused tokio time can play lost
//! peers and slow ones.

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

    /// The answer to a GET of the public `path`: status and body, as over HTTP; `None`
    /// for a path it does not serve in memory (answered 404). A stand-in serves none.
    fn get(&self, path: &str) -> Option<(StatusCode, Bytes)> {
        let _ = path;
        None
    }
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
    /// Answered with this status and no message (a GET: with an error document), as by a
    /// gate that turns the caller away.
    Answer(StatusCode),
}

#[derive(Default)]
struct Links {
    nodes: HashMap<String, Weak<dyn Handler>>,
    faults: HashMap<String, Fault>,
    /// Faults of GETs only, ahead of `faults`.
    get_faults: HashMap<String, Fault>,
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

    /// GETs of the public API at `addr` meet `fault` from now on, whatever the link's
    /// fault (`None`: the link's fault again): a peer whose public port is rate limited
    /// or slow while its node-to-node route answers.
    pub fn set_get_fault(&self, addr: &str, fault: Option<Fault>) {
        let mut links = self.links();
        match fault {
            Some(f) => links.get_faults.insert(addr.to_string(), f),
            None => links.get_faults.remove(addr),
        };
    }

    /// How many calls and GETs went to `addr` (whatever became of them).
    pub fn calls_to(&self, addr: &str) -> u64 {
        let calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.get(addr).copied().unwrap_or(0)
    }

    /// Count a call (`get`: a GET) to `addr` and play its fault: the node there, or how
    /// the call ended (`CallError::Status` for [`Fault::Answer`]). A hung link never
    /// returns.
    async fn reach(&self, addr: &str, get: bool) -> Result<Arc<dyn Handler>, CallError> {
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
                get.then(|| links.get_faults.get(addr))
                    .flatten()
                    .or_else(|| links.faults.get(addr))
                    .copied(),
            )
        };
        let node = node.ok_or(CallError::Refused)?;
        match fault {
            Some(Fault::Refuse) => return Err(CallError::Refused),
            Some(Fault::Hang) => std::future::pending::<()>().await,
            Some(Fault::Break) => {
                return Err(CallError::Http("connection closed before an answer".into()))
            }
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            Some(Fault::Answer(status)) => return Err(CallError::Status(status)),
            None => {}
        }
        Ok(node)
    }

    async fn deliver(
        &self,
        addr: &str,
        path: &str,
        body: Bytes,
    ) -> (Result<Message, CallError>, Option<u64>) {
        match self.reach(addr, false).await {
            Ok(node) => hand_to(node, path, body).await,
            Err(e) => (Err(e), None),
        }
    }

    /// A GET of `path` at `addr`: any status is an answer, as over HTTP, but a body over
    /// `max_bytes` is an error.
    async fn fetch(
        &self,
        addr: &str,
        path: &str,
        max_bytes: usize,
    ) -> Result<(StatusCode, Bytes), CallError> {
        let (status, body) = match self.reach(addr, true).await {
            Ok(node) => node.get(path).unwrap_or_else(|| {
                (
                    StatusCode::NOT_FOUND,
                    error_doc("no such document in memory"),
                )
            }),
            // A gate's refusal, as HTTP would carry it.
            Err(CallError::Status(status)) => (status, error_doc("turned away")),
            Err(e) => return Err(e),
        };
        if body.len() > max_bytes {
            return Err(CallError::Http(format!(
                "body of {} bytes over the limit of {max_bytes}",
                body.len()
            )));
        }
        Ok((status, body))
    }
}

/// Hands an encoded message for `path` to `node`, as a loopback peer over HTTP would
/// reach it, and decodes its answer: the reply (through the encoding both ways, as over
/// HTTP) and the node's clock.
pub(super) async fn hand_to(
    node: Arc<dyn Handler>,
    path: &str,
    body: Bytes,
) -> (Result<Message, CallError>, Option<u64>) {
    let msg = match Message::decode(body) {
        Ok(m) => m,
        Err(_) => return (Err(CallError::Status(StatusCode::BAD_REQUEST)), None),
    };
    let source = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let clock = Some(node.clock_ms());
    match node.handle(path, msg, source).await {
        Ok(reply) => (
            Message::decode(reply.encode()).map_err(CallError::from),
            clock,
        ),
        Err(status) => (Err(CallError::Status(status)), clock),
    }
}

/// An error document, as the HTTP API answers one.
fn error_doc(message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "error": message }).to_string())
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
        addr: &'a str,
        path: &'a str,
        max_bytes: usize,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(StatusCode, Bytes), CallError>> {
        Box::pin(async move {
            tokio::time::timeout(timeout, self.fetch(addr, path, max_bytes))
                .await
                .unwrap_or(Err(CallError::Timeout))
        })
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

        fn get(&self, path: &str) -> Option<(StatusCode, Bytes)> {
            (path == "/doc").then(|| (StatusCode::OK, Bytes::from_static(b"{\"n\":7}")))
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

    #[tokio::test(start_paused = true)]
    async fn gets_are_answered_by_the_node_and_meet_the_faults_of_calls() {
        let transport = MemoryTransport::new();
        let node: Arc<dyn Handler> = Arc::new(Echo);
        transport.add("n:1", Arc::downgrade(&node));
        let client = PeerClient::over(transport.clone());
        let timeout = Duration::from_secs(2);
        let get = |path: &'static str, max: usize| {
            let client = client.clone();
            async move { client.get("n:1", path, max, timeout).await }
        };

        let (status, body) = get("/doc", 64).await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"{\"n\":7}"[..]));
        assert!(get("/doc", 7).await.is_ok(), "a body of exactly max_bytes");
        assert!(matches!(get("/doc", 6).await, Err(CallError::Http(_))));
        let (status, _) = get("/other", 64).await.unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        let nobody = client.get("n:2", "/doc", 64, timeout).await;
        assert!(matches!(nobody, Err(CallError::Refused)), "{nobody:?}");

        // The link's faults apply to GETs too; a turned-away GET is an answer.
        transport.set_fault("n:1", Some(Fault::Answer(StatusCode::FORBIDDEN)));
        let (status, doc) = client.get_json("n:1", "/doc", timeout).await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(doc["error"].is_string(), "{doc}");
        transport.set_fault("n:1", Some(Fault::Break));
        assert!(matches!(get("/doc", 64).await, Err(CallError::Http(_))));
        transport.set_fault("n:1", Some(Fault::Delay(Duration::from_millis(300))));
        let started = Instant::now();
        assert!(get("/doc", 64).await.is_ok());
        assert_eq!(started.elapsed(), Duration::from_millis(300));

        // A fault of GETs only goes first, and leaves calls alone.
        transport.set_fault("n:1", None);
        transport.set_get_fault("n:1", Some(Fault::Hang));
        let started = Instant::now();
        assert!(matches!(get("/doc", 64).await, Err(CallError::Timeout)));
        assert_eq!(started.elapsed(), timeout, "the caller's timeout");
        assert!(matches!(call(&client, "n:1").await.0, Ok(Message::Ack(7))));
        transport.set_get_fault("n:1", Some(Fault::Refuse));
        assert!(matches!(get("/doc", 64).await, Err(CallError::Refused)));
        transport.set_get_fault("n:1", None);
        assert!(get("/doc", 64).await.is_ok());
        assert_eq!(transport.calls_to("n:1"), 11, "GETs are counted with calls");
        drop(node);
    }
}
