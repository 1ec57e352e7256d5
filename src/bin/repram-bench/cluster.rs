//! Watching a running cluster: mesh formation, writing keys and waiting for replicas,
//! key counts, metrics and live peers.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::bench::Bench;
use crate::children::Server;
use crate::stats::{round1, round3};

/// What `wait_mesh` saw of one node, in seconds since the process started.
#[derive(Clone, Default)]
pub(crate) struct NodeView {
    pub(crate) first_answer: Option<f64>,
    pub(crate) full_at: Option<f64>,
    pub(crate) largest: usize,
}

/// Distinct peers other than itself in a `/peers` answer.
pub(crate) fn peer_count(v: &Value) -> usize {
    let own = v["node_id"].as_str().unwrap_or("");
    let ids: BTreeSet<&str> = v["peers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["node_id"].as_str()).collect())
        .unwrap_or_default();
    ids.iter().filter(|id| **id != own).count()
}

impl Bench {
    /// Poll every node's `/peers` (each node on its own, so a slow node does not hold up
    /// the others) until each lists all the others; a node that got there is not polled
    /// again. Then check once more that all of them do at the same moment.
    pub(crate) async fn wait_mesh(
        &self,
        server: &mut Server,
        timeout: Duration,
    ) -> Result<Value, String> {
        let ports = server.ports();
        let n = ports.len();
        let want = n - 1;
        let started = server.started;
        let deadline = started + timeout;
        let interval = if n > 20 {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(2)
        };
        let views: RefCell<Vec<NodeView>> = RefCell::new(vec![NodeView::default(); n]);
        let poll_node = |i: usize, port: u16| {
            let views = &views;
            async move {
                while Instant::now() < deadline {
                    // `/health` carries the live peer count in a few bytes; polling the
                    // full `/peers` list of every node would cost the servers (and this
                    // client) more CPU than the mesh being measured.
                    let r = self
                        .http
                        .json_timeout(port, "/health", Duration::from_secs(1))
                        .await;
                    let now = started.elapsed().as_secs_f64();
                    if let Some(seen) = r.ok().and_then(|v| v["peers"].as_u64()) {
                        let seen = usize::try_from(seen).unwrap_or(usize::MAX);
                        let mut views = views.borrow_mut();
                        let view = &mut views[i];
                        view.first_answer.get_or_insert(now);
                        view.largest = view.largest.max(seen);
                        if seen >= want {
                            view.full_at = Some(now);
                            return;
                        }
                    }
                    tokio::time::sleep(interval).await;
                }
            }
        };
        let all = join_all(ports.iter().enumerate().map(|(i, p)| poll_node(i, *p)));
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Err(e) = server.check_alive() {
                    return e;
                }
            }
        };
        tokio::select! {
            _ = all => {}
            e = watchdog => return Err(e),
        }
        let views = views.into_inner();
        let first_answer = views.iter().filter_map(|v| v.first_answer).reduce(f64::min);
        let answering = views.iter().filter(|v| v.first_answer.is_some()).count();
        let full: Vec<f64> = views.iter().filter_map(|v| v.full_at).collect();
        if full.len() < n {
            let mut answered_views: Vec<usize> = views
                .iter()
                .filter(|v| v.first_answer.is_some())
                .map(|v| v.largest)
                .collect();
            answered_views.sort_unstable();
            return Ok(json!({
                "converged": false,
                "timeout_s": timeout.as_secs_f64(),
                "nodes_answering": answering,
                "nodes_with_full_view": full.len(),
                "views_of_answering_nodes": {
                    "min": answered_views.first(),
                    "median": answered_views.get(answered_views.len() / 2),
                    "max": answered_views.last(),
                },
                "first_answer_s": first_answer.map(round3),
            }));
        }
        let converged = full.iter().copied().fold(0.0, f64::max);
        let all_answering = views
            .iter()
            .filter_map(|v| v.first_answer)
            .fold(0.0, f64::max);
        let confirm = join_all(
            ports
                .iter()
                .map(|p| self.http.json_timeout(*p, "/peers", Duration::from_secs(2))),
        )
        .await;
        let stable = confirm
            .iter()
            .all(|v| v.as_ref().map(|v| peer_count(v) >= want).unwrap_or(false));
        Ok(json!({
            "converged": true,
            "seconds": round3(converged),
            "first_answer_s": first_answer.map(round3),
            "all_answering_s": round3(all_answering),
            "full_view_confirmed_after": stable,
        }))
    }

    /// Write `count` keys `{prefix}{i:07}` with 100-byte values, `concurrency` at a time,
    /// round-robin over `ports`.
    pub(crate) async fn write_keys(
        &self,
        ports: &[u16],
        prefix: &str,
        count: usize,
        ttl: u64,
        concurrency: usize,
    ) -> Value {
        self.write_values(ports, prefix, count, ttl, concurrency, &self.value)
            .await
    }

    /// [`Bench::write_keys`] with `value` under every key.
    pub(crate) async fn write_values(
        &self,
        ports: &[u16],
        prefix: &str,
        count: usize,
        ttl: u64,
        concurrency: usize,
        value: &Bytes,
    ) -> Value {
        let next = Cell::new(0usize);
        let (created, accepted, other, failed) = (
            Cell::new(0u64),
            Cell::new(0u64),
            Cell::new(0u64),
            Cell::new(0u64),
        );
        let first_error: std::cell::RefCell<Option<String>> = Default::default();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(120);
        let worker = || async {
            loop {
                let i = next.get();
                if i >= count || Instant::now() > deadline {
                    break;
                }
                next.set(i + 1);
                let port = ports[i % ports.len()];
                let path = format!("/data/{prefix}{i:07}?ttl={ttl}");
                match self.http.put(port, &path, value.clone()).await {
                    Ok(StatusCode::CREATED) => created.set(created.get() + 1),
                    Ok(StatusCode::ACCEPTED) => accepted.set(accepted.get() + 1),
                    Ok(s) => {
                        other.set(other.get() + 1);
                        first_error
                            .borrow_mut()
                            .get_or_insert(format!("PUT answered {s}"));
                    }
                    Err(e) => {
                        failed.set(failed.get() + 1);
                        first_error.borrow_mut().get_or_insert(e);
                    }
                }
            }
        };
        join_all((0..concurrency).map(|_| worker())).await;
        let secs = t0.elapsed().as_secs_f64();
        let done = created.get() + accepted.get() + other.get() + failed.get();
        json!({
            "keys": count,
            "sent": done,
            "seconds": round3(secs),
            "writes_per_s": round1(done as f64 / secs),
            "created_201": created.get(),
            "accepted_202": accepted.get(),
            "other_status": other.get(),
            "failed": failed.get(),
            "first_error": first_error.into_inner(),
        })
    }

    /// Wait until every port's `/status` shows at least `keys` keys.
    pub(crate) async fn wait_keys(
        &self,
        server: &mut Server,
        ports: &[u16],
        keys: u64,
        timeout: Duration,
    ) -> Result<(bool, f64, Vec<u64>), String> {
        let t0 = Instant::now();
        loop {
            server.check_alive()?;
            let counts = self.key_counts(ports).await;
            if counts.iter().all(|c| *c >= keys) {
                return Ok((true, t0.elapsed().as_secs_f64(), counts));
            }
            if t0.elapsed() > timeout {
                return Ok((false, t0.elapsed().as_secs_f64(), counts));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub(crate) async fn key_counts(&self, ports: &[u16]) -> Vec<u64> {
        join_all(ports.iter().map(|p| self.http.json(*p, "/status")))
            .await
            .into_iter()
            .map(|r| r.ok().and_then(|v| v["keys"].as_u64()).unwrap_or(0))
            .collect()
    }

    /// Counters of node `port`'s `/metrics` worth reporting after a load run.
    pub(crate) async fn node_metrics(&self, port: u16) -> Value {
        let Ok((_, body)) = self.http.get(port, "/metrics").await else {
            return Value::Null;
        };
        let text = String::from_utf8_lossy(&body);
        let mut statuses = serde_json::Map::new();
        let mut counters = serde_json::Map::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if name.starts_with("repram_http_requests_total{")
                && name.to_ascii_lowercase().contains("route=\"data\"")
            {
                if let Some(s) = name.split("status=\"").nth(1) {
                    let code = s.split('"').next().unwrap_or("?").to_string();
                    statuses.insert(code, json!(value));
                }
            } else if let Some(short) = name.strip_prefix("repram_replication_") {
                if short.ends_with("_total") {
                    counters.insert(format!("replication_{short}"), json!(value));
                }
            }
        }
        json!({ "data_requests_by_status": statuses, "counters": counters })
    }

    /// Live peers the node on `port` counts (its `/health`), `None` when it does not answer.
    pub(crate) async fn live_peers(&self, port: u16) -> Option<u64> {
        let v = self
            .http
            .json_timeout(port, "/health", Duration::from_secs(1))
            .await
            .ok()?;
        v["peers"].as_u64()
    }

    /// Poll the nodes on `ports` every 20 ms until each counts `want` live peers: the
    /// seconds since `since`, or `None` at `timeout`.
    pub(crate) async fn wait_peers(
        &self,
        ports: &[u16],
        want: u64,
        since: Instant,
        timeout: Duration,
    ) -> Option<f64> {
        while since.elapsed() < timeout {
            let mut all = true;
            for &p in ports {
                if self.live_peers(p).await != Some(want) {
                    all = false;
                    break;
                }
            }
            if all {
                return Some(round3(since.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Waits until every node of `ports` reports 0 keys and 0 bytes: the seconds it took,
    /// or an error with what the nodes still hold after `limit`.
    pub(crate) async fn wait_empty(
        &self,
        server: &mut Server,
        ports: &[u16],
        limit: Duration,
    ) -> Result<f64, String> {
        let t0 = Instant::now();
        loop {
            server.check_alive()?;
            let held: Vec<(u64, u64)> =
                join_all(ports.iter().map(|p| self.http.json(*p, "/status")))
                    .await
                    .into_iter()
                    .map(|r| match r {
                        Ok(v) => (
                            v["keys"].as_u64().unwrap_or(u64::MAX),
                            v["bytes"].as_u64().unwrap_or(u64::MAX),
                        ),
                        Err(_) => (u64::MAX, u64::MAX),
                    })
                    .collect();
            if held.iter().all(|&(k, b)| k == 0 && b == 0) {
                return Ok(t0.elapsed().as_secs_f64());
            }
            if t0.elapsed() > limit {
                return Err(format!(
                    "nodes still hold (keys, bytes) {held:?} {limit:?} after the load stopped"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
