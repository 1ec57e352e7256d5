//! Per-node dashboard state: the answer cache and the last good report of every peer.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::time::Instant;

use super::poll::fan_out;
use super::report::{local_report, NodeReport};
use super::view::assemble;
use super::{CACHED_VIEWS, CACHE_TTL, STALE_LIMIT};
use crate::clock::now_ms;
use crate::node::Node;

/// One node's dashboard state: the answer cache and the last report of every peer.
/// Owned by whoever serves the node (one per node) and passed to [`super::cluster`].
#[derive(Default)]
pub struct DashState {
    /// Held while an answer is computed, so concurrent requests wait and reuse it.
    cache: tokio::sync::Mutex<HashMap<Option<String>, (Instant, Bytes)>>,
    /// Last good report per peer id, for peers that miss one round.
    last_good: Mutex<HashMap<String, (Instant, NodeReport)>>,
}

/// The cluster view, from the cache when fresh.
pub(super) async fn cluster_view(node: &Node, state: &DashState, key: Option<String>) -> Bytes {
    let mut cache = state.cache.lock().await;
    cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
    if let Some((_, body)) = cache.get(&key) {
        return body.clone();
    }
    let me = local_report(node, key.as_deref());
    let targets: Vec<(String, String)> = me
        .peers
        .iter()
        .map(|p| (p.node_id.clone(), p.address.clone()))
        .collect();
    let fetched = fan_out(&node.client, targets.clone(), key.as_deref()).await;
    let stale = remember_reports(state, &targets, &fetched);
    let view = assemble(
        me,
        fetched,
        stale,
        &node.recent_events(),
        key.as_deref(),
        now_ms(),
    );
    let body = Bytes::from(view.to_string());
    if cache.len() >= CACHED_VIEWS {
        cache.clear();
    }
    cache.insert(key, (Instant::now(), body.clone()));
    body
}

/// Keep the good reports of this round and return, for peers without one, their last
/// good report younger than [`STALE_LIMIT`] with its age in milliseconds.
pub(super) fn remember_reports(
    state: &DashState,
    targets: &[(String, String)],
    fetched: &HashMap<String, Result<NodeReport, String>>,
) -> HashMap<String, (u64, NodeReport)> {
    let now = Instant::now();
    let mut last = state.last_good.lock().unwrap_or_else(|e| e.into_inner());
    let current: HashSet<&str> = targets.iter().map(|(id, _)| id.as_str()).collect();
    last.retain(|id, (at, _)| current.contains(id.as_str()) && at.elapsed() < STALE_LIMIT);
    let mut stale = HashMap::new();
    for (id, _) in targets {
        match fetched.get(id) {
            Some(Ok(r)) if r.node_id == *id => {
                last.insert(id.clone(), (now, r.clone()));
            }
            _ => {
                if let Some((at, r)) = last.get(id) {
                    let age = now.saturating_duration_since(*at).as_millis() as u64;
                    stale.insert(id.clone(), (age, r.clone()));
                }
            }
        }
    }
    stale
}
