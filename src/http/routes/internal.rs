//! The node-to-node routes under `/internal/`: a node message in, the answer out.

use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response};

use super::body::{content_length, read_body};
use super::error::{ApiError, Result};
use super::Resp;
use crate::clock::now_ms;
use crate::http::Served;
use crate::transport::CONTENT_TYPE;
use crate::wire::{Message, MAX_BATCH_BYTES};

fn wire_response(msg: &Message) -> Resp {
    let mut resp = Response::new(Full::new(msg.encode()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

pub(super) async fn internal_route(
    served: &Served,
    remote: SocketAddr,
    path: &str,
    req: Request<Incoming>,
) -> Result<Resp> {
    let node = &served.node;
    let gate = &served.server.gate;
    let max = MAX_BATCH_BYTES + node.config.max_value_bytes + (2 << 20);
    // Judged from the address and headers before a byte of the body is read (hyper
    // reads it only when polled).
    let at = crate::http::gate::Arrival {
        me: &node.id,
        metrics: &node.metrics,
        remote,
        path,
        // The clock test hook moves this host's clock for signatures too.
        now_ms: crate::clock::offset_ms(now_ms(), node.tuning.clock_offset_ms),
    };
    let pass = gate
        .admit(at, req.headers(), content_length(req.headers()), max)
        .map_err(ApiError::from)?;
    let body = read_body(node, req.into_body(), max).await?;
    let addressed = gate.verify(at, &pass, &body).map_err(ApiError::from)?;
    drop(pass);
    let msg = Message::decode(body).map_err(|e| {
        node.metrics.rejected_messages.inc();
        ApiError::bad_request(format!("invalid node message: {e}"))
    })?;
    node.count_http_arrival(path, &msg);
    let reply = node
        .answer(path, msg, remote.ip(), addressed)
        .await
        .map_err(ApiError::bad_request)?;
    Ok(wire_response(&reply))
}
