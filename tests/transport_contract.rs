//! The contract every [`Transport`] honours, as one suite of test functions run against
//! both: [`HttpTransport`] over loopback sockets to a real node served by the library, and
//! [`MemoryTransport`] to a node in memory. What a node does with a message is tested
//! elsewhere; here, what a caller can count on whatever carries its calls: refusal,
//! decoded replies, the peer's clock, deadlines, GETs and their size limit.
//!
//! The memory side runs on paused tokio time. The HTTP side runs on real time, with
//! short bounded waits: paused time jumps ahead whenever the runtime waits for a socket,
//! so a deadline would fire before a real peer could answer.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use repram_flux::config::Config;
use repram_flux::node::{Node, ProcessWide, Tuning};
use repram_flux::transport::memory::{Fault, Handler};
use repram_flux::transport::{CallError, HttpTransport, MemoryTransport, Transport, SYNC_PATH};
use repram_flux::wire::Message;
use tokio::sync::watch;
use tokio::time::Instant;

/// A transport and the addresses the contract is checked at.
struct Peers {
    transport: Arc<dyn Transport>,
    /// The node answering at `live`.
    node: Arc<Node>,
    live: String,
    /// Nobody listens here.
    nowhere: String,
    /// Takes calls and never answers.
    hung: String,
    /// What must live as long as the test, and how it ends.
    keep: Keep,
}

enum Keep {
    Memory {
        _stop: watch::Sender<bool>,
    },
    Http {
        cluster: repram_flux::Cluster,
        _hung: TcpListener,
    },
}

impl Peers {
    async fn finish(self) {
        if let Keep::Http { cluster, .. } = self.keep {
            cluster.shutdown().await;
        }
    }
}

/// One node in memory at 127.0.0.1:9300, the same node hung at :9302, nobody at :9301.
fn memory_peers() -> Peers {
    let transport = MemoryTransport::new();
    let config = Arc::new(Config::for_test());
    let (stop_tx, stop) = watch::channel(false);
    let tag = repram_flux::ids::new_process_tag();
    let node = Node::serving_on(
        ProcessWide::new(&config),
        repram_flux::ids::node_id(1, &tag, 0),
        1,
        9300,
        config,
        Tuning::default(),
        stop,
    );
    let handler: Arc<dyn Handler> = node.clone();
    let (live, nowhere, hung) = ("127.0.0.1:9300", "127.0.0.1:9301", "127.0.0.1:9302");
    transport.add(live, Arc::downgrade(&handler));
    transport.add(hung, Arc::downgrade(&handler));
    transport.set_fault(hung, Some(Fault::Hang));
    Peers {
        transport,
        node,
        live: live.into(),
        nowhere: nowhere.into(),
        hung: hung.into(),
        keep: Keep::Memory { _stop: stop_tx },
    }
}

/// One real node serving on a free port below the ephemeral range, the next port left
/// free, and on the one after a listener that never accepts: the kernel takes the
/// connection and the request, nobody answers.
async fn http_peers() -> Peers {
    let base = common::free_range(3);
    let config = Config {
        base_port: base,
        max_ports: 1,
        node_count: 1,
        ..Config::for_test()
    };
    let (cluster, port) = common::start_ready(config, Tuning::default()).await;
    let hung = TcpListener::bind(("127.0.0.1", base + 2)).expect("the hung port is free");
    let node = cluster.nodes().remove(0);
    Peers {
        transport: Arc::new(HttpTransport::new(None)),
        node,
        live: format!("127.0.0.1:{port}"),
        nowhere: format!("127.0.0.1:{}", base + 1),
        hung: format!("127.0.0.1:{}", base + 2),
        keep: Keep::Http {
            cluster,
            _hung: hung,
        },
    }
}

const TIMEOUT: Duration = Duration::from_secs(2);

/// A reply and the clock it carried.
type CallResult = (Result<Message, CallError>, Option<u64>);

/// Send `msg` for the sync route to `addr`, addressed to the node.
async fn call(p: &Peers, addr: &str, msg: &Message, timeout: Duration) -> CallResult {
    let to = Some(p.node.id.as_str());
    p.transport
        .call_clocked(addr, to, SYNC_PATH, msg.encode(), timeout)
        .await
}

async fn nobody_listening_is_refused(p: Peers) {
    let (reply, clock) = call(&p, &p.nowhere, &Message::Fetch(vec![]), TIMEOUT).await;
    assert!(matches!(reply, Err(CallError::Refused)), "{reply:?}");
    assert_eq!(clock, None, "no answer, no clock");
    let got = p
        .transport
        .get(&p.nowhere, "/ready", 1 << 16, TIMEOUT)
        .await;
    assert!(matches!(got, Err(CallError::Refused)), "{got:?}");
    p.finish().await;
}

async fn a_call_in_time_is_the_decoded_reply_with_the_peers_clock(p: Peers) {
    p.node
        .put("k".into(), Bytes::from_static(b"v"), 600)
        .await
        .expect("written");
    let before = p.node.wall_ms();
    let (reply, clock) = call(&p, &p.live, &Message::Fetch(vec!["k".into()]), TIMEOUT).await;
    let after = p.node.wall_ms();
    match reply {
        Ok(Message::Replicate(entries)) => {
            assert_eq!(entries.len(), 1, "{entries:?}");
            assert_eq!(
                (entries[0].key.as_str(), &entries[0].value[..]),
                ("k", &b"v"[..])
            );
        }
        other => panic!("not the entry: {other:?}"),
    }
    let clock = clock.expect("the peer's clock");
    assert!(
        (before..=after).contains(&clock),
        "{clock} not in {before}..={after}"
    );
    p.finish().await;
}

async fn a_refusal_is_its_status_and_still_tells_the_clock(p: Peers) {
    // An acknowledgement does not belong on the sync route: the node answers 400.
    let (reply, clock) = call(&p, &p.live, &Message::Ack(0), TIMEOUT).await;
    assert!(
        matches!(reply, Err(CallError::Status(StatusCode::BAD_REQUEST))),
        "{reply:?}"
    );
    assert!(clock.is_some(), "a refusal carries the peer's clock");
    p.finish().await;
}

async fn a_peer_that_never_answers_times_out_at_the_deadline(p: Peers) {
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let (reply, clock) = call(&p, &p.hung, &Message::Fetch(vec![]), timeout).await;
    let took = started.elapsed();
    assert!(matches!(reply, Err(CallError::Timeout)), "{reply:?}");
    assert_eq!(clock, None);
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "a {timeout:?} call ended after {took:?}"
    );
    let started = Instant::now();
    let got = p.transport.get(&p.hung, "/ready", 1 << 16, timeout).await;
    let took = started.elapsed();
    assert!(matches!(got, Err(CallError::Timeout)), "{got:?}");
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "a {timeout:?} GET ended after {took:?}"
    );
    p.finish().await;
}

async fn a_get_is_the_status_and_body_and_a_body_over_max_bytes_is_an_error(p: Peers) {
    let t = &p.transport;
    let (status, body) = t.get(&p.live, "/peers", 1 << 16, TIMEOUT).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(doc, p.node.peers_view(), "the node's own /peers document");
    // Any status is an answer: /ready's, whatever it is, and an unknown path's 404.
    let (status, body) = t.get(&p.live, "/ready", 1 << 16, TIMEOUT).await.unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let (want, view) = p.node.ready_view();
    assert_eq!((status, &doc["node_id"]), (want, &view["node_id"]), "{doc}");
    let (status, _) = t
        .get(&p.live, "/no-such-page", 1 << 16, TIMEOUT)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);

    let n = t
        .get(&p.live, "/peers", 1 << 16, TIMEOUT)
        .await
        .unwrap()
        .1
        .len();
    let exact = t.get(&p.live, "/peers", n, TIMEOUT).await;
    assert!(exact.is_ok(), "a body of exactly max_bytes: {exact:?}");
    let over = t.get(&p.live, "/peers", n - 1, TIMEOUT).await;
    assert!(matches!(over, Err(CallError::Http(_))), "{over:?}");
    p.finish().await;
}

/// Each contract function as a test over memory (paused time) and over HTTP (real time).
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod over_memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $name() {
                    super::$name(super::memory_peers()).await
                }
            )*
        }
        mod over_http {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::http_peers().await).await
                }
            )*
        }
    };
}

contract!(
    nobody_listening_is_refused,
    a_call_in_time_is_the_decoded_reply_with_the_peers_clock,
    a_refusal_is_its_status_and_still_tells_the_clock,
    a_peer_that_never_answers_times_out_at_the_deadline,
    a_get_is_the_status_and_body_and_a_body_over_max_bytes_is_an_error,
);
