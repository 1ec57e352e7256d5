//! Flux instance discovery: the IPs of every instance of this app, from the Flux location
//! API (`GET {REPRAM_FLUX_API}/apps/location/{FLUX_APP_NAME}`).
//!
//! The list only *seeds* discovery: it lags (an instance that shut down cleanly stays
//! listed about 7 minutes, one that crashed about 125; a new one appears once it
//! broadcasts), so liveness always comes from probing. A failing
//! or malformed API is a warning, never an error: the other discovery sources carry on.
//!
//! One process runs several nodes, so answers are cached per (API, app) and shared: at
//! most one request is in flight, a fresh answer is reused for
//! [`LocationTiming::refresh_every`], failures are retried with doubling backoff, and a
//! caller never waits for the network except on the very first call (the node's first
//! discovery round), so a slow API cannot stall membership probing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::text::one_line;

/// Largest location answer accepted (100 instances take about 30 KB).
const MAX_BODY_BYTES: usize = 1 << 20;

/// Characters escaped in the app name path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Why the instance list could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FluxError {
    /// `FLUX_APP_NAME` is not set: not running on Flux.
    #[error("FLUX_APP_NAME is not set")]
    NotOnFlux,
    /// `REPRAM_FLUX_API` cannot be used as a base URL.
    #[error("REPRAM_FLUX_API={url}: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting, TLS or HTTP failed.
    #[error("{url}: {reason}")]
    Unreachable {
        /// The location URL.
        url: String,
        /// The underlying error, on one line.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("{url}: no answer within {} ms", .timeout.as_millis())]
    Timeout {
        /// The location URL.
        url: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The API answered with a non-200 status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The location URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer is not the expected JSON.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The API answered `{"status":"error",...}`.
    #[error("Flux API error: {0}")]
    Api(String),
    /// The first request has not finished yet (only when the first wait timed out).
    #[error("first request still in flight")]
    Pending,
}

/// A parsed instance list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocationList {
    /// Instance IPs, sorted, without duplicates, `:port` suffixes stripped.
    pub ips: Vec<IpAddr>,
    /// Entries without a usable `ip` (missing, not a string, not an address).
    pub skipped: usize,
}

/// Parses a location answer:
/// `{"status":"success","data":[{"name":…,"ip":"1.2.3.4:16137",…},…]}`.
///
/// A wrong overall shape is an error; single entries without a usable `ip` are skipped
/// and counted, so one bad entry does not hide the others.
pub fn parse_location_body(body: &[u8]) -> Result<LocationList, FluxError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| FluxError::Malformed(format!("not JSON ({e}): {}", snippet(body))))?;
    let Some(obj) = json.as_object() else {
        return Err(FluxError::Malformed(format!(
            "expected a JSON object: {}",
            snippet(body)
        )));
    };
    match obj.get("status").and_then(Value::as_str) {
        Some("success") => {}
        Some("error") => {
            let message = obj
                .get("data")
                .and_then(|d| d.get("message").or(Some(d)))
                .map(|m| match m {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "no message".to_string());
            return Err(FluxError::Api(one_line(&message, 200)));
        }
        Some(other) => {
            return Err(FluxError::Malformed(format!(
                "status is {:?}, expected \"success\"",
                one_line(other, 40)
            )))
        }
        None => {
            return Err(FluxError::Malformed(
                "no \"status\" string in the answer".to_string(),
            ))
        }
    }
    let Some(entries) = obj.get("data").and_then(Value::as_array) else {
        return Err(FluxError::Malformed(
            "\"data\" is not a list of instances".to_string(),
        ));
    };
    let mut list = LocationList::default();
    for entry in entries {
        match entry
            .get("ip")
            .and_then(Value::as_str)
            .and_then(parse_instance_ip)
        {
            Some(ip) => list.ips.push(ip),
            None => list.skipped += 1,
        }
    }
    list.ips.sort();
    list.ips.dedup();
    Ok(list)
}

pub use crate::addr::parse_instance_ip;

/// `ips` minus this instance's own address (`FLUX_NODE_HOST_IP`, which may carry a
/// `:port` suffix too): connecting to one's own public IP may fail on Flux.
pub fn without_own_ip(ips: &[IpAddr], own: Option<&str>) -> Vec<IpAddr> {
    let own = own.and_then(parse_instance_ip);
    ips.iter().copied().filter(|ip| Some(*ip) != own).collect()
}

/// Where the location request goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocationUrl {
    /// `https` (else plain `http`).
    pub tls: bool,
    /// Host name or IP, IPv6 without brackets.
    pub host: String,
    /// TCP port (443 / 80 unless given).
    pub port: u16,
    /// Request path, starting with `/`.
    pub path: String,
}

impl LocationUrl {
    /// `{api}/apps/location/{app}` for a base URL such as `https://api.runonflux.io` or
    /// `http://127.0.0.1:9000/prefix`. User info, queries and fragments are refused.
    pub fn new(api: &str, app: &str) -> Result<LocationUrl, FluxError> {
        let bad = |reason| FluxError::BadUrl {
            url: one_line(api, 200),
            reason,
        };
        let api = api.trim().trim_end_matches('/');
        let (tls, rest) = if let Some(rest) = strip_prefix_ci(api, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(api, "http://") {
            (false, rest)
        } else {
            return Err(bad("expected an http:// or https:// URL"));
        };
        if rest.contains(['?', '#', '@']) || rest.chars().any(|c| c.is_whitespace()) {
            return Err(bad("expected scheme://host[:port][/path] only"));
        }
        let (authority, base_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) = inner
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            if host.parse::<Ipv6Addr>().is_err() {
                return Err(bad("not an IPv6 address in [ ]"));
            }
            let port = match after {
                "" => default_port,
                p => parse_port(p.strip_prefix(':').ok_or_else(|| bad("bad port"))?)
                    .ok_or_else(|| bad("bad port"))?,
            };
            (host.to_string(), port)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h.to_string(), parse_port(p).ok_or_else(|| bad("bad port"))?),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
        {
            return Err(bad("bad host"));
        }
        let app = utf8_percent_encode(app.trim(), PATH_SEGMENT);
        Ok(LocationUrl {
            tls,
            host,
            port,
            path: format!("{base_path}/apps/location/{app}"),
        })
    }

    /// The `Host` header value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.tls { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for LocationUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

/// Fetches and parses the instance list once, all within `timeout` (connect, TLS,
/// request and body). No cache, no retry: see [`LocationCache`] for those.
pub async fn fetch_location(
    url: &LocationUrl,
    timeout: Duration,
) -> Result<LocationList, FluxError> {
    match tokio::time::timeout(timeout, fetch_body(url)).await {
        Ok(Ok(body)) => parse_location_body(&body),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(FluxError::Timeout {
            url: url.to_string(),
            timeout,
        }),
    }
}

async fn fetch_body(url: &LocationUrl) -> Result<Bytes, FluxError> {
    let unreachable = |what: &str, e: &dyn std::fmt::Display| FluxError::Unreachable {
        url: url.to_string(),
        reason: one_line(&format!("{what}: {e}"), 300),
    };
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| unreachable("connect", &e))?;
    let _ = tcp.set_nodelay(true);
    if url.tls {
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| unreachable("TLS server name", &e))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable("TLS", &e))?;
        get(url, stream).await
    } else {
        get(url, tcp).await
    }
}

/// One `GET` over an open connection; the connection task dies with this future.
async fn get<S>(url: &LocationUrl, io: S) -> Result<Bytes, FluxError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let unreachable = |e: &dyn std::fmt::Display| FluxError::Unreachable {
        url: url.to_string(),
        reason: one_line(&format!("http: {e}"), 300),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| unreachable(&e))?;
    let conn = AbortOnDrop(tokio::spawn(conn));
    let req = Request::get(url.path.as_str())
        .header(header::HOST, url.host_header())
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("repram-flux/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| unreachable(&e))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    if resp.status() != hyper::StatusCode::OK {
        return Err(FluxError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    let body = Limited::new(resp.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| unreachable(&e))?
        .to_bytes();
    drop(conn);
    Ok(body)
}

struct AbortOnDrop(tokio::task::JoinHandle<Result<(), hyper::Error>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TLS client settings: ring, TLS 1.2/1.3, the Mozilla roots compiled in (the runtime
/// image needs no CA bundle).
fn tls_config() -> Result<Arc<tokio_rustls::rustls::ClientConfig>, FluxError> {
    use tokio_rustls::rustls;
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|reason| FluxError::Unreachable {
            url: String::new(),
            reason: format!("TLS setup: {reason}"),
        })
}

/// Timing of [`LocationCache`].
#[derive(Clone, Debug)]
pub struct LocationTiming {
    /// Limit for one request (connect + TLS + answer).
    pub timeout: Duration,
    /// A successful answer is reused this long.
    pub refresh_every: Duration,
    /// First retry delay after a failure; doubles per failure.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How long the very first call waits for the first answer.
    pub first_wait: Duration,
}

impl Default for LocationTiming {
    /// 5 s per request, refreshed every 20 s (nodes re-resolve every 30 s), retries from
    /// 5 s doubling to 5 min, first call waits up to 6 s.
    fn default() -> Self {
        LocationTiming {
            timeout: Duration::from_secs(5),
            refresh_every: Duration::from_secs(20),
            min_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            first_wait: Duration::from_secs(6),
        }
    }
}

/// The retry delay after `failures` consecutive failures (1 = first failure):
/// `min_backoff * 2^(failures-1)`, at most `max_backoff`.
pub fn backoff_after(failures: u32, timing: &LocationTiming) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    timing
        .min_backoff
        .saturating_mul(factor)
        .min(timing.max_backoff)
}

/// State of one (API URL, app) pair.
#[derive(Debug, Default)]
struct Slot {
    /// The last successful list.
    good: Option<Vec<IpAddr>>,
    /// The last error, while failing.
    error: Option<FluxError>,
    /// When the next request may start.
    next_fetch: Option<Instant>,
    /// Consecutive failures.
    failures: u32,
    in_flight: bool,
}

#[derive(Default)]
struct Shared {
    slot: Mutex<Slot>,
    done: Notify,
}

/// Instance lists shared by every node of a process; see the module docs.
#[derive(Default)]
pub struct LocationCache {
    slots: Mutex<HashMap<(String, String), Arc<Shared>>>,
}

impl LocationCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache used by [`instance_ips`].
    pub fn global() -> &'static LocationCache {
        static CACHE: OnceLock<LocationCache> = OnceLock::new();
        CACHE.get_or_init(LocationCache::new)
    }

    /// The instance IPs of `app` (own IP not removed). Returns the last good list at
    /// once (starting a background refresh when due); only the first call waits, up to
    /// `timing.first_wait`. While the API fails, the last good list is kept; with none,
    /// the last error is returned.
    pub async fn get(
        &self,
        api: &str,
        app: &str,
        timing: &LocationTiming,
    ) -> Result<Vec<IpAddr>, FluxError> {
        let url = LocationUrl::new(api, app)?;
        let shared = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots
                .entry((api.to_string(), app.to_string()))
                .or_default()
                .clone()
        };
        let notified = shared.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (start, first) = {
            let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
            let first = slot.good.is_none() && slot.error.is_none();
            let due = match slot.next_fetch {
                None => true,
                Some(t) => Instant::now() >= t,
            };
            let start = due && !slot.in_flight;
            if start {
                slot.in_flight = true;
            }
            (start, first)
        };
        if start {
            tokio::spawn(refresh(
                shared.clone(),
                url,
                app.to_string(),
                timing.clone(),
            ));
        }
        if first {
            let _ = tokio::time::timeout(timing.first_wait, notified).await;
        }
        let slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        match (&slot.good, &slot.error) {
            (Some(ips), _) => Ok(ips.clone()),
            (None, Some(e)) => Err(e.clone()),
            (None, None) => Err(FluxError::Pending),
        }
    }
}

/// One background request; records the outcome and wakes first-time waiters.
async fn refresh(shared: Arc<Shared>, url: LocationUrl, app: String, timing: LocationTiming) {
    let result = fetch_location(&url, timing.timeout).await;
    let now = Instant::now();
    {
        let mut slot = shared.slot.lock().unwrap_or_else(|e| e.into_inner());
        slot.in_flight = false;
        match result {
            Ok(list) => {
                if slot.failures > 0 {
                    info!(app = %app, url = %url, failures = slot.failures, "Flux location API answers again");
                }
                if list.skipped > 0 {
                    warn!(app = %app, url = %url, skipped = list.skipped, "Flux location list has entries without a usable ip; skipped them");
                }
                if slot.good.as_ref() != Some(&list.ips) {
                    info!(app = %app, instances = list.ips.len(), ips = ?list.ips, "Flux instance list");
                } else {
                    debug!(app = %app, instances = list.ips.len(), "Flux instance list unchanged");
                }
                slot.good = Some(list.ips);
                slot.error = None;
                slot.failures = 0;
                slot.next_fetch = Some(now + timing.refresh_every);
            }
            Err(e) => {
                slot.failures = slot.failures.saturating_add(1);
                let retry = backoff_after(slot.failures, &timing);
                warn!(
                    app = %app,
                    error = %e,
                    retry_in_s = retry.as_secs(),
                    kept_instances = slot.good.as_ref().map_or(0, Vec::len),
                    "Flux location API failed; other discovery sources carry on"
                );
                slot.error = Some(e);
                slot.next_fetch = Some(now + retry);
            }
        }
    }
    shared.done.notify_waiters();
}

/// The other instances of this Flux app: the location list (cached, see
/// [`LocationCache`]) minus `FLUX_NODE_HOST_IP`. [`FluxError::NotOnFlux`] when
/// `FLUX_APP_NAME` is not set.
pub async fn instance_ips(config: &Config) -> Result<Vec<IpAddr>, FluxError> {
    let app = config
        .flux_app_name
        .as_deref()
        .ok_or(FluxError::NotOnFlux)?;
    let ips = LocationCache::global()
        .get(&config.flux_api, app, &LocationTiming::default())
        .await?;
    Ok(without_own_ip(&ips, config.flux_node_host_ip.as_deref()))
}

fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|p| *p >= 1)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The start of a body for an error message.
fn snippet(body: &[u8]) -> String {
    one_line(&String::from_utf8_lossy(&body[..body.len().min(120)]), 120)
}

/// A fake Flux API on 127.0.0.1 for tests: answers every request with the current
/// canned reply and counts requests.
#[cfg(test)]
pub(crate) mod fake {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// What the fake answers.
    #[derive(Clone)]
    pub(crate) enum Reply {
        /// Status code and body.
        Http(u16, String),
        /// Accept, read, never answer.
        Hang,
    }

    pub(crate) struct FakeApi {
        pub(crate) url: String,
        pub(crate) reply: Arc<Mutex<Reply>>,
        pub(crate) requests: Arc<AtomicUsize>,
        pub(crate) paths: Arc<Mutex<Vec<String>>>,
    }

    impl FakeApi {
        pub(crate) fn set(&self, reply: Reply) {
            *self.reply.lock().unwrap() = reply;
        }
        pub(crate) fn count(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    /// `{"status":"success","data":[{"ip":…},…]}` for `ips`.
    pub(crate) fn list(ips: &[&str]) -> Reply {
        let data: Vec<String> = ips
            .iter()
            .map(|ip| format!("{{\"name\":\"app\",\"ip\":\"{ip}\",\"hash\":\"x\"}}"))
            .collect();
        Reply::Http(
            200,
            format!("{{\"status\":\"success\",\"data\":[{}]}}", data.join(",")),
        )
    }

    pub(crate) async fn start(reply: Reply) -> FakeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reply = Arc::new(Mutex::new(reply));
        let requests = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (r, n, p) = (reply.clone(), requests.clone(), paths.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (r, n, p) = (r.clone(), n.clone(), p.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(k) => buf.extend_from_slice(&chunk[..k]),
                        }
                    }
                    n.fetch_add(1, Ordering::SeqCst);
                    let line = String::from_utf8_lossy(&buf)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string();
                    p.lock().unwrap().push(line);
                    let reply = r.lock().unwrap().clone();
                    match reply {
                        Reply::Hang => {
                            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                        }
                        Reply::Http(status, body) => {
                            let resp = format!(
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = sock.write_all(resp.as_bytes()).await;
                            let _ = sock.shutdown().await;
                        }
                    }
                });
            }
        });
        FakeApi {
            url,
            reply,
            requests,
            paths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SAMPLE: &str = r#"{"status":"success","data":[
        {"name":"repram","ip":"203.0.113.7:16137","hash":"ab","broadcastedAt":"2025-01-01T00:00:00.000Z","expireAt":"2025-01-01T02:00:00.000Z","runningSince":"2025-01-01T00:00:00.000Z"},
        {"name":"repram","ip":"198.51.100.2","hash":"cd"},
        {"name":"repram","ip":"203.0.113.7:16187"},
        {"name":"repram","ip":"[2001:db8::5]:16127"}
    ]}"#;

    #[test]
    fn parses_sample_strips_ports_sorts_and_dedups() {
        let list = parse_location_body(SAMPLE.as_bytes()).unwrap();
        assert_eq!(
            list.ips,
            vec![ip("198.51.100.2"), ip("203.0.113.7"), ip("2001:db8::5")]
        );
        assert_eq!(list.skipped, 0);
    }

    #[test]
    fn empty_list_is_fine() {
        let list = parse_location_body(br#"{"status":"success","data":[]}"#).unwrap();
        assert_eq!(list, LocationList::default());
    }

    #[test]
    fn bad_entries_are_skipped_and_counted() {
        let body = br#"{"status":"success","data":[
            {"ip":"203.0.113.9:16137"}, {"ip":42}, {"name":"no ip"}, "not an object",
            {"ip":"not-an-ip"}, {"ip":"0.0.0.0"}, {"ip":"255.255.255.255:1"}, {"ip":"224.0.0.1"},
            {"ip":""}, {"ip":null}, {"ip":"1.2.3.4:port"}
        ]}"#;
        let list = parse_location_body(body).unwrap();
        assert_eq!(list.ips, vec![ip("203.0.113.9")]);
        assert_eq!(list.skipped, 10);
    }

    #[test]
    fn malformed_answers_are_errors_with_one_line_messages() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "malformed answer: not JSON"),
            (b"<html>502 Bad Gateway</html>", "malformed answer: not JSON"),
            (b"[1,2]", "malformed answer: expected a JSON object"),
            (b"{\"data\":[]}", "malformed answer: no \"status\" string"),
            (
                b"{\"status\":\"ok\",\"data\":[]}",
                "malformed answer: status is \"ok\"",
            ),
            (
                b"{\"status\":\"success\",\"data\":{\"ip\":\"1.2.3.4\"}}",
                "malformed answer: \"data\" is not a list",
            ),
            (
                b"{\"status\":\"success\"}",
                "malformed answer: \"data\" is not a list",
            ),
            (
                b"{\"status\":\"error\",\"data\":{\"code\":null,\"name\":\"Error\",\"message\":\"Application not found\"}}",
                "Flux API error: Application not found",
            ),
            (
                b"{\"status\":\"error\",\"data\":\"down\\nfor maintenance\"}",
                "Flux API error: down\\nfor maintenance",
            ),
            (b"{\"status\":\"error\"}", "Flux API error: no message"),
        ];
        for (body, want) in cases {
            let msg = parse_location_body(body).unwrap_err().to_string();
            assert!(
                msg.starts_with(want),
                "{:?} gave {msg:?}",
                String::from_utf8_lossy(body)
            );
            assert!(!msg.contains('\n'), "{msg:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let base = SAMPLE.as_bytes();
        for _ in 0..2_000 {
            let mut body = base.to_vec();
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..body.len());
                body[i] = rng.gen();
            }
            body.truncate(rng.gen_range(0..=body.len()));
            let _ = parse_location_body(&body);
        }
    }

    #[test]
    fn own_ip_is_skipped_with_or_without_port() {
        let ips = [ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3")];
        assert_eq!(
            without_own_ip(&ips, Some("10.0.0.2")),
            vec![ip("10.0.0.1"), ip("10.0.0.3")]
        );
        assert_eq!(
            without_own_ip(&ips, Some("10.0.0.3:16137")),
            vec![ip("10.0.0.1"), ip("10.0.0.2")]
        );
        assert_eq!(without_own_ip(&ips, None), ips.to_vec());
        assert_eq!(without_own_ip(&ips, Some("garbage")), ips.to_vec());
    }

    #[test]
    fn location_urls() {
        let u = LocationUrl::new("https://api.runonflux.io", "repram").unwrap();
        assert_eq!(
            u,
            LocationUrl {
                tls: true,
                host: "api.runonflux.io".into(),
                port: 443,
                path: "/apps/location/repram".into()
            }
        );
        assert_eq!(
            u.to_string(),
            "https://api.runonflux.io/apps/location/repram"
        );
        let u = LocationUrl::new("http://127.0.0.1:9000/base/", "my app").unwrap();
        assert_eq!((u.tls, u.port), (false, 9000));
        assert_eq!(u.path, "/base/apps/location/my%20app");
        assert_eq!(
            u.to_string(),
            "http://127.0.0.1:9000/base/apps/location/my%20app"
        );
        let u = LocationUrl::new("HTTP://[::1]:8000", "a").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 8000));
        assert_eq!(u.host_header(), "[::1]:8000");
        let u = LocationUrl::new("http://[::1]", "a").unwrap();
        assert_eq!(u.port, 80);
        for bad in [
            "ftp://x",
            "api.runonflux.io",
            "http://",
            "http://:80",
            "http://host:0",
            "http://host:65536",
            "http://host:x",
            "http://user@host",
            "http://host?q=1",
            "http://[::1",
            "http://[nope]:80",
            "http://ho st",
        ] {
            assert!(
                matches!(LocationUrl::new(bad, "a"), Err(FluxError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let t = LocationTiming::default();
        let secs: Vec<u64> = (1..=10).map(|n| backoff_after(n, &t).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300, 300]);
        assert_eq!(backoff_after(0, &t), t.min_backoff);
        assert_eq!(backoff_after(u32::MAX, &t), t.max_backoff);
    }

    fn fast() -> LocationTiming {
        LocationTiming {
            timeout: Duration::from_millis(300),
            refresh_every: Duration::from_millis(100),
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            first_wait: Duration::from_secs(2),
        }
    }

    /// Polls `get` until it returns `want` (or fails the test after 5 s).
    async fn get_until(cache: &LocationCache, api: &str, want: &Result<Vec<IpAddr>, FluxError>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let got = cache.get(api, "app", &fast()).await;
            if &got == want {
                return;
            }
            assert!(Instant::now() < deadline, "still {got:?}, want {want:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn fetches_over_http_and_caches() {
        let api = fake::start(fake::list(&["127.0.0.2:16137", "127.0.0.3"])).await;
        let url = LocationUrl::new(&api.url, "my-app").unwrap();
        let list = fetch_location(&url, Duration::from_secs(2)).await.unwrap();
        assert_eq!(list.ips, vec![ip("127.0.0.2"), ip("127.0.0.3")]);
        assert_eq!(
            api.paths.lock().unwrap()[0],
            "GET /apps/location/my-app HTTP/1.1"
        );

        let cache = LocationCache::new();
        let want = Ok(vec![ip("127.0.0.2"), ip("127.0.0.3")]);
        assert_eq!(cache.get(&api.url, "app", &fast()).await, want);
        let after_first = api.count();
        // Fresh: answered from the cache, no new request.
        assert_eq!(cache.get(&api.url, "app", &fast()).await, want);
        assert_eq!(api.count(), after_first);
    }

    #[tokio::test]
    async fn failures_keep_the_last_good_list_and_recover() {
        let api = fake::start(fake::list(&["127.0.0.2"])).await;
        let cache = LocationCache::new();
        assert_eq!(
            cache.get(&api.url, "app", &fast()).await,
            Ok(vec![ip("127.0.0.2")])
        );

        api.set(fake::Reply::Http(500, "oops".into()));
        let before = api.count();
        let deadline = Instant::now() + Duration::from_secs(5);
        while api.count() < before + 2 {
            // Every answer meanwhile is the last good list.
            assert_eq!(
                cache.get(&api.url, "app", &fast()).await,
                Ok(vec![ip("127.0.0.2")])
            );
            assert!(Instant::now() < deadline, "no retry happened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        api.set(fake::list(&["127.0.0.4", "127.0.0.5:1"]));
        get_until(
            &cache,
            &api.url,
            &Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")]),
        )
        .await;

        // A refresh that hangs does not hold up the answer: the last good list comes back
        // while the request is still open (the fake holds it 30 s, the test waits 20 s).
        api.set(fake::Reply::Hang);
        let patient = LocationTiming {
            timeout: Duration::from_secs(3600),
            ..fast()
        };
        let hung_before = api.count();
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.count() == hung_before {
            assert!(Instant::now() < deadline, "no refresh was sent");
            let got = tokio::time::timeout(
                Duration::from_secs(20),
                cache.get(&api.url, "app", &patient),
            )
            .await;
            assert_eq!(
                got,
                Ok(Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")])),
                "waited for the refresh"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            tokio::time::timeout(
                Duration::from_secs(20),
                cache.get(&api.url, "app", &patient)
            )
            .await,
            Ok(Ok(vec![ip("127.0.0.4"), ip("127.0.0.5")])),
            "waited for the hung refresh"
        );
    }

    #[tokio::test]
    async fn errors_without_a_good_list_are_returned() {
        let api = fake::start(fake::Reply::Http(200, "<html>gateway</html>".into())).await;
        let cache = LocationCache::new();
        let err = cache.get(&api.url, "app", &fast()).await.unwrap_err();
        assert!(
            err.to_string().starts_with("malformed answer: not JSON"),
            "{err}"
        );

        let api = fake::start(fake::Reply::Http(404, String::new())).await;
        let err = cache.get(&api.url, "app", &fast()).await.unwrap_err();
        assert!(
            matches!(err, FluxError::Status { status: 404, .. }),
            "{err}"
        );

        // A server that never answers: the request's own timeout (300 ms) ends it.
        let api = fake::start(fake::Reply::Hang).await;
        let err =
            tokio::time::timeout(Duration::from_secs(60), cache.get(&api.url, "app", &fast()))
                .await
                .expect("the request timed out by itself")
                .unwrap_err();
        assert!(matches!(err, FluxError::Timeout { .. }), "{err}");

        // Nothing listens there: connection refused.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let err = cache.get(&closed, "app", &fast()).await.unwrap_err();
        assert!(matches!(err, FluxError::Unreachable { .. }), "{err}");
        assert!(!err.to_string().contains('\n'));
    }

    #[tokio::test]
    async fn https_to_a_plain_server_is_a_clean_error() {
        use tokio::io::AsyncWriteExt;
        // A plain-HTTP server that answers at once, whatever it receives.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let https = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let url = LocationUrl::new(&https, "app").unwrap();
        let err = fetch_location(&url, Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, FluxError::Unreachable { .. }), "{err}");
        assert!(err.to_string().contains("TLS"), "{err}");
    }

    #[tokio::test]
    async fn own_ip_is_removed_by_instance_ips() {
        let api = fake::start(fake::list(&["127.0.0.2:16137", "127.0.0.3:16137"])).await;
        let c = Config {
            flux_app_name: Some("app".into()),
            flux_api: api.url.clone(),
            flux_node_host_ip: Some("127.0.0.3".into()),
            ..Config::for_test()
        };
        assert_eq!(instance_ips(&c).await, Ok(vec![ip("127.0.0.2")]));
    }

    #[tokio::test]
    async fn not_on_flux_without_app_name() {
        let c = Config::for_test();
        assert_eq!(instance_ips(&c).await, Err(FluxError::NotOnFlux));
    }
}
