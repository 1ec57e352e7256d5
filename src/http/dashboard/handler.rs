//! `GET /cluster`: parameters, scope, and JSON answers.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::report::local_report;
use super::state::{cluster_view, DashState};
use super::Resp;
use crate::http::validate::{check_key, query_param, truncate};
use crate::node::Node;

/// `GET /cluster[?key=K][&scope=node]`: this node's view of the cluster as JSON (see the
/// module documentation). Errors are JSON `{"error": …}` like every other route.
pub async fn cluster(
    node: &Arc<Node>,
    state: &DashState,
    method: &Method,
    query: Option<&str>,
) -> Resp {
    if method != Method::GET && method != Method::HEAD {
        let mut resp = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed; use GET, HEAD",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let key = match query_param(query, "key") {
        Ok(Some(k)) if k.is_empty() => None,
        Ok(Some(k)) => match check_key(&k) {
            Ok(()) => Some(k),
            Err(e) => return error(StatusCode::BAD_REQUEST, &e),
        },
        Ok(None) => None,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let scope = match query_param(query, "scope") {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    match scope.as_deref() {
        None | Some("" | "cluster") => json_bytes(cluster_view(node, state, key).await),
        Some("node") => match serde_json::to_vec(&local_report(node, key.as_deref())) {
            Ok(body) => json_bytes(Bytes::from(body)),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        },
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            &format!(
                "scope must be \"cluster\" or \"node\", got {:?}",
                truncate(other, 32)
            ),
        ),
    }
}

fn json_bytes(body: Bytes) -> Resp {
    let mut resp = Response::new(Full::new(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(status: StatusCode, message: &str) -> Resp {
    let mut resp = json_bytes(Bytes::from(json!({ "error": message }).to_string()));
    *resp.status_mut() = status;
    resp
}
