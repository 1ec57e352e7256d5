//! Request routing and handlers: the public API (also under `/v1/`) and the `/internal/`
//! node-to-node routes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::time::Instant;
use tracing::debug;

use super::client_addr::{client_of, Client};
use super::cors::{self, Preflight};
use super::linger::{discard_rest, Rest};
use super::upload::{self, Limits, Refusal};
use super::validate::{decode_key, parse_ttl, parse_whole, query_param, truncate};
use super::Served;
use crate::clock::now_ms;
use crate::config::HomePage;
use crate::metrics::Route;
use crate::node::{Node, ReadThrough};
use crate::store::StoreError;
use crate::transport::{CONTENT_TYPE, GOSSIP_PATH, REPLICATE_PATH, SYNC_PATH};
use crate::wire::Message;
use crate::wire::MAX_BATCH_BYTES;

type Resp = Response<Full<Bytes>>;

/// Default and largest page size of `/keys`.
const KEYS_DEFAULT_LIMIT: usize = 100;
const KEYS_MAX_LIMIT: usize = 1_000;

/// An error answer: status plus a message sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    allow: Option<&'static str>,
    retry_after: Option<u64>,
    /// Close the connection after this answer (the request body was not all read).
    close: bool,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
            retry_after: None,
            close: false,
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn method_not_allowed(allow: &'static str) -> Self {
        ApiError {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method not allowed; use {allow}"),
            )
        }
    }

    fn into_response(self) -> Resp {
        let mut resp = json_response(self.status, &json!({ "error": self.message }));
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl From<super::gate::Refusal> for ApiError {
    fn from(r: super::gate::Refusal) -> Self {
        ApiError {
            retry_after: r.retry_after,
            ..ApiError::new(r.status, r.message)
        }
    }
}

type Result<T> = std::result::Result<T, ApiError>;

fn json_response(status: StatusCode, body: &serde_json::Value) -> Resp {
    json_body_response(status, body.to_string().into_bytes())
}

/// An answer with `body`, already JSON text.
fn json_body_response(status: StatusCode, body: Vec<u8>) -> Resp {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn wire_response(msg: &Message) -> Resp {
    let mut resp = Response::new(Full::new(msg.encode()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    resp
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
                req.headers().get(header::ORIGIN).cloned()
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
    // A cheap handle (reference-counted bytes): the path can be borrowed while `req` moves.
    let uri = req.uri().clone();
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

fn health(node: &Node) -> Resp {
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
fn ready(node: &Node) -> Resp {
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

fn peers(node: &Node) -> Resp {
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

fn status(node: &Node) -> Resp {
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

fn metrics(served: &Served) -> Resp {
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

fn keys(node: &Node, query: Option<&str>) -> Result<Resp> {
    let prefix = query_param(query, "prefix").map_err(ApiError::bad_request)?;
    let cursor = query_param(query, "cursor").map_err(ApiError::bad_request)?;
    let limit = match query_param(query, "limit").map_err(ApiError::bad_request)? {
        None => KEYS_DEFAULT_LIMIT,
        Some(raw) => match parse_whole(&raw).and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=KEYS_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {KEYS_MAX_LIMIT}, got {:?}",
                    truncate(&raw, 32)
                )))
            }
        },
    };
    let cursor = cursor.filter(|c| !c.is_empty());
    let (keys, next) = node
        .store
        .keys(prefix.as_deref().unwrap_or(""), cursor.as_deref(), limit);
    Ok(json_response(
        StatusCode::OK,
        &json!({ "keys": keys, "next_cursor": next }),
    ))
}

fn scan(node: &Node, method: &Method, query: Option<&str>) -> (Route, Result<Resp>) {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return (Route::Keys, Err(ApiError::method_not_allowed("GET, HEAD")));
    }
    let answer = super::listing::scan(node, query).map_err(ApiError::bad_request);
    (
        Route::Keys,
        answer.map(|a| json_response(StatusCode::OK, &a)),
    )
}

/// The seed-era REPRAM routes `PUT /cluster/put/{key}` and `GET`/`HEAD
/// /cluster/get/{key}`: `/data/{key}` under other names.
async fn seed_data(served: &Served, path: &str, req: Request<Incoming>) -> Result<Resp> {
    if let Some(segment) = path.strip_prefix("/cluster/put/") {
        return match *req.method() {
            Method::PUT => data(served, segment, req).await,
            _ => Err(ApiError::method_not_allowed("PUT")),
        };
    }
    if let Some(segment) = path.strip_prefix("/cluster/get/") {
        return match *req.method() {
            Method::GET | Method::HEAD => data(served, segment, req).await,
            _ => Err(ApiError::method_not_allowed("GET, HEAD")),
        };
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}", truncate(path, 100)),
    ))
}

async fn data(served: &Served, segment: &str, req: Request<Incoming>) -> Result<Resp> {
    let node = &served.node;
    match *req.method() {
        Method::GET | Method::HEAD => {
            let key = decode_key(segment).map_err(ApiError::bad_request)?;
            match get_value(node, &key) {
                Err(e) if e.status == StatusCode::NOT_FOUND && !node.is_caught_up() => {
                    match node.read_through(&key).await {
                        ReadThrough::Found => get_value(node, &key),
                        ReadThrough::Missing => Err(e),
                        ReadThrough::Busy => Err(ApiError {
                            retry_after: Some(1),
                            ..ApiError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "catching up with the cluster; retry shortly",
                            )
                        }),
                    }
                }
                other => other,
            }
        }
        Method::PUT => {
            let key = decode_key(segment).map_err(ApiError::bad_request)?;
            put_value(served, key.into_owned(), req).await
        }
        _ => Err(ApiError::method_not_allowed("GET, HEAD, PUT")),
    }
}

fn get_value(node: &Node, key: &str) -> Result<Resp> {
    let Some(rec) = node.store.get(key) else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "key not found"));
    };
    let remaining = rec.remaining_ttl_s(Instant::now());
    // Room for these four and the two that `handle` adds, so the map never grows.
    let mut h = HeaderMap::with_capacity(8);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    let (created, original, remaining) = RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        (
            recent.created.get(rec.created_ms / 1000, rfc3339_seconds),
            recent.original.get(rec.original_ttl_s(), number),
            recent.remaining.get(remaining, number),
        )
    });
    if let Some(v) = created {
        h.insert(X_CREATED_AT, v);
    }
    h.extend([(X_ORIGINAL_TTL, original), (X_REMAINING_TTL, remaining)]);
    let mut resp = Response::new(Full::new(rec.value));
    *resp.headers_mut() = h;
    Ok(resp)
}

const X_CREATED_AT: HeaderName = HeaderName::from_static("x-created-at");
const X_ORIGINAL_TTL: HeaderName = HeaderName::from_static("x-original-ttl");
const X_REMAINING_TTL: HeaderName = HeaderName::from_static("x-remaining-ttl");

/// The header values of the last GET answer this thread built. Successive reads mostly
/// repeat them (the same TTLs, creation times within a second), and a clone of a value
/// costs a reference count where formatting one costs a formatter run and an allocation.
#[derive(Default)]
struct Recent {
    created: Memo<Option<HeaderValue>>,
    original: Memo<HeaderValue>,
    remaining: Memo<HeaderValue>,
}

/// One remembered `(input, value)`.
struct Memo<V>(Option<(u64, V)>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo(None)
    }
}

impl<V: Clone> Memo<V> {
    /// The value for `input`: the remembered one if it was made from `input`, else `make`'s.
    fn get(&mut self, input: u64, make: fn(u64) -> V) -> V {
        match &self.0 {
            Some((had, value)) if *had == input => value.clone(),
            _ => {
                let value = make(input);
                self.0 = Some((input, value.clone()));
                value
            }
        }
    }
}

thread_local! {
    static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::default();
}

fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp, formatted on the stack (one
/// allocation: the header value itself).
/// `None` past what RFC 3339 can show (year 9999), which only a faulty peer could send.
fn rfc3339_seconds(secs: u64) -> Option<HeaderValue> {
    use std::fmt::Write;
    /// A fixed buffer that refuses (rather than panics on) text that does not fit.
    struct Stack {
        buf: [u8; 32],
        len: usize,
    }
    impl Write for Stack {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            self.buf
                .get_mut(self.len..end)
                .ok_or(std::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    let mut out = Stack {
        buf: [0; 32],
        len: 0,
    };
    write!(out, "{}", humantime::format_rfc3339_seconds(at)).ok()?;
    HeaderValue::from_bytes(&out.buf[..out.len]).ok()
}

async fn put_value(served: &Served, key: String, req: Request<Incoming>) -> Result<Resp> {
    let node = &served.node;
    let (parts, mut body) = req.into_parts();
    let (mut received, ttl) = match receive_value(served, &key, &parts, &mut body).await {
        Ok(received) => received,
        Err(mut e) if e.status == StatusCode::REQUEST_TIMEOUT => {
            // Too slow to be worth waiting for any longer.
            e.close = true;
            return Err(e);
        }
        Err(mut e) => {
            // Answered before the body was all read: the client must still see it.
            e.close = discard_rest(&parts.headers, body) != Rest::Nothing;
            return Err(e);
        }
    };
    // The reservations in `received` last until the write is stored.
    let value = received.take_value();
    match node.put(key.clone(), value, ttl).await {
        Ok(outcome) => {
            let (status, word) = if outcome.durable() {
                (StatusCode::CREATED, "created")
            } else {
                (StatusCode::ACCEPTED, "accepted")
            };
            // Fields in the order `json!` would sort them, so the answer is unchanged.
            #[derive(serde::Serialize)]
            struct Answer<'a> {
                acks: usize,
                key: &'a str,
                node_id: &'a str,
                quorum: usize,
                status: &'a str,
                ttl: u64,
            }
            let answer = Answer {
                acks: outcome.acks,
                key: &key,
                node_id: &node.id,
                quorum: outcome.quorum,
                status: word,
                ttl,
            };
            // Serializing plain fields into a Vec cannot fail.
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            Ok(json_body_response(status, body))
        }
        Err(e @ StoreError::Full { .. }) => Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            e.to_string(),
        )),
    }
}

/// The TTL of a PUT and its value, received under the storage budget and the process's
/// receive cap (both reserved before reading; see [`upload`]).
async fn receive_value(
    served: &Served,
    key: &str,
    parts: &hyper::http::request::Parts,
    body: &mut Incoming,
) -> Result<(upload::Received, u64)> {
    // `?ttl=` wins over `X-TTL`, but a bad one of either is refused.
    let query_ttl = match query_param(parts.uri.query(), "ttl").map_err(ApiError::bad_request)? {
        Some(raw) => Some(parse_ttl(&raw).map_err(ApiError::bad_request)?),
        None => None,
    };
    let header_ttl = match parts.headers.get("x-ttl") {
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| ApiError::bad_request("X-TTL header is not text"))?;
            Some(parse_ttl(raw).map_err(|e| ApiError::bad_request(format!("X-TTL: {e}")))?)
        }
        None => None,
    };
    let node = &served.node;
    let ttl = node.config.clamp_ttl(query_ttl.or(header_ttl));
    let max = node.config.max_value_bytes;
    let limits = Limits {
        max,
        key,
        store: &node.store,
        receiving: &served.server.receiving,
        timeout: node.tuning.body_timeout,
    };
    let received = upload::receive(body, content_length(&parts.headers), limits)
        .await
        .map_err(|refusal| match refusal {
            Refusal::TooLarge => too_large(max),
            Refusal::Full(e) => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, e.to_string()),
            Refusal::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "receiving as many uploads as this server may hold at once; retry shortly",
                )
            },
            Refusal::TimedOut => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            ),
            Refusal::Unreadable(e) => {
                ApiError::bad_request(format!("could not read request body: {e}"))
            }
        })?;
    Ok((received, ttl))
}

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("value larger than the limit of {max} bytes"),
    )
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Read a whole body of at most `max` bytes within the body timeout.
async fn read_body(node: &Node, body: Incoming, max: usize) -> Result<Bytes> {
    let collected =
        tokio::time::timeout(node.tuning.body_timeout, Limited::new(body, max).collect())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                )
            })?;
    match collected {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(max))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read request body: {e}"
        ))),
    }
}

async fn internal_route(
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
    let at = super::gate::Arrival {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_rfc3339_in_whole_utc_seconds() {
        let text = |s| rfc3339_seconds(s).map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(text(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(text(1_700_000_000).as_deref(), Some("2023-11-14T22:13:20Z"));
        // Beyond what the format can show: no header rather than a panic (the year 10000
        // and later make the formatter fail).
        assert_eq!(
            text(253_402_300_799).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(text(253_402_300_800), None);
        assert_eq!(text(u64::MAX), None);
    }

    #[test]
    fn a_memo_gives_the_value_of_its_input_only() {
        let mut memo = Memo::default();
        assert_eq!(memo.get(600, number), "600");
        assert_eq!(memo.get(600, |_| unreachable!("remembered")), "600");
        assert_eq!(memo.get(599, number), "599");
        assert_eq!(memo.get(600, number), "600");
    }
}
