//! The HTTP server: [`Server`] holds what the nodes of a process share at the edge (rate
//! limiter, receive cap, gate, connection threads) and serves each node: accept loop,
//! per-connection timeouts, graceful drain.
//!
//! Routes live in [`routes`]; input checks in [`validate`].

pub mod client_addr;
pub mod conns;
pub mod cors;
pub mod dashboard;
pub mod fade;
pub mod gate;
pub mod linger;
pub mod listing;
pub mod openapi;
pub mod ratelimit;
pub mod receiving;
pub mod routes;
pub mod upload;
pub mod validate;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::Either;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::node::Node;
use crate::runtime::Dispatch;
use conns::{Admitted, Close, Conn, Connections};
use gate::Gate;
use ratelimit::RateLimiter;
use receiving::Receiving;

pub use validate::{check_key, decode_key};

/// How long an evicted connection may finish a response already under way.
const EVICTION_GRACE: Duration = Duration::from_secs(1);
/// How long a refused connection gets to read its 503 before it is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the nodes of one process share at the edge; a cheap handle.
#[derive(Clone)]
pub struct Server {
    /// Where client connections are served.
    conn_threads: Dispatch,
    /// One rate-limit budget per client for the whole process (`None` when off).
    pub limiter: Option<Arc<RateLimiter>>,
    /// One cap on request-body bytes being received (`REPRAM_MAX_INFLIGHT_BYTES`).
    pub receiving: Arc<Receiving>,
    /// Judges node messages before their body is read: the process's cluster hosts,
    /// nonces and limits on unverified bodies.
    pub gate: Arc<Gate>,
}

/// One node as its server serves it: the node, the process's [`Server`] and the node's
/// open client connections.
pub struct Served {
    /// The node.
    pub node: Arc<Node>,
    /// What the process shares.
    pub server: Server,
    /// Open client connections, capped at `REPRAM_MAX_CONNECTIONS`.
    pub connections: Arc<Connections>,
    /// The dashboard's answer cache and peer reports for this node.
    pub dashboard: dashboard::DashState,
}

impl Server {
    /// A limiter, a receive cap and a gate from `config`, serving through `conn_threads`.
    pub fn new(config: &Config, conn_threads: Dispatch) -> Server {
        Server {
            conn_threads,
            limiter: RateLimiter::new(config.rate_limit).map(Arc::new),
            receiving: Receiving::new(config.max_inflight_bytes),
            gate: Gate::new(config),
        }
    }

    /// Serve `node` on `listener` until the node's shutdown signal; then stop accepting,
    /// run `leaving` (the node announces it leaves), and drain (see [`serve`]).
    pub async fn serve(
        &self,
        node: Arc<Node>,
        listener: TcpListener,
        leaving: impl Future<Output = ()>,
    ) {
        let connections = Connections::new(node.config.max_connections);
        let served = Arc::new(Served {
            node,
            server: self.clone(),
            connections,
            dashboard: dashboard::DashState::default(),
        });
        serve(served, listener, leaving).await
    }
}

/// Accept connections until the node's shutdown signal; then stop accepting, run
/// `leaving`, and let in-flight requests finish within the drain timeout.
///
/// Connections that hold no request and make no progress for the header timeout (idle
/// keep-alive connections, clients that never finish a request head) are closed by a
/// sweep a few times per timeout (see [`Connections::time_out_idle`]), so no request
/// arms a timer of its own; request bodies have the body timeout; open connections are
/// capped (see [`conns`]).
async fn serve(served: Arc<Served>, listener: TcpListener, leaving: impl Future<Output = ()>) {
    let node = &served.node;
    let connections = &served.connections;
    // Runs when this future ends or is dropped (the node task failed): its connections
    // must not outlive it and keep answering for a dead node.
    let _gone = CloseOnDrop(connections.clone());
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    let header_timeout = node.tuning.header_timeout;
    let mut sweep = tokio::time::interval(sweep_period(header_timeout));
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut accept_backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    accept_backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    match connections.admit(Instant::now()) {
                        Ok((conn, how)) => {
                            if how == Admitted::Evicted {
                                node.metrics.connections_evicted.inc();
                            }
                            let (serving, builder) = (served.clone(), builder.clone());
                            served.server.conn_threads.serve(stream, move |stream| {
                                serve_connection(serving, builder, stream, remote, conn)
                            });
                        }
                        Err(conns::Full) => {
                            node.metrics.connections_refused.inc();
                            debug!(node = %node.id, remote = %remote, "connection refused: every connection is busy");
                            tokio::spawn(refuse(stream));
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    warn!(node = %node.id, error = %e, "accept failed");
                    tokio::time::sleep(accept_backoff).await;
                    accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
                }
            },
            _ = sweep.tick() => {
                let closed = connections.time_out_idle(Instant::now(), header_timeout);
                if closed > 0 {
                    node.metrics.connections_timed_out.inc_by(closed as u64);
                    debug!(node = %node.id, closed, "closed connections idle past the header timeout");
                }
            }
            _ = node.stopped() => break,
        }
    }
    connections.close_all(Close::Draining);
    leaving.await;
    drop(listener);
    tokio::select! {
        _ = connections.all_closed() => {}
        _ = tokio::time::sleep(node.tuning.drain_timeout) => {
            warn!(node = %node.id, "in-flight requests did not finish in time; closing them");
        }
    }
    info!(node = %node.id, port = node.port, "stopped");
}

/// How often the connections of a node are checked against the header timeout: four
/// times per timeout, between 10 ms and 1 s.
fn sweep_period(header_timeout: Duration) -> Duration {
    (header_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Asks every connection of a node to close when its server goes away.
struct CloseOnDrop(Arc<Connections>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close_all(Close::ServerGone);
    }
}

/// Serve one connection until the client closes it, it times out (closed at once), it
/// is evicted to make room or its server is gone (then it may finish the response under
/// way), or the node stops (then it may finish within the drain timeout).
async fn serve_connection(
    served: Arc<Served>,
    builder: http1::Builder,
    stream: TcpStream,
    remote: SocketAddr,
    conn: Conn,
) {
    let node = served.node.clone();
    let conn = Arc::new(conn);
    let svc = {
        let conn = conn.clone();
        service_fn(move |req| {
            let busy = conn.request();
            match routes::answer_now(&served, remote, &req) {
                Some(resp) => {
                    drop(busy);
                    Either::Left(std::future::ready(Ok(resp)))
                }
                None => {
                    let served = served.clone();
                    Either::Right(Box::pin(async move {
                        let resp = routes::handle(served, remote, req).await;
                        drop(busy);
                        resp
                    }))
                }
            }
        })
    };
    let http = builder.serve_connection(TokioIo::new(conn.track(stream)), svc);
    tokio::pin!(http);
    let ended = tokio::select! {
        biased;
        ended = http.as_mut() => ended,
        why = conn.closing() => {
            let grace = match why {
                Close::TimedOut => {
                    debug!(node = %node.id, remote = %remote, "closing a connection idle past the header timeout");
                    return;
                }
                Close::Evicted => {
                    debug!(node = %node.id, remote = %remote, "closing an idle connection to make room");
                    EVICTION_GRACE
                }
                Close::ServerGone => EVICTION_GRACE,
                Close::Draining => node.tuning.drain_timeout,
            };
            // Idle: closed at once; else the response under way may finish.
            http.as_mut().graceful_shutdown();
            match tokio::time::timeout(grace, http.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = ended {
        debug!(remote = %remote, error = %e, "connection ended with an error");
    }
}

/// Tell a client that could not be admitted to come back later, then close.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = "{\"error\":\"too many open connections; retry shortly\"}";
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\ncache-control: no-store\r\nx-content-type-options: nosniff\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}
