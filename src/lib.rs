//! repram-flux runs a whole REPRAM cluster (Replicated Ephemeral RAM: an in-memory
//! key/value store whose values expire after a TTL and are copied to every node) in one
//! process.
//!
//! - The [`supervisor`] claims a free port per node ([`net`]), starts every node at
//!   once with the process's [`http::Server`] in front of it, and restarts any that fails.
//! - Each [`node`] finds the others by probing the discovery addresses ([`membership`]),
//!   replicates every write to all live peers ([`replication`]) over the [`wire`] format
//!   through a [`transport::Transport`] (HTTP, or in memory in tests), and answers the
//!   HTTP API ([`http`]) from its [`store`]. The cluster's registry ([`local`]) lets the
//!   nodes of one process hand batches to each other in memory.
//!
//! [`run`] is the whole program; `main.rs` parses the command line ([`command`]) and the
//! environment ([`config`]), sets up logs, builds the runtime and starts the heap
//! trimmer ([`heap_trim`]).
//!
//! No `unsafe` code, except two glibc calls in one private module of [`heap_trim`],
//! which alone allows it.

#![deny(unsafe_code)]
#![warn(clippy::await_holding_lock)]

pub mod addr;
pub mod antientropy;
pub mod auth;
pub mod cidr;
pub mod clock;
pub mod cluster_hosts;
pub mod command;
pub mod config;
pub mod discovery;
pub mod error;
pub mod flags;
pub mod flux;
pub mod heap_trim;
pub mod http;
pub mod ids;
pub mod listing;
pub mod local;
pub mod membership;
pub mod metrics;
pub mod net;
pub mod node;
pub mod replication;
pub mod runtime;
pub mod skew;
pub mod store;
pub mod supervisor;
pub mod text;
pub mod transport;
pub mod wire;

pub use config::Config;
pub use error::Error;
pub use node::Tuning;
pub use supervisor::{start, Cluster};

use std::future::Future;

/// Run the cluster described by `config` until `shutdown` completes, then stop every node
/// gracefully (they announce leaving and drain) within 5 seconds. The nodes' stores count
/// the bytes their purges free in `purged`.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    purged: store::PurgedBytes,
) -> Result<(), Error> {
    raise_open_file_limit(&config);
    flux::environment::log_note(&config);
    let tuning = match Tuning::from_test_env() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!("{e}");
            Tuning::default()
        }
    };
    if tuning.clock_offset_ms != 0 {
        tracing::warn!(
            offset_ms = tuning.clock_offset_ms,
            "TEST HOOK {}: this process's clock is moved, as a host with a wrong clock",
            node::TEST_CLOCK_OFFSET_VAR
        );
    }
    let cluster = supervisor::start_counting_purged(config, tuning, purged)?;
    shutdown.await;
    tracing::info!("shutdown signal received");
    cluster.shutdown().await;
    Ok(())
}

/// Raise the soft open-file limit to the hard one (as Go programs do by default): every
/// node may hold `REPRAM_MAX_CONNECTIONS` client connections plus pooled peer connections,
/// far more than the usual soft limit of 1024.
fn raise_open_file_limit(config: &Config) {
    let per_node = config.max_connections as u64 + 2 * u64::from(config.max_ports) + 16;
    let wanted = u64::from(config.node_count) * per_node + 64;
    #[cfg(unix)]
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-file limit is below what NODE_COUNT x REPRAM_MAX_CONNECTIONS may need; \
             past it, new connections wait until others close"
        ),
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
    #[cfg(not(unix))]
    let _ = wanted;
}

/// Completes on the first SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
