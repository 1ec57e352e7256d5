//! Peer polling: every peer's report fetched concurrently within one deadline, over the
//! node's own peer client.

use std::collections::HashMap;

use futures::StreamExt;
use hyper::StatusCode;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::time::Instant;

use super::report::NodeReport;
use super::{FANOUT_DEADLINE, FETCH_CONCURRENCY, FETCH_TIMEOUT, MAX_REPORT_BYTES};
use crate::transport::{CallError, PeerClient};

/// Fetch every peer's report, concurrently and within the fan-out deadline. Peers that
/// did not answer in time are absent from the result.
pub(super) async fn fan_out(
    client: &PeerClient,
    peers: Vec<(String, String)>,
    key: Option<&str>,
) -> HashMap<String, Result<NodeReport, String>> {
    let deadline = Instant::now() + FANOUT_DEADLINE;
    let path = match key {
        Some(k) => format!(
            "/cluster?scope=node&key={}",
            utf8_percent_encode(k, NON_ALPHANUMERIC)
        ),
        None => "/cluster?scope=node".to_string(),
    };
    let path = &path;
    let mut reports = futures::stream::iter(peers)
        .map(|(id, addr)| async move { (id, fetch_report(client, &addr, path).await) })
        .buffer_unordered(FETCH_CONCURRENCY);
    let mut out = HashMap::new();
    while let Ok(Some((id, report))) = tokio::time::timeout_at(deadline, reports.next()).await {
        out.insert(id, report);
    }
    out
}

/// One peer's report, or why there is none (shown on the page).
async fn fetch_report(client: &PeerClient, addr: &str, path: &str) -> Result<NodeReport, String> {
    let (status, body) = match client
        .get(addr, path, MAX_REPORT_BYTES, FETCH_TIMEOUT)
        .await
    {
        Ok(answer) => answer,
        Err(CallError::Timeout) => return Err("no answer in time".to_string()),
        Err(CallError::Http(e)) => return Err(e),
        Err(e) => return Err(e.to_string()),
    };
    if status != StatusCode::OK {
        return Err(format!("answered {status}"));
    }
    serde_json::from_slice::<NodeReport>(&body).map_err(|e| format!("bad report: {e}"))
}
