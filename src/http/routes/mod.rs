//! Request routing: the entry points [`handle`] and [`answer_now`], the rate limit and
//! the dispatch by path to the public API (also under `/v1/`) and the `/internal/`
//! node-to-node routes. The handlers live in a file per kind of route: `data` (one
//! key), `keys` (listings), `status` (what a node tells about itself), `internal`;
//! `error` is the error answer, `header_memo` the per-thread memo of GET headers.

mod body;
mod data;
mod error;
mod header_memo;
mod internal;
mod keys;
mod status;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use tokio::time::Instant;
use tracing::debug;

use super::client_addr::{client_of, Client};
use super::cors::{self, Preflight};
use super::validate::{decode_key, truncate};
use super::Served;
use crate::config::HomePage;
use crate::metrics::Route;
use crate::node::Node;
use crate::transport::{GOSSIP_PATH, REPLICATE_PATH, SYNC_PATH};
use data::{data, get_value, seed_data};
use error::{ApiError, Result};
use internal::internal_route;
use keys::{keys, scan};
use status::{health, metrics, peers, ready, status};

type Resp = Response<Full<Bytes>>;

/// `uri` in bytes of its own: hyper parses it as a slice of the connection's read buffer,
/// which a request that waits (a PUT waits for its quorum) must not keep from reuse.
fn owned_uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

/// Entry point of every request on a node (see also [`answer_now`]).
pub async fn handle(
    served: Arc<Served>,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> std::result::Result<Resp, Infallible> {
    let node = &served.node;
    let head = Head::of(node, &req);
    let (route, result) = match rate_limited(&served, remote, &req) {
        Some(refusal) => (Route::Other, Err(refusal)),
        None => route(&served, remote, req).await,
    };
    Ok(head.finish(node, remote, route, result))
}

/// The answer to `req` when it can be given without waiting: a read of one key (GET or
/// HEAD on `/data/{key}`), the most frequent request, answered where it is parsed with
/// no task state of its own. The same answer as [`handle`] gives; `None` for every other
/// request, which goes to [`handle`].
pub fn answer_now(served: &Served, remote: SocketAddr, req: &Request<Incoming>) -> Option<Resp> {
    let node = &served.node;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let segment = public_path(req.uri().path()).strip_prefix("/data/")?;
    // While catching up, a miss is read through from a peer: that waits, so not here.
    if !node.is_caught_up() {
        return None;
    }
    let head = Head::of(node, req);
    let (route, result) = match rate_limited(served, remote, req) {
        Some(refusal) => (Route::Other, Err(refusal)),
        None => (
            Route::Data,
            decode_key(segment)
                .map_err(ApiError::bad_request)
                .and_then(|key| get_value(node, &key)),
        ),
    };
    Some(head.finish(node, remote, route, result))
}

/// What finishing an answer needs of its request.
struct Head {
    /// Method and path, only copied when they will be logged: this runs for every request.
    log: Option<(Method, String)>,
    origin: Option<HeaderValue>,
}

impl Head {
    fn of(node: &Node, req: &Request<Incoming>) -> Head {
        Head {
            log: tracing::enabled!(tracing::Level::DEBUG)
                .then(|| (req.method().clone(), req.uri().path().to_owned())),
            origin: if node.config.cors_origins.is_empty() {
                None
            } else {
                // A copy, not a clone sharing hyper's read buffer (see `owned_uri`).
                req.headers()
                    .get(header::ORIGIN)
                    .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
            },
        }
    }

    /// The response to send: CORS and security headers on public routes, counted, logged.
    fn finish(self, node: &Node, remote: SocketAddr, route: Route, result: Result<Resp>) -> Resp {
        let mut resp = result.unwrap_or_else(ApiError::into_response);
        if route == Route::Internal {
            // Every node answer, refusals included, tells our clock (see crate::skew).
            resp.headers_mut().insert(
                crate::transport::CLOCK_HEADER,
                HeaderValue::from(node.wall_ms()),
            );
        } else {
            cors::decorate(
                &node.config.cors_origins,
                self.origin.as_ref(),
                resp.headers_mut(),
            );
            cors::secure(resp.headers_mut());
        }
        node.metrics.request(route, resp.status().as_u16());
        if let Some((method, path)) = self.log {
            debug!(node = %node.id, %method, %path, status = resp.status().as_u16(), remote = %remote, "request");
        }
        resp
    }
}

/// `path` without the `/v1` prefix, an alias of `/` for REPRAM v2 clients.
fn public_path(path: &str) -> &str {
    match path.strip_prefix("/v1") {
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

async fn route(
    served: &Served,
    remote: SocketAddr,
    req: Request<Incoming>,
) -> (Route, Result<Resp>) {
    let node = &served.node;
    // A copy, so the path can be borrowed while `req` moves: a clone would share hyper's
    // read buffer while the route waits (see `put_value`).
    let uri = owned_uri(req.uri());
    let path = uri.path();
    if let Some(internal) = path.strip_prefix("/internal/") {
        let kind = match internal {
            "v1/gossip" => GOSSIP_PATH,
            "v1/replicate" => REPLICATE_PATH,
            "v1/sync" => SYNC_PATH,
            _ => {
                return (
                    Route::Internal,
                    Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "no such internal route",
                    )),
                )
            }
        };
        if req.method() != Method::POST {
            return (Route::Internal, Err(ApiError::method_not_allowed("POST")));
        }
        return (
            Route::Internal,
            internal_route(served, remote, kind, req).await,
        );
    }
    let public = public_path(path);
    let method = req.method().clone();
    match cors::preflight(&node.config.cors_origins, &method, req.headers()) {
        None => {}
        Some(Preflight::Allowed(headers)) => {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::NO_CONTENT;
            *resp.headers_mut() = headers;
            return (Route::Other, Ok(resp));
        }
        Some(Preflight::Refused(message)) => {
            return (Route::Other, Err(ApiError::new(cors::REFUSED, message)))
        }
    }
    let read_only = |route: Route, f: &dyn Fn() -> Resp| -> (Route, Result<Resp>) {
        match method {
            Method::GET | Method::HEAD => (route, Ok(f())),
            _ => (route, Err(ApiError::method_not_allowed("GET, HEAD"))),
        }
    };
    match public {
        "/" => match node.config.home_page {
            HomePage::Dashboard => read_only(Route::Other, &super::dashboard::page),
            HomePage::Fade => read_only(Route::Other, &super::fade::page),
        },
        "/fade" => read_only(Route::Other, &super::fade::page),
        "/dashboard" => read_only(Route::Other, &super::dashboard::page),
        "/scan" => scan(node, &method, uri.query()),
        "/cluster/scan" => scan(node, &method, uri.query()),
        p if p.starts_with("/cluster/") => (Route::Data, seed_data(served, p, req).await),
        "/cluster" => (
            Route::Other,
            Ok(super::dashboard::cluster(node, &served.dashboard, &method, uri.query()).await),
        ),
        "/health" => read_only(Route::Health, &|| health(node)),
        "/ready" => read_only(Route::Ready, &|| ready(node)),
        "/peers" => read_only(Route::Peers, &|| peers(node)),
        "/status" => read_only(Route::Status, &|| status(node)),
        "/metrics" => read_only(Route::Metrics, &|| metrics(served)),
        "/openapi.json" => read_only(Route::Other, &super::openapi::spec),
        "/keys" => match method {
            Method::GET | Method::HEAD => (Route::Keys, keys(node, uri.query())),
            _ => (Route::Keys, Err(ApiError::method_not_allowed("GET, HEAD"))),
        },
        p => match p.strip_prefix("/data/") {
            Some(segment) => (Route::Data, data(served, segment, req).await),
            None => (
                Route::Other,
                Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("no route for {}", truncate(p, 100)),
                )),
            ),
        },
    }
}

/// The refusal for a client over `REPRAM_RATE_LIMIT`. Node-to-node routes and local
/// tools (a loopback peer with no believed `X-Forwarded-For`) are exempt.
fn rate_limited(served: &Served, remote: SocketAddr, req: &Request<Incoming>) -> Option<ApiError> {
    let node = &served.node;
    let limiter = served.server.limiter.as_ref()?;
    if req.uri().path().starts_with("/internal/") {
        return None;
    }
    let Client::Remote(client) =
        client_of(remote.ip(), req.headers(), &node.config.trusted_proxies)
    else {
        return None;
    };
    let wait = limiter.check(client, Instant::now()).err()?;
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(ApiError {
        retry_after: Some(secs.max(1)),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "rate limit of {} requests per second exceeded",
                node.config.rate_limit
            ),
        )
    })
}
