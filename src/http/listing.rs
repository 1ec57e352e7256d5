//! `GET /scan` (also `/cluster/scan`, the seed-era route): the most recent live keys,
//! oldest first, as the Fade board and the REPRAM scripts read them.

use serde_json::{json, Value};

use super::validate::{parse_whole, query_param, truncate};
use crate::node::Node;

/// Keys `/scan` gives without `?limit=`.
pub const SCAN_DEFAULT_LIMIT: usize = 1_000;
/// Largest `?limit=` of `/scan`.
pub const SCAN_MAX_LIMIT: usize = 10_000;

/// The answer to `GET /scan?limit=N`: `{"keys": [...], "node_id": ...}`, or the reason
/// the query is refused (a 400).
pub fn scan(node: &Node, query: Option<&str>) -> Result<Value, String> {
    let limit = match query_param(query, "limit")? {
        None => SCAN_DEFAULT_LIMIT,
        Some(raw) => match parse_whole(&raw).and_then(|n| usize::try_from(n).ok()) {
            Some(n) if (1..=SCAN_MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(format!(
                    "limit must be a whole number from 1 to {SCAN_MAX_LIMIT}, got {:?}",
                    truncate(&raw, 32)
                ))
            }
        },
    };
    Ok(json!({ "keys": node.store.scan(limit), "node_id": node.id }))
}
