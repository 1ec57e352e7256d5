//! Peer polling: every peer's report fetched concurrently within one deadline.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use tokio::time::Instant;

use super::report::NodeReport;
use super::{FANOUT_DEADLINE, FETCH_CONCURRENCY, FETCH_TIMEOUT, MAX_REPORT_BYTES};

pub(super) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A pooled client for peer reports: quick to give up on a peer that does not connect.
pub(super) fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(300)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(2)
        .build(connector)
}

/// Fetch every peer's report, concurrently and within the fan-out deadline. Peers that
/// did not answer in time are absent from the result.
pub(super) async fn fan_out(
    client: &HttpClient,
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
        .map(|(id, addr)| async move {
            let url = format!("http://{addr}{path}");
            (id, fetch_report(client, &url).await)
        })
        .buffer_unordered(FETCH_CONCURRENCY);
    let mut out = HashMap::new();
    while let Ok(Some((id, report))) = tokio::time::timeout_at(deadline, reports.next()).await {
        out.insert(id, report);
    }
    out
}

async fn fetch_report(client: &HttpClient, url: &str) -> Result<NodeReport, String> {
    let call = async {
        let req = Request::get(url)
            .body(Empty::new())
            .map_err(|e| format!("bad address: {e}"))?;
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_REPORT_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("answered {status}"));
        }
        serde_json::from_slice::<NodeReport>(&body).map_err(|e| format!("bad report: {e}"))
    };
    tokio::time::timeout(FETCH_TIMEOUT, call)
        .await
        .unwrap_or_else(|_| Err("no answer in time".to_string()))
}
