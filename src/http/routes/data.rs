//! The data routes: read and write one key (`/data/{key}` and the seed-era names).

use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::time::Instant;

use super::body::content_length;
use super::error::{json_body_response, too_large, ApiError, Result};
use super::header_memo::{number, rfc3339_seconds, RECENT};
use super::Resp;
use crate::http::linger::{discard_rest, Rest};
use crate::http::upload::{self, Limits, Refusal};
use crate::http::validate::{decode_key, parse_ttl, query_param, truncate};
use crate::http::Served;
use crate::node::{Node, ReadThrough};
use crate::store::StoreError;

/// The seed-era REPRAM routes `PUT /cluster/put/{key}` and `GET`/`HEAD
/// /cluster/get/{key}`: `/data/{key}` under other names.
pub(super) async fn seed_data(served: &Served, path: &str, req: Request<Incoming>) -> Result<Resp> {
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

pub(super) async fn data(served: &Served, segment: &str, req: Request<Incoming>) -> Result<Resp> {
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

#[inline]
pub(super) fn get_value(node: &Node, key: &str) -> Result<Resp> {
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
    // The request's head shares hyper's read buffer: held while the write waits for its
    // quorum, it makes hyper allocate a fresh buffer for every keep-alive check.
    drop((parts, body));
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
