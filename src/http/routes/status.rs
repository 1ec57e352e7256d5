//! What a node tells about itself: `/health`, `/ready`, `/peers`, `/status`, `/metrics`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use super::error::json_response;
use super::Resp;
use crate::http::Served;
use crate::node::Node;

pub(super) fn health(node: &Node) -> Resp {
    let (status, word) = if node.is_stopping() {
        (StatusCode::SERVICE_UNAVAILABLE, "stopping")
    } else {
        (StatusCode::OK, "healthy")
    };
    json_response(
        status,
        &json!({
            "status": word,
            "node_id": node.id,
            "port": node.port,
            "peers": node.membership().len(),
            "uptime_s": node.uptime_s(),
        }),
    )
}

/// Ready once the first discovery round is done and the node holds the cluster's data:
/// what a load balancer should check. `caught_up` and `uptime_s` tell a late peer where
/// to catch up from.
pub(super) fn ready(node: &Node) -> Resp {
    let caught_up = node.is_caught_up();
    let ready = node.is_ready() && caught_up && !node.is_stopping();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "ready": ready,
            "caught_up": caught_up,
            "node_id": node.id,
            "peers": node.membership().len(),
            "uptime_s": node.uptime_s(),
        }),
    )
}

pub(super) fn peers(node: &Node) -> Resp {
    let now = Instant::now();
    let mut list: Vec<_> = node
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
    json_response(
        StatusCode::OK,
        &json!({ "node_id": node.id, "peers": list }),
    )
}

/// Each live peer's clock skew as this node last measured it (see [`crate::skew`]).
fn clock_json(node: &Node) -> serde_json::Value {
    let now = Instant::now();
    let mut peers: Vec<(String, String, bool)> = node
        .membership()
        .peers()
        .map(|p| (p.info.id.clone(), p.addr(), p.suspect))
        .collect();
    peers.sort();
    let peers: Vec<serde_json::Value> = peers
        .into_iter()
        .map(|(id, address, _)| {
            let s = node.skew.get(&id);
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
        "now_ms": node.wall_ms(),
        "max_skew_ms": crate::clock::MAX_SKEW_MS,
        "test_offset_ms": node.tuning.clock_offset_ms,
        "peers": peers,
    })
}

pub(super) fn status(node: &Node) -> Resp {
    let (peers, counted) = {
        let m = node.membership();
        (m.len(), m.peers().filter(|p| !p.suspect).count())
    };
    let host = node.reachable_host();
    json_response(
        StatusCode::OK,
        &json!({
            "node_id": node.id,
            "index": node.index,
            "address": crate::membership::fmt_addr(&host, node.port),
            "port": node.port,
            "uptime_s": node.uptime_s(),
            "ready": node.is_ready() && node.is_caught_up(),
            "peers": peers,
            "keys": node.store.len(),
            "bytes": node.store.bytes(),
            "max_bytes": node.store.max_bytes(),
            // Suspects are not counted (see crate::membership).
            "quorum": node.config.quorum(counted + 1),
            "replication_factor": node.config.replication_factor,
            "version": env!("CARGO_PKG_VERSION"),
            "config": node.config.effective_json(),
            "clock": clock_json(node),
        }),
    )
}

pub(super) fn metrics(served: &Served) -> Resp {
    let node = &served.node;
    let m = &node.metrics;
    m.peers.set(node.membership().len() as i64);
    m.keys.set(node.store.len() as i64);
    m.bytes.set(node.store.bytes() as i64);
    m.purged.set(node.store.purged_total() as i64);
    m.listed.set(node.store.listed_total() as i64);
    m.replication_queue.set(node.replicator.queued() as i64);
    m.uptime.set(node.uptime_s() as i64);
    m.connections.set(served.connections.open() as i64);
    m.receiving_bytes
        .set(i64::try_from(served.server.receiving.used()).unwrap_or(i64::MAX));
    let mut resp = Response::new(Full::new(Bytes::from(m.render())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
