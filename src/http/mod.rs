//! The HTTP server of one node: accept loop, per-connection timeouts, graceful drain.
//!
//! Routes live in [`routes`]; input checks in [`validate`].

pub mod dashboard;
pub mod openapi;
pub mod ratelimit;
pub mod routes;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::node::Node;

pub use validate::{check_key, decode_key};

/// Accept connections until the node's shutdown signal; then announce leaving, stop
/// accepting, and let in-flight requests finish within the drain timeout.
pub async fn serve(node: Arc<Node>, listener: TcpListener) {
    let graceful = GracefulShutdown::new();
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
                    let n = node.clone();
                    let svc = service_fn(move |req| routes::handle(n.clone(), remote, req));
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            debug!(remote = %remote, error = %e, "connection ended with an error");
                        }
                    });
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
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(node.tuning.drain_timeout) => {
            warn!(node = %node.id, "in-flight requests did not finish in time; closing them");
        }
    }
    info!(node = %node.id, port = node.port, "stopped");
}
