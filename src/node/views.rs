//! What a node tells about itself as JSON: the documents of `/health`, `/ready`, `/peers`
//! and `/status`. Built here, on the node's side, so the HTTP routes and the in-memory
//! transport of tests (see [`Node::view`]) serve the very same documents.

use hyper::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::Node;

impl Node {
    /// The document of the public `path` (`/health`, `/ready`, `/peers`, `/status`) and
    /// its status; `None` for any other path.
    pub fn view(&self, path: &str) -> Option<(StatusCode, Value)> {
        match path {
            "/health" => Some(self.health_view()),
            "/ready" => Some(self.ready_view()),
            "/peers" => Some((StatusCode::OK, self.peers_view())),
            "/status" => Some((StatusCode::OK, self.status_view())),
            _ => None,
        }
    }

    /// `/health`: alive, unless stopping.
    pub fn health_view(&self) -> (StatusCode, Value) {
        let (status, word) = if self.is_stopping() {
            (StatusCode::SERVICE_UNAVAILABLE, "stopping")
        } else {
            (StatusCode::OK, "healthy")
        };
        let doc = json!({
            "status": word,
            "node_id": self.id,
            "port": self.port,
            "peers": self.membership().len(),
            "uptime_s": self.uptime_s(),
        });
        (status, doc)
    }

    /// `/ready`: ready once the first discovery round is done and the node holds the
    /// cluster's data: what a load balancer should check. `caught_up` and `uptime_s` tell
    /// a late peer where to catch up from.
    pub fn ready_view(&self) -> (StatusCode, Value) {
        let caught_up = self.is_caught_up();
        let ready = self.is_ready() && caught_up && !self.is_stopping();
        let status = if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let doc = json!({
            "ready": ready,
            "caught_up": caught_up,
            "node_id": self.id,
            "peers": self.membership().len(),
            "uptime_s": self.uptime_s(),
        });
        (status, doc)
    }

    /// `/peers`: the live peers by address (a late peer waits to be listed here).
    pub fn peers_view(&self) -> Value {
        let now = Instant::now();
        let mut list: Vec<_> = self
            .membership()
            .peers()
            .map(|p| {
                json!({
                    "node_id": p.info.id,
                    "address": p.addr(),
                    "state": p.state(),
                    "last_seen_ms": now.saturating_duration_since(p.last_seen).as_millis() as u64,
                })
            })
            .collect();
        list.sort_by(|a, b| a["address"].as_str().cmp(&b["address"].as_str()));
        json!({ "node_id": self.id, "peers": list })
    }

    /// `/status`: the node, its store, its quorum and configuration, and its clock.
    pub fn status_view(&self) -> Value {
        let (peers, counted) = {
            let m = self.membership();
            (m.len(), m.peers().filter(|p| !p.suspect).count())
        };
        let host = self.reachable_host();
        json!({
            "node_id": self.id,
            "index": self.index,
            "address": crate::membership::fmt_addr(&host, self.port),
            "port": self.port,
            "uptime_s": self.uptime_s(),
            "ready": self.is_ready() && self.is_caught_up(),
            "peers": peers,
            "keys": self.store.len(),
            "bytes": self.store.bytes(),
            "max_bytes": self.store.max_bytes(),
            // Suspects are not counted (see crate::membership).
            "quorum": self.config.quorum(counted + 1),
            "replication_factor": self.config.replication_factor,
            "version": env!("CARGO_PKG_VERSION"),
            "config": self.config.effective_json(),
            "clock": self.clock_view(),
        })
    }

    /// Each live peer's clock skew as this node last measured it (see [`crate::skew`]).
    fn clock_view(&self) -> Value {
        let now = Instant::now();
        let mut peers: Vec<(String, String, bool)> = self
            .membership()
            .peers()
            .map(|p| (p.info.id.clone(), p.addr(), p.suspect))
            .collect();
        peers.sort();
        let peers: Vec<Value> = peers
            .into_iter()
            .map(|(id, address, _)| {
                let s = self.skew.get(&id);
                json!({
                    "node_id": id,
                    "address": address,
                    "skew_ms": s.as_ref().map(|s| s.skew_ms),
                    "error_ms": s.as_ref().map(|s| s.error_ms),
                    "measured_ms_ago": s.as_ref().map(|s| now.saturating_duration_since(s.at).as_millis() as u64),
                    "beyond_max_skew": s.as_ref().is_some_and(|s| s.splits()),
                })
            })
            .collect();
        json!({
            "now_ms": self.wall_ms(),
            "max_skew_ms": crate::clock::MAX_SKEW_MS,
            "test_offset_ms": self.tuning.clock_offset_ms,
            "peers": peers,
        })
    }
}
