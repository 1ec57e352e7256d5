//! The listings: `/keys` (a page of key names) and `/scan` (the most recent keys).

use hyper::{Method, StatusCode};
use serde_json::json;

use super::error::{json_response, ApiError, Result};
use super::Resp;
use crate::http::validate::{parse_whole, query_param, truncate};
use crate::metrics::Route;
use crate::node::Node;

/// Default and largest page size of `/keys`.
const KEYS_DEFAULT_LIMIT: usize = 100;
const KEYS_MAX_LIMIT: usize = 1_000;

pub(super) fn keys(node: &Node, query: Option<&str>) -> Result<Resp> {
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

pub(super) fn scan(node: &Node, method: &Method, query: Option<&str>) -> (Route, Result<Resp>) {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return (Route::Keys, Err(ApiError::method_not_allowed("GET, HEAD")));
    }
    let answer = crate::http::listing::scan(node, query).map_err(ApiError::bad_request);
    (
        Route::Keys,
        answer.map(|a| json_response(StatusCode::OK, &a)),
    )
}
