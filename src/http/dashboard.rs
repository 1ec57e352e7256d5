//! The live dashboard: `GET /` serves one self-contained HTML page (inline JS and CSS, no
//! CDN, no build step) and `GET /cluster` the JSON it polls about once a second.
//!
//! `/cluster` is this node's view of the cluster: its own membership and recent
//! membership events, plus each live peer's own report (`/cluster?scope=node`), fetched
//! server-side and concurrently — at most [`FETCH_CONCURRENCY`] at once, each within
//! [`FETCH_TIMEOUT`], all within [`FANOUT_DEADLINE`]. The answer is cached for
//! [`CACHE_TTL`] and computed by one request at a time per node, so any number of open
//! dashboards cost the peers about one small request per second each. The browser only
//! ever talks to the node that served the page.
//!
//! `?key=K` adds, per node, whether it holds `K` (the page's "watch a key appear on every
//! node"). `?scope=node` answers with this node's report alone, without asking anyone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::validate::{check_key, query_param, truncate};
use crate::clock::now_ms;
use crate::membership::{fmt_addr, split_addr, Peer};
use crate::metrics::{RequestLabels, Route};
use crate::node::{MembershipEvent, Node};

/// How long a computed `/cluster` answer is reused.
pub const CACHE_TTL: Duration = Duration::from_millis(900);
/// Most peer reports fetched at the same time by one node. Each goes to another peer, so
/// this bounds only this node's sockets; with 100 nodes in one busy process each report
/// waits tens of milliseconds for the runtime, and 16 at a time took 0.3–1.8 s in all.
pub const FETCH_CONCURRENCY: usize = 64;
/// Deadline of one peer report.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1_200);
/// Deadline of the whole fan-out; peers that have not answered by then are shown as such.
pub const FANOUT_DEADLINE: Duration = Duration::from_millis(1_500);
/// A peer that did not answer this time is shown with its last answer (marked stale)
/// if that is at most this old.
pub const STALE_LIMIT: Duration = Duration::from_secs(30);
/// Largest peer report accepted.
const MAX_REPORT_BYTES: usize = 4 << 20;
/// Nodes this node saw die or leave stay on the picture this long (milliseconds).
pub const GHOST_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most membership events sent to the page (newest first).
pub const EVENTS_SHOWN: usize = 50;
/// Most distinct `?key=` answers cached at once per node.
const CACHED_VIEWS: usize = 8;

/// The page; `{{NONCE}}` is replaced per response by the CSP nonce.
const PAGE: &str = include_str!("dashboard.html");
const NONCE_MARK: &str = "{{NONCE}}";

type Resp = Response<Full<Bytes>>;
type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// `GET /`: the dashboard page, with a strict Content-Security-Policy (scripts and styles
/// only from this response, by nonce; network only to this origin).
pub fn page() -> Resp {
    html_page(PAGE)
}

/// A self-contained page from `template`, its `{{NONCE}}` marks replaced by a fresh
/// nonce that the Content-Security-Policy names.
pub fn html_page(template: &str) -> Resp {
    let nonce: String = {
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| format!("{:02x}", rng.gen::<u8>()))
            .collect()
    };
    let html = template.replace(NONCE_MARK, &nonce);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // no-store and nosniff come from `cors::secure`.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

/// `GET /cluster[?key=K][&scope=node]`: this node's view of the cluster as JSON (see the
/// module documentation). Errors are JSON `{"error": …}` like every other route.
pub async fn cluster(node: &Arc<Node>, method: &Method, query: Option<&str>) -> Resp {
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
        None | Some("" | "cluster") => json_bytes(cluster_view(node, key).await),
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

/// A peer as one node sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerView {
    /// Its node id.
    pub node_id: String,
    /// `host:port` this node reaches it at.
    pub address: String,
    /// Membership state (`alive`, `suspect`, …).
    pub state: String,
    /// Its clock minus this node's, ms, as this node last measured it (see
    /// [`crate::skew`]); absent until measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skew_ms: Option<i64>,
}

/// Counters a node has accumulated since it started; the page turns their differences
/// between polls into rates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Client PUTs this node accepted (201 or 202).
    pub writes: u64,
    /// Entries from peers (replication and catch-up) that changed its store.
    pub applied: u64,
    /// Replication batches its peers confirmed.
    pub repl_batches: u64,
    /// Entries in those batches.
    pub repl_entries: u64,
    /// Replication batches that failed.
    pub repl_failures: u64,
    /// Writes not queued for a peer because its queue was full.
    pub repl_dropped: u64,
    /// Sum of confirmed batch round trips, seconds.
    pub repl_seconds_sum: f64,
    /// Number of confirmed batch round trips measured.
    pub repl_seconds_count: u64,
    /// Sum of replication lags (write at its origin to arrival here) of the entries
    /// received, seconds.
    pub lag_seconds_sum: f64,
    /// Number of replication lags measured.
    pub lag_seconds_count: u64,
    /// Writes waiting in its replication queues right now (a gauge, not a counter).
    pub queue: u64,
    /// Entries changed by anti-entropy (repairs and catch-up).
    pub repairs: u64,
}

/// What one node says about itself (`/cluster?scope=node`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeReport {
    /// Its node id.
    pub node_id: String,
    /// The address it advertises (may be a wildcard bind address).
    pub address: String,
    /// Its port.
    pub port: u16,
    /// Seconds since it started.
    pub uptime_s: u64,
    /// True once its first discovery round finished.
    pub ready: bool,
    /// True once it started shutting down.
    pub stopping: bool,
    /// Live keys held.
    pub keys: u64,
    /// Bytes of keys and values held.
    pub bytes: u64,
    /// Its memory budget.
    pub max_bytes: u64,
    /// Its live peers.
    pub peers: Vec<PeerView>,
    /// Its counters.
    pub counters: Counters,
    /// Whether it holds the key asked about (absent when none was asked about).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_key: Option<bool>,
    /// Its software version.
    pub version: String,
}

/// The state string of a live peer in this node's membership (`alive` or `suspect`).
fn peer_state(peer: &Peer) -> &'static str {
    peer.state()
}

/// This node's own report, from local state only.
pub fn local_report(node: &Node, key: Option<&str>) -> NodeReport {
    let peers = node
        .membership()
        .peers()
        .map(|p| PeerView {
            node_id: p.info.id.clone(),
            address: p.addr(),
            state: peer_state(p).to_string(),
            skew_ms: node.skew.get(&p.info.id).map(|s| s.skew_ms),
        })
        .collect();
    let host = node
        .config
        .advertise_host
        .clone()
        .unwrap_or_else(|| node.config.bind_addr.to_string());
    let m = &node.metrics;
    let count = |status: u16| {
        m.requests
            .get(&RequestLabels {
                route: Route::Data,
                status,
            })
            .map(|c| c.get())
            .unwrap_or(0)
    };
    let text = m.render();
    let (repl_seconds_sum, repl_seconds_count) =
        histogram_totals(&text, "repram_replication_batch_seconds");
    let (lag_seconds_sum, lag_seconds_count) =
        histogram_totals(&text, "repram_replication_lag_seconds");
    NodeReport {
        node_id: node.id.clone(),
        address: fmt_addr(&host, node.port),
        port: node.port,
        uptime_s: node.uptime_s(),
        ready: node.is_ready(),
        stopping: node.is_stopping(),
        keys: node.store.len() as u64,
        bytes: node.store.bytes(),
        max_bytes: node.store.max_bytes(),
        peers,
        counters: Counters {
            writes: count(201) + count(202),
            applied: m.entries_applied.get(),
            repl_batches: m.replication_batches.get(),
            repl_entries: m.replication_entries.get(),
            repl_failures: m.replication_failures.get(),
            repl_dropped: m.replication_dropped.get(),
            repl_seconds_sum,
            repl_seconds_count,
            lag_seconds_sum,
            lag_seconds_count,
            queue: node.replicator.queued() as u64,
            repairs: m.anti_entropy_repairs.get(),
        },
        has_key: key.map(|k| node.store.get(k).is_some()),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// `(sum, count)` of histogram `name` in a Prometheus text exposition (0 when absent).
fn histogram_totals(text: &str, name: &str) -> (f64, u64) {
    let mut sum = 0.0;
    let mut count = 0;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if let Some(v) = rest.strip_prefix("_sum ") {
            sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = rest.strip_prefix("_count ") {
            count = v.trim().parse().unwrap_or(0);
        }
    }
    (sum, count)
}

/// Per-node dashboard state: the HTTP client for peer reports, the answer cache and the
/// last report of every peer.
struct DashState {
    client: HttpClient,
    /// Held while an answer is computed, so concurrent requests wait and reuse it.
    cache: tokio::sync::Mutex<HashMap<Option<String>, (Instant, Bytes)>>,
    /// Last good report per peer id, for peers that miss one round.
    last_good: Mutex<HashMap<String, (Instant, NodeReport)>>,
}

/// Dashboard state of every node of this process, found by node identity. Entries of
/// nodes that no longer exist are dropped on the next lookup.
fn state_for(node: &Arc<Node>) -> Arc<DashState> {
    type States = Mutex<Vec<(Weak<Node>, Arc<DashState>)>>;
    static STATES: OnceLock<States> = OnceLock::new();
    let mut states = STATES
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    states.retain(|(w, _)| w.strong_count() > 0);
    if let Some((_, s)) = states
        .iter()
        .find(|(w, _)| std::ptr::eq(w.as_ptr(), Arc::as_ptr(node)))
    {
        return s.clone();
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_millis(300)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(2)
        .build(connector);
    let state = Arc::new(DashState {
        client,
        cache: tokio::sync::Mutex::new(HashMap::new()),
        last_good: Mutex::new(HashMap::new()),
    });
    states.push((Arc::downgrade(node), state.clone()));
    state
}

/// The cluster view, from the cache when fresh.
async fn cluster_view(node: &Arc<Node>, key: Option<String>) -> Bytes {
    let state = state_for(node);
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
    let fetched = fan_out(&state.client, targets.clone(), key.as_deref()).await;
    let stale = remember_reports(&state, &targets, &fetched);
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
fn remember_reports(
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

/// Fetch every peer's report, concurrently and within the fan-out deadline. Peers that
/// did not answer in time are absent from the result.
async fn fan_out(
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

/// One node on the picture.
struct Row {
    node_id: String,
    address: String,
    port: u16,
    state: String,
    is_self: bool,
    report: Option<NodeReport>,
    /// False when `report` is an older answer (or absent).
    fresh: bool,
    /// Age of a stale `report`, milliseconds.
    stale_ms: Option<u64>,
    error: Option<String>,
    /// When this node saw it die or leave (wall-clock ms).
    since_ms: Option<u64>,
}

/// Build the `/cluster` JSON from this node's report, its peers' reports of this round
/// (by peer id), older reports of peers that missed this round (age in ms, report), and
/// its membership events. Pure, so it is tested without sockets.
pub fn assemble(
    me: NodeReport,
    mut fetched: HashMap<String, Result<NodeReport, String>>,
    mut stale: HashMap<String, (u64, NodeReport)>,
    events: &[MembershipEvent],
    key: Option<&str>,
    now_ms: u64,
) -> Value {
    let self_id = me.node_id.clone();
    // Clock skew of each node as this node measured it.
    let skews: HashMap<String, i64> = me
        .peers
        .iter()
        .filter_map(|p| Some((p.node_id.clone(), p.skew_ms?)))
        .collect();
    // How the others reach this node is a better address than a wildcard bind address.
    let self_address = fetched
        .values()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|r| r.peers.iter())
        .find(|p| p.node_id == self_id)
        .map(|p| p.address.clone())
        .unwrap_or_else(|| me.address.clone());
    let mut rows = vec![Row {
        node_id: self_id.clone(),
        address: self_address,
        port: me.port,
        state: if me.stopping { "leaving" } else { "alive" }.to_string(),
        is_self: true,
        report: None,
        fresh: true,
        stale_ms: None,
        error: None,
        since_ms: None,
    }];
    for p in &me.peers {
        let (report, error) = match fetched.remove(&p.node_id) {
            Some(Ok(r)) if r.node_id == p.node_id => (Some(r), None),
            Some(Ok(r)) => (
                None,
                Some(format!("answered as {}", truncate(&r.node_id, 80))),
            ),
            Some(Err(e)) => (None, Some(e)),
            None => (None, Some("no answer in time".to_string())),
        };
        let fresh = report.is_some();
        let (report, stale_ms) = match report {
            Some(r) => (Some(r), None),
            None => match stale.remove(&p.node_id) {
                // An old answer says nothing about the key asked about now.
                Some((age, r)) => (Some(NodeReport { has_key: None, ..r }), Some(age)),
                None => (None, None),
            },
        };
        rows.push(Row {
            node_id: p.node_id.clone(),
            address: p.address.clone(),
            port: split_addr(&p.address).map(|(_, port)| port).unwrap_or(0),
            state: match &report {
                Some(r) if r.stopping => "leaving".to_string(),
                _ => p.state.clone(),
            },
            is_self: false,
            report,
            fresh,
            stale_ms,
            error,
            since_ms: None,
        });
    }
    rows[0].report = Some(me);

    // Nodes this node saw die or leave recently, unless a live node took their address.
    let mut last_event: BTreeMap<&str, &MembershipEvent> = BTreeMap::new();
    for e in events {
        last_event.insert(&e.peer, e);
    }
    let mut replaced: HashSet<&str> = HashSet::new();
    for e in events {
        if let Some(old) = &e.replaced {
            replaced.insert(old);
        }
    }
    let known: HashSet<String> = rows.iter().map(|r| r.node_id.clone()).collect();
    let live_addresses: HashSet<String> = rows.iter().map(|r| r.address.clone()).collect();
    for (id, e) in &last_event {
        let gone = matches!(e.kind, "dead" | "left");
        let recent = now_ms.saturating_sub(e.at_ms) <= GHOST_WINDOW_MS;
        if gone
            && recent
            && !known.contains(*id)
            && !replaced.contains(id)
            && !live_addresses.contains(&e.address)
        {
            rows.push(Row {
                node_id: e.peer.clone(),
                address: e.address.clone(),
                port: split_addr(&e.address).map(|(_, p)| p).unwrap_or(0),
                state: e.kind.to_string(),
                is_self: false,
                report: None,
                fresh: false,
                stale_ms: None,
                error: None,
                since_ms: Some(e.at_ms),
            });
        }
    }

    // Nodes other nodes see (by their answers of this round) but this one does not.
    let mut unseen: BTreeMap<String, String> = BTreeMap::new();
    let known: HashSet<String> = rows.iter().map(|r| r.node_id.clone()).collect();
    for r in rows
        .iter()
        .filter(|r| r.fresh)
        .filter_map(|r| r.report.as_ref())
    {
        for p in &r.peers {
            if !known.contains(&p.node_id) {
                unseen
                    .entry(p.node_id.clone())
                    .or_insert_with(|| p.address.clone());
            }
        }
    }
    for (id, address) in unseen {
        rows.push(Row {
            port: split_addr(&address).map(|(_, p)| p).unwrap_or(0),
            node_id: id,
            address,
            state: "unseen".to_string(),
            is_self: false,
            report: None,
            fresh: false,
            stale_ms: None,
            error: Some("other nodes see it, this node does not".to_string()),
            since_ms: None,
        });
    }

    rows.sort_by(|a, b| {
        let host = |r: &Row| {
            split_addr(&r.address)
                .map(|(h, _)| h.to_string())
                .unwrap_or_default()
        };
        (a.port, host(a), &a.node_id).cmp(&(b.port, host(b), &b.node_id))
    });
    let index: HashMap<&str, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.node_id.as_str(), i))
        .collect();
    let sees: Vec<Option<Vec<usize>>> = rows
        .iter()
        .map(|r| {
            r.report.as_ref().map(|rep| {
                let mut v: Vec<usize> = rep
                    .peers
                    .iter()
                    .filter_map(|p| index.get(p.node_id.as_str()).copied())
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            })
        })
        .collect();

    // Complete: every live node answered this round and sees every other live node.
    let live: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r.state.as_str(), "alive" | "suspect" | "unseen"))
        .map(|(i, _)| i)
        .collect();
    let complete = live.iter().all(|&i| {
        rows[i].state == "alive"
            && rows[i].fresh
            && sees[i]
                .as_ref()
                .is_some_and(|s| live.iter().all(|&j| j == i || s.binary_search(&j).is_ok()))
    });
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &rows {
        *states.entry(r.state.as_str()).or_default() += 1;
    }
    let holders = rows
        .iter()
        .filter(|r| r.report.as_ref().and_then(|x| x.has_key) == Some(true))
        .count();

    let nodes: Vec<Value> = rows
        .iter()
        .zip(&sees)
        .map(|(r, sees)| {
            let rep = r.report.as_ref();
            let skew = skews.get(r.node_id.as_str()).copied();
            json!({
                "node_id": r.node_id,
                "address": r.address,
                "port": r.port,
                "state": r.state,
                "self": r.is_self,
                "reachable": r.fresh,
                "stale_ms": r.stale_ms,
                "error": r.error,
                "since_ms": r.since_ms,
                "uptime_s": rep.map(|x| x.uptime_s),
                "ready": rep.map(|x| x.ready),
                "keys": rep.map(|x| x.keys),
                "bytes": rep.map(|x| x.bytes),
                "max_bytes": rep.map(|x| x.max_bytes),
                "version": rep.map(|x| x.version.clone()),
                "counters": rep.map(|x| x.counters.clone()),
                "has_key": rep.and_then(|x| x.has_key),
                "peer_count": rep.map(|x| x.peers.len()),
                "sees": sees,
                "skew_ms": skew,
                "skew_beyond_max": skew.is_some_and(|ms| ms.unsigned_abs() > crate::clock::MAX_SKEW_MS),
            })
        })
        .collect();
    let events: Vec<&MembershipEvent> = events.iter().rev().take(EVENTS_SHOWN).collect();
    json!({
        "node_id": self_id,
        "generated_ms": now_ms,
        "key": key,
        "summary": {
            "nodes": rows.len(),
            "states": states,
            "complete": complete,
            "holders": key.map(|_| holders),
        },
        "nodes": nodes,
        "events": events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, port: u16, peers: &[(&str, u16)]) -> NodeReport {
        NodeReport {
            node_id: id.into(),
            address: format!("0.0.0.0:{port}"),
            port,
            uptime_s: 5,
            ready: true,
            keys: 2,
            bytes: 20,
            peers: peers
                .iter()
                .map(|(p, port)| PeerView {
                    node_id: (*p).into(),
                    address: format!("127.0.0.1:{port}"),
                    state: "alive".into(),
                    skew_ms: None,
                })
                .collect(),
            ..NodeReport::default()
        }
    }

    fn event(kind: &'static str, peer: &str, port: u16, at_ms: u64) -> MembershipEvent {
        MembershipEvent {
            at_ms,
            kind,
            peer: peer.into(),
            address: format!("127.0.0.1:{port}"),
            replaced: None,
        }
    }

    #[test]
    fn full_mesh_of_three_is_complete_with_links_by_index() {
        let me = report("a", 8081, &[("b", 8082), ("c", 8083)]);
        let mut fetched = HashMap::new();
        fetched.insert(
            "b".to_string(),
            Ok(report("b", 8082, &[("a", 8081), ("c", 8083)])),
        );
        fetched.insert(
            "c".to_string(),
            Ok(report("c", 8083, &[("a", 8081), ("b", 8082)])),
        );
        let v = assemble(me, fetched, HashMap::new(), &[], None, 1_000);
        assert_eq!(v["summary"]["complete"], true);
        assert_eq!(v["summary"]["states"]["alive"], 3);
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0]["node_id"], "a");
        assert_eq!(nodes[0]["self"], true);
        // The address the others use, not the wildcard bind address.
        assert_eq!(nodes[0]["address"], "127.0.0.1:8081");
        assert_eq!(nodes[0]["sees"], json!([1, 2]));
        assert_eq!(nodes[2]["sees"], json!([0, 1]));
        assert_eq!(nodes[1]["keys"], 2);
        assert_eq!(v["summary"]["holders"], Value::Null);
    }

    #[test]
    fn unreachable_peer_and_recently_dead_node_and_key_holders() {
        let mut me = report("a", 8081, &[("b", 8082)]);
        me.has_key = Some(true);
        let mut fetched = HashMap::new();
        fetched.insert("b".to_string(), Err("no answer in time".to_string()));
        let events = vec![
            event("joined", "c", 8083, 100),
            event("dead", "c", 8083, 900),
            event("left", "old", 8084, 1),
        ];
        let v = assemble(
            me,
            fetched,
            HashMap::new(),
            &events,
            Some("k"),
            900 + GHOST_WINDOW_MS,
        );
        let nodes = v["nodes"].as_array().unwrap();
        let ids: Vec<&str> = nodes
            .iter()
            .map(|n| n["node_id"].as_str().unwrap())
            .collect();
        // "old" left too long ago to be shown.
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(nodes[1]["reachable"], false);
        assert_eq!(nodes[1]["error"], "no answer in time");
        assert_eq!(nodes[1]["keys"], Value::Null);
        assert_eq!(nodes[2]["state"], "dead");
        assert_eq!(nodes[2]["since_ms"], 900);
        assert_eq!(v["summary"]["complete"], false);
        assert_eq!(v["summary"]["holders"], 1);
        assert_eq!(v["key"], "k");
        // Newest event first.
        assert_eq!(v["events"][0]["peer"], "old");
        assert_eq!(v["events"][1]["kind"], "dead");
    }

    #[test]
    fn a_node_only_others_see_is_unseen_and_a_replaced_one_is_not_a_ghost() {
        let me = report("a", 8081, &[("b", 8082)]);
        let mut fetched = HashMap::new();
        fetched.insert(
            "b".to_string(),
            Ok(report("b", 8082, &[("a", 8081), ("x", 8090)])),
        );
        let mut swap = event("replaced", "b", 8082, 10);
        swap.replaced = Some("b-old".into());
        let events = vec![event("dead", "b-old", 8082, 5), swap];
        let v = assemble(me, fetched, HashMap::new(), &events, None, 20);
        let nodes = v["nodes"].as_array().unwrap();
        let states: Vec<(&str, &str)> = nodes
            .iter()
            .map(|n| (n["node_id"].as_str().unwrap(), n["state"].as_str().unwrap()))
            .collect();
        assert_eq!(states, [("a", "alive"), ("b", "alive"), ("x", "unseen")]);
        assert_eq!(v["summary"]["complete"], false);
    }

    #[test]
    fn peer_answering_with_another_id_is_not_trusted() {
        let me = report("a", 8081, &[("b", 8082)]);
        let mut fetched = HashMap::new();
        fetched.insert("b".to_string(), Ok(report("zzz", 8082, &[])));
        let v = assemble(me, fetched, HashMap::new(), &[], None, 0);
        assert_eq!(v["nodes"][1]["reachable"], false);
        assert_eq!(v["nodes"][1]["error"], "answered as zzz");
    }

    #[test]
    fn a_peer_missing_one_round_shows_its_last_answer_as_stale() {
        let me = report("a", 8081, &[("b", 8082)]);
        let mut fetched = HashMap::new();
        fetched.insert("b".to_string(), Err("no answer in time".to_string()));
        let mut old = report("b", 8082, &[("a", 8081)]);
        old.has_key = Some(true);
        let stale = HashMap::from([("b".to_string(), (1_500, old))]);
        let v = assemble(me, fetched, stale, &[], Some("k"), 0);
        let b = &v["nodes"][1];
        assert_eq!(b["reachable"], false);
        assert_eq!(b["stale_ms"], 1_500);
        assert_eq!(b["keys"], 2);
        assert_eq!(b["sees"], json!([0]));
        // Neither the key nor completeness is taken from an old answer.
        assert_eq!(b["has_key"], Value::Null);
        assert_eq!(v["summary"]["complete"], false);
    }

    #[test]
    fn histogram_totals_reads_sum_and_count() {
        let text = "# TYPE repram_replication_batch_seconds histogram\n\
                    repram_replication_batch_seconds_sum 0.25\n\
                    repram_replication_batch_seconds_count 5\n\
                    repram_replication_batch_seconds_bucket{le=\"0.001\"} 1\n";
        assert_eq!(
            histogram_totals(text, "repram_replication_batch_seconds"),
            (0.25, 5)
        );
        assert_eq!(histogram_totals("", "x"), (0.0, 0));
    }

    #[test]
    fn page_has_a_fresh_nonce_in_csp_and_markup() {
        let a = page();
        let csp = a.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|s| s.split('\'').next())
            .unwrap()
            .to_string();
        assert_eq!(nonce.len(), 32);
        assert!(
            !PAGE.contains("innerHTML"),
            "data must never go through innerHTML"
        );
        let b = page();
        assert_ne!(
            a.headers()[header::CONTENT_SECURITY_POLICY],
            b.headers()[header::CONTENT_SECURITY_POLICY]
        );
    }
}
