//! What a node tells about itself: `/health`, `/ready`, `/peers`, `/status`, `/metrics`.
//! The JSON documents are the node's own ([`Node::view`]), which the in-memory transport
//! of tests serves too.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::error::json_response;
use super::Resp;
use crate::http::Served;
use crate::node::Node;

pub(super) fn health(node: &Node) -> Resp {
    let (status, doc) = node.health_view();
    json_response(status, &doc)
}

pub(super) fn ready(node: &Node) -> Resp {
    let (status, doc) = node.ready_view();
    json_response(status, &doc)
}

pub(super) fn peers(node: &Node) -> Resp {
    json_response(StatusCode::OK, &node.peers_view())
}

pub(super) fn status(node: &Node) -> Resp {
    json_response(StatusCode::OK, &node.status_view())
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
