//! The HTTP server of one node: accept loop, per-connection timeouts, graceful drain.
//!
//! Routes live in [`routes`]; input checks in [`validate`].

pub mod conns;
pub mod cors;
pub mod dashboard;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::node::Node;
use conns::{Admitted, Conn};

pub use validate::{check_key, decode_key};

/// How long an evicted connection may finish a response already under way.
const EVICTION_GRACE: Duration = Duration::from_secs(1);
/// How long a refused connection gets to read its 503 before it is dropped.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Accept connections until the node's shutdown signal; then announce leaving, stop
/// accepting, and let in-flight requests finish within the drain timeout.
///
/// Idle keep-alive connections and clients that do not send a complete request head are
/// closed after the header timeout (hyper's header read timer also runs between
/// requests); request bodies have the body timeout; open connections are capped (see
/// [`conns`]).
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    // Dropped when this future ends or is dropped (the node task failed): its
    // connections must not outlive it and keep answering for a dead node.
    let (_alive, server_alive) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(node.tuning.header_timeout)
        .keep_alive(true);
    let mut accept_backoff = Duration::from_millis(5);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    accept_backoff = Duration::from_millis(5);
                    let _ = stream.set_nodelay(true);
                    match node.connections.admit(Instant::now()) {
                        Ok((conn, how)) => {
                            if how == Admitted::Evicted {
                                node.metrics.connections_evicted.inc();
                            }
                            let (node, builder, alive) = (node.clone(), builder.clone(), server_alive.clone());
                            tokio::spawn(serve_connection(node, builder, stream, remote, conn, alive));
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
            _ = node.stopped() => break,
        }
    }
    node.leave().await;
    drop(listener);
    tokio::select! {
        _ = node.connections.all_closed() => {}
        _ = tokio::time::sleep(node.tuning.drain_timeout) => {
            warn!(node = %node.id, "in-flight requests did not finish in time; closing them");
        }
    }
    info!(node = %node.id, port = node.port, "stopped");
}

/// Serve one connection until the client closes it, it times out, it is evicted to make
/// room or its server is gone (then it may finish the response under way), or the node
/// stops (then it may finish within the drain timeout).
async fn serve_connection(
    node: Arc<Node>,
    builder: http1::Builder,
    stream: TcpStream,
    remote: SocketAddr,
    conn: Conn,
    mut server_alive: watch::Receiver<()>,
) {
    let conn = Arc::new(conn);
    let svc = {
        let (node, conn) = (node.clone(), conn.clone());
        service_fn(move |req| {
            let busy = conn.request();
            let node = node.clone();
            async move {
                let resp = routes::handle(node, remote, req).await;
                drop(busy);
                resp
            }
        })
    };
    let http = builder.serve_connection(TokioIo::new(stream), svc);
    tokio::pin!(http);
    let mut hard_deadline: Option<Instant> = None;
    loop {
        tokio::select! {
            ended = http.as_mut() => {
                if let Err(e) = ended {
                    debug!(remote = %remote, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = conn.evicted(), if hard_deadline.is_none() => {
                debug!(node = %node.id, remote = %remote, "closing an idle connection to make room");
                http.as_mut().graceful_shutdown();
                hard_deadline = Some(Instant::now() + EVICTION_GRACE);
            }
            // Only ever resolves with an error: the server's sender was dropped.
            _ = server_alive.changed(), if hard_deadline.is_none() => {
                http.as_mut().graceful_shutdown();
                hard_deadline = Some(Instant::now() + EVICTION_GRACE);
            }
            _ = node.stopped(), if hard_deadline.is_none() => {
                http.as_mut().graceful_shutdown();
                hard_deadline = Some(Instant::now() + node.tuning.drain_timeout);
            }
            _ = tokio::time::sleep_until(hard_deadline.unwrap_or_else(Instant::now)), if hard_deadline.is_some() => return,
        }
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
