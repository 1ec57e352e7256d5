//! What one node says about itself: the report peers fetch from each other.

use serde::{Deserialize, Serialize};

use crate::membership::{fmt_addr, Peer};
use crate::metrics::{RequestLabels, Route};
use crate::node::Node;

/// A peer as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerView {
    /// Its node id.
    pub node_id: String,
    /// `host:port` this node reaches it at.
    pub address: String,
    /// Membership state (`alive`, `suspect`, …).
    pub state: String,
    /// Its clock minus this node's, ms, as this node last measured it (see
    /// [`crate::skew`]); absent until measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
}

/// Counters a node has accumulated since it started; the page turns their differences
/// between polls into rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Client PUTs this node accepted (201 or 202).
    pub writes: u64,
    /// Entries from peers (replication and catch-up) that changed its store.
    pub applied: u64,
    /// Replication batches its peers confirmed.
    pub repl_batches: u64,
    /// Entries in those batches.
    pub repl_entries: u64,
    /// Replication batches that failed.
    pub repl_failures: u64,
    /// Writes not queued for a peer because its queue was full.
    pub repl_dropped: u64,
    /// Sum of confirmed batch round trips, seconds.
    pub repl_seconds_sum: f64,
    /// Number of confirmed batch round trips measured.
    pub repl_seconds_count: u64,
    /// Sum of replication lags (write at its origin to arrival here) of the entries
    /// received, seconds.
    pub lag_seconds_sum: f64,
    /// Number of replication lags measured.
    pub lag_seconds_count: u64,
    /// Writes waiting in its replication queues right now (a gauge, not a counter).
    pub queue: u64,
    /// Entries changed by anti-entropy (repairs and catch-up).
    pub repairs: u64,
}

/// What one node says about itself (`/cluster?scope=node`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeReport {
    /// Its node id.
    pub node_id: String,
    /// The address it advertises (may be a wildcard bind address).
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// True once its first discovery round finished.
    pub ready: bool,
    /// True once it started shutting down.
    pub stopping: bool,
    /// Live keys held.
    pub keys: u64,
    /// Bytes of keys and values held.
    pub bytes: u64,
    /// Its memory budget.
    pub max_bytes: u64,
    /// Its live peers.
    pub peers: Vec<PeerView>,
    /// Its counters.
    pub counters: Counters,
    /// Whether it holds the key asked about (absent when none was asked about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_key: Option<bool>,
    /// Its software version.
    pub version: String,
}

/// The state string of a live peer in this node's membership (`alive` or `suspect`).
fn peer_state(peer: &Peer) -> &'static str {
    peer.state()
}

/// This node's own report, from local state only.
pub fn local_report(node: &Node, key: Option<&str>) -> NodeReport {
    let peers = node
        .membership()
        .peers()
        .map(|p| PeerView {
            node_id: p.info.id.clone(),
            address: p.addr(),
            state: peer_state(p).to_string(),
            skew_ms: node.skew.get(&p.info.id).map(|s| s.skew_ms),
        })
        .collect();
    let host = node
        .config
        .advertise_host
        .clone()
        .unwrap_or_else(|| node.config.bind_addr.to_string());
    let m = &node.metrics;
    let count = |status: u16| {
        m.requests
            .get(&RequestLabels {
                route: Route::Data,
                status,
            })
            .map(|c| c.get())
            .unwrap_or(0)
    };
    let text = m.render();
    let (repl_seconds_sum, repl_seconds_count) =
        histogram_totals(&text, "repram_replication_batch_seconds");
    let (lag_seconds_sum, lag_seconds_count) =
        histogram_totals(&text, "repram_replication_lag_seconds");
    NodeReport {
        node_id: node.id.clone(),
        address: fmt_addr(&host, node.port),
        port: node.port,
        uptime_s: node.uptime_s(),
        ready: node.is_ready(),
        stopping: node.is_stopping(),
        keys: node.store.len() as u64,
        bytes: node.store.bytes(),
        max_bytes: node.store.max_bytes(),
        peers,
        counters: Counters {
            writes: count(201) + count(202),
            applied: m.entries_applied.get(),
            repl_batches: m.replication_batches.get(),
            repl_entries: m.replication_entries.get(),
            repl_failures: m.replication_failures.get(),
            repl_dropped: m.replication_dropped.get(),
            repl_seconds_sum,
            repl_seconds_count,
            lag_seconds_sum,
            lag_seconds_count,
            queue: node.replicator.queued() as u64,
            repairs: m.anti_entropy_repairs.get(),
        },
        has_key: key.map(|k| node.store.get(k).is_some()),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// `(sum, count)` of histogram `name` in a Prometheus text exposition (0 when absent).
pub(super) fn histogram_totals(text: &str, name: &str) -> (f64, u64) {
    let mut sum = 0.0;
    let mut count = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if let Some(v) = rest.strip_prefix("_sum ") {
            sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = rest.strip_prefix("_count ") {
            count = v.trim().parse().unwrap_or(0);
        }
    }
    (sum, count)
}
