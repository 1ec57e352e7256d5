//! Fuzzing the HTTP surface end to end: in-process nodes receive random methods, paths
//! (random bytes percent-encoded, odd keys, `/v1/` variants, `/internal/v1/*`), query
//! strings, headers (`X-TTL`, `X-Forwarded-For`, the signature headers, noise), bodies
//! (random, valid and damaged node messages) and framings (exact, chunked, short or
//! invalid `Content-Length`), over raw TCP so nothing is cleaned up on the way.
//!
//! Every request gets an answer below 500, the node keeps serving, and a request that
//! is refused (4xx) — or that cannot write at all — leaves the store exactly as it was.
//!
//! Node messages that would make a node probe anything but its own loopback port range
//! (gossip naming other hosts, relay requests) are never sent: tests reach only their
//! own addresses.

mod common;
#[path = "fuzz/strategies.rs"]
mod strategies;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use repram_flux::auth;
use repram_flux::clock::{now_ms, Version};
use repram_flux::node::Node;
use repram_flux::wire::{Entry, Gossip, Message, NodeInfo, MAX_KEY};
use repram_flux::{Cluster, Config, Tuning};
use strategies::*;

const SECRET: &str = "fuzzing secret";
/// Longest value the fuzzed nodes accept (so 413 is reachable with small bodies).
const MAX_VALUE: usize = 256;

// ---------------------------------------------------------------------------------------
// The nodes under test, started once and shared by every case.

struct Target {
    port: u16,
    /// The node's whole port range: gossip may name only these ports.
    range: RangeInclusive<u16>,
    node: Arc<Node>,
    /// One case at a time per node, so "unchanged" compares like with like.
    busy: Mutex<()>,
    _cluster: Cluster,
}

struct Fixture {
    /// No secret: node messages are decoded and dispatched.
    open: Target,
    /// With `REPRAM_CLUSTER_SECRET`: node messages must be signed.
    signed: Target,
    _rt: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let base = common::free_range(6);
        let start = |base: u16, secret: Option<&str>| {
            let config = Config {
                base_port: base,
                max_ports: 3,
                node_count: 1,
                // TTLs of an hour or more: nothing written by a case expires meanwhile.
                min_ttl: 3_600,
                default_ttl: 3_600,
                max_value_bytes: MAX_VALUE,
                // Burst of 2 per client: `X-Forwarded-For` addresses soon see 429.
                rate_limit: 1,
                trusted_proxies: vec![
                    repram_flux::cidr::Cidr::parse("127.0.0.1").expect("an address")
                ],
                write_timeout: Duration::from_millis(100),
                cluster_secret: secret.map(Into::into),
                ..Config::for_test()
            };
            let tuning = Tuning {
                header_timeout: Duration::from_secs(1),
                body_timeout: Duration::from_secs(1),
                ..Tuning::default()
            };
            let cluster = rt
                .block_on(async { repram_flux::start(config, tuning) })
                .expect("start");
            let port = cluster.ports()[0];
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while status_of(port, &get("/ready")) != Some(200) {
                assert!(std::time::Instant::now() < deadline, "node not ready");
                std::thread::sleep(Duration::from_millis(20));
            }
            let node = cluster.nodes()[0].clone();
            Target {
                port,
                range: base..=base + 2,
                node,
                busy: Mutex::new(()),
                _cluster: cluster,
            }
        };
        Fixture {
            open: start(base, None),
            signed: start(base + 3, Some(SECRET)),
            _rt: rt,
        }
    })
}

impl Target {
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every live entry: key -> (version, value, expiry), and when each expires locally.
type Snapshot = BTreeMap<String, (Version, Bytes, u64, tokio::time::Instant)>;

fn snapshot(node: &Node) -> Snapshot {
    node.store
        .snapshot()
        .into_iter()
        .map(|(k, r)| (k, (r.version, r.value, r.expires_ms, r.expires_at)))
        .collect()
}

/// Nothing was added or changed, and nothing removed except by expiry.
fn assert_unchanged(before: &Snapshot, after: &Snapshot, what: &str) {
    let now = tokio::time::Instant::now();
    for (k, v) in after {
        let same = before
            .get(k)
            .is_some_and(|b| b.0 == v.0 && b.1 == v.1 && b.2 == v.2);
        assert!(same, "{what}: {k:?} was written");
    }
    for (k, v) in before {
        assert!(
            after.contains_key(k) || v.3 <= now,
            "{what}: {k:?} was removed"
        );
    }
}

/// Statuses seen (`None`: closed without an answer), printed at the end of a test.
type Tally = BTreeMap<Option<u16>, usize>;

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: one request per connection, `Connection: close`.

/// What happened to one request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The final status (after any 1xx).
    Status(u16),
    /// The server closed or reset the connection without a complete status line.
    Closed,
}

fn exchange(port: u16, raw: &[u8]) -> Outcome {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may answer and close before reading everything: a failed write is fine.
    let _ = s.write_all(raw);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "no answer and no close within 5 s to {:?}",
                    String::from_utf8_lossy(&raw[..raw.len().min(300)])
                )
            }
            Err(_) => break,
        }
    }
    final_status(&buf).map_or(Outcome::Closed, Outcome::Status)
}

/// The first non-1xx status in a response stream.
fn final_status(mut buf: &[u8]) -> Option<u16> {
    loop {
        let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
        let line = std::str::from_utf8(&buf[..line_end]).ok()?;
        let rest = line
            .strip_prefix("HTTP/1.1 ")
            .or_else(|| line.strip_prefix("HTTP/1.0 "))?;
        let status: u16 = rest.get(..3)?.parse().ok()?;
        if !(100..200).contains(&status) {
            return Some(status);
        }
        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        buf = &buf[head_end + 4..];
    }
}

fn status_of(port: u16, raw: &[u8]) -> Option<u16> {
    match exchange(port, raw) {
        Outcome::Status(s) => Some(s),
        Outcome::Closed => None,
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n").into_bytes()
}

/// The node answers, and a write and a read still work.
fn assert_serving(t: &Target) {
    assert_eq!(status_of(t.port, &get("/health")), Some(200), "health");
    let put = b"PUT /data/still-serving HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
    assert!(matches!(status_of(t.port, put), Some(201 | 202)), "put");
    assert_eq!(
        status_of(t.port, &get("/data/still-serving")),
        Some(200),
        "get"
    );
}

// ---------------------------------------------------------------------------------------
// Requests.

#[derive(Clone, Debug)]
enum Framing {
    /// `Content-Length` matches the body.
    Exact,
    /// `Transfer-Encoding: chunked`, chunks of the given size.
    Chunked(usize),
    /// No length and no body.
    NoBody,
    /// `Content-Length` of half the body; the rest follows as garbage.
    Short,
    /// An invalid `Content-Length` value.
    BadLength(&'static str),
    /// Two different `Content-Length` headers.
    TwoLengths,
}

#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
}

impl Req {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n",
            self.method, self.target
        )
        .into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
        }
        let len = self.body.len();
        match &self.framing {
            Framing::Exact => out.extend(format!("content-length: {len}\r\n\r\n").bytes()),
            Framing::Chunked(_) => out.extend(b"transfer-encoding: chunked\r\n\r\n"),
            Framing::NoBody => out.extend(b"\r\n"),
            Framing::Short => out.extend(format!("content-length: {}\r\n\r\n", len / 2).bytes()),
            Framing::BadLength(v) => out.extend(format!("content-length: {v}\r\n\r\n").bytes()),
            Framing::TwoLengths => out.extend(
                format!(
                    "content-length: {len}\r\ncontent-length: {}\r\n\r\n",
                    len + 1
                )
                .bytes(),
            ),
        }
        match &self.framing {
            Framing::NoBody => {}
            Framing::Chunked(size) => {
                for chunk in self.body.chunks((*size).max(1)) {
                    out.extend(format!("{:x}\r\n", chunk.len()).bytes());
                    out.extend_from_slice(chunk);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
            }
            _ => out.extend_from_slice(&self.body),
        }
        out
    }

    /// The framing is valid HTTP/1.1: the request must be answered.
    fn well_framed(&self) -> bool {
        matches!(
            self.framing,
            Framing::Exact | Framing::Chunked(_) | Framing::NoBody
        )
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The only requests that may change the store: PUT of a value, POST of node messages.
    fn may_write(&self) -> bool {
        let path = self.path();
        let data = path.starts_with("/data/") || path.starts_with("/v1/data/");
        (self.method == "PUT" && data) || (self.method == "POST" && path.starts_with("/internal/"))
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("GET".to_string()),
        3 => Just("PUT".to_string()),
        3 => Just("POST".to_string()),
        1 => Just("HEAD".to_string()),
        1 => Just("DELETE".to_string()),
        1 => Just("OPTIONS".to_string()),
        1 => Just("PATCH".to_string()),
        1 => Just("CONNECT".to_string()),
        1 => "[A-Z]{1,12}",
        1 => "[a-z!#$%&'*+.^_`|~-]{1,6}",
    ]
}

/// Characters that may appear in a path or query as they are (RFC 3986 pchar minus `%`).
const URI_SAFE: &[u8] = b"abcXYZ019-._~!$&'()*+,;=:@";

fn encoded_bytes(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<u8>(), 0..max)
        .prop_map(|v| percent_encoding::percent_encode(&v, NON_ALPHANUMERIC).to_string())
}

/// Path segments: percent-encoded random bytes, broken percent-encoding, long keys.
fn segment() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        "%[0-9A-Fa-f]{2}",
        Just("%".to_string()),
        Just("%2".to_string()),
        Just("%zz".to_string()),
        Just("%2F".to_string()),
        Just("%00".to_string()),
        Just("%0A".to_string()),
        Just("%FF".to_string()),
        Just("%C3".to_string()),
        Just("%C3%A9".to_string()),
        Just("..".to_string()),
        proptest::sample::select(URI_SAFE).prop_map(|b| char::from(b).to_string()),
        "[a-zA-Z0-9_-]{1,6}",
    ];
    prop_oneof![
        3 => encoded_bytes(40),
        3 => proptest::collection::vec(token, 0..12).prop_map(|v| v.concat()),
        1 => "k{245,255}",
        1 => "(%C3%A9){120,130}",
        1 => Just(String::new()),
    ]
}

fn route() -> impl Strategy<Value = String> {
    let fixed = proptest::sample::select(vec![
        "/",
        "/keys",
        "/status",
        "/health",
        "/ready",
        "/peers",
        "/metrics",
        "/cluster",
        "/data",
        "/data/",
        "//data/x",
        "/v1",
        "/v1/",
        "/internal/",
        "/internal/v1/",
        "/internal/v1/gossip",
        "/internal/v1/replicate",
        "/internal/v1/sync",
        "/internal/v2/sync",
        "/internal/v1/sync/",
        "/DATA/x",
        "*",
    ]);
    prop_oneof![
        4 => segment().prop_map(|k| format!("/data/{k}")),
        3 => fixed.prop_map(str::to_string),
        1 => proptest::collection::vec(segment(), 1..4).prop_map(|s| format!("/{}", s.join("/"))),
    ]
}

fn ttl_text() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "600",
            "1",
            "0",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "0x10",
            "",
            " 7 ",
            "+",
            "-",
            "99999999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "abc",
        ])
        .prop_map(str::to_string),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<String>(),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let name = prop_oneof![
        proptest::sample::select(vec!["ttl", "prefix", "cursor", "limit", "key", "scope"])
            .prop_map(str::to_string),
        "[a-z]{1,5}",
    ];
    let value = prop_oneof![
        ttl_text().prop_map(|v| utf8_percent_encode(&v, NON_ALPHANUMERIC).to_string()),
        segment(),
        proptest::sample::select(vec!["node", "cluster", "5", "1000", "1001", "0", "-1"])
            .prop_map(str::to_string),
    ];
    let pair = (name, proptest::option::of(value)).prop_map(|(n, v)| match v {
        Some(v) => format!("{n}={v}"),
        None => n,
    });
    proptest::option::of(proptest::collection::vec(pair, 0..4).prop_map(|p| p.join("&")))
}

/// Header values: visible ASCII, spaces, tabs and obs-text (bytes >= 0x80).
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff, Just(b'\t')], 0..40),
    ]
}

fn header() -> impl Strategy<Value = (String, Vec<u8>)> {
    let forwarded = proptest::sample::select(vec![
        "203.0.113.7",
        "198.51.100.1, 203.0.113.9",
        "127.0.0.1",
        "::1",
        "garbage",
        "203.0.113.5,",
        ", ,",
        "[::1]:80",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let now = now_ms();
    let timestamp = prop_oneof![
        (-40_000i64..40_000)
            .prop_map(move |d| now.saturating_add_signed(d).to_string().into_bytes()),
        header_value(),
    ];
    let nonce = prop_oneof![
        "[0-9a-zA-Z]{14,66}".prop_map(String::into_bytes),
        header_value()
    ];
    let signature = prop_oneof![
        "[0-9a-fA-F]{64}".prop_map(String::into_bytes),
        "(\\+[0-9a-f]){32}".prop_map(String::into_bytes),
        header_value(),
    ];
    let noise_name = "[a-z][a-z0-9-]{0,10}".prop_filter("framing header", |n| {
        !matches!(
            n.as_str(),
            "host" | "connection" | "content-length" | "transfer-encoding" | "upgrade" | "te"
        )
    });
    prop_oneof![
        3 => prop_oneof![ttl_text().prop_map(String::into_bytes), header_value()]
            .prop_map(|v| ("x-ttl".to_string(), v)),
        2 => prop_oneof![forwarded, header_value()].prop_map(|v| ("x-forwarded-for".to_string(), v)),
        1 => timestamp.prop_map(|v| (auth::TIMESTAMP_HEADER.to_string(), v)),
        1 => nonce.prop_map(|v| (auth::NONCE_HEADER.to_string(), v)),
        1 => signature.prop_map(|v| (auth::SIGNATURE_HEADER.to_string(), v)),
        1 => header_value().prop_map(|v| ("content-type".to_string(), v)),
        1 => Just(("expect".to_string(), b"100-continue".to_vec())),
        2 => (noise_name, header_value()),
    ]
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        12 => Just(Framing::Exact),
        3 => (1usize..64).prop_map(Framing::Chunked),
        3 => Just(Framing::NoBody),
        1 => Just(Framing::Short),
        1 => proptest::sample::select(vec![
            "-1", "abc", "1e3", "0x10", "+5", "99999999999999999999999", "5, 6",
        ])
        .prop_map(Framing::BadLength),
        1 => Just(Framing::TwoLengths),
    ]
}

// ---------------------------------------------------------------------------------------
// Node messages that only ever name the node's own loopback port range.

fn local_node(range: RangeInclusive<u16>) -> BoxedStrategy<NodeInfo> {
    (
        prop_oneof![text(40), "flux-node-[1-9]-[0-9a-f]{6}"],
        prop_oneof![Just(String::new()), Just("127.0.0.1".to_string())],
        range,
    )
        .prop_map(|(id, host, port)| NodeInfo { id, host, port })
        .boxed()
}

fn local_relay(range: RangeInclusive<u16>) -> BoxedStrategy<String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => range.prop_map(|p| format!("127.0.0.1:{p}")),
    ]
    .boxed()
}

/// True when acting on `g` makes the node contact nothing outside `range` on loopback.
fn stays_local(g: &Gossip, range: &RangeInclusive<u16>) -> bool {
    let host_ok = |h: &str| h.is_empty() || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let node_ok = |n: &NodeInfo| host_ok(&n.host) && range.contains(&n.port);
    let relay_ok = g.relay.is_empty()
        || g.relay
            .parse::<SocketAddr>()
            .is_ok_and(|a| a.ip().is_loopback() && range.contains(&a.port()));
    node_ok(&g.from) && g.updates.iter().all(|u| node_ok(&u.node)) && relay_ok
}

/// Keys: valid ones, invalid ones (empty, `/`, control characters, too long).
fn any_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{1,12}",
        text(MAX_KEY),
        Just(String::new()),
        Just("a/b".to_string()),
        Just("a\nb".to_string()),
    ]
}

fn local_entry() -> impl Strategy<Value = Entry> {
    let now = now_ms();
    (
        entry(),
        any_key(),
        proptest::collection::vec(any::<u8>(), 0..MAX_VALUE + 40),
        prop_oneof![
            Just(now + 7_200_000),
            Just(0),
            Just(u64::MAX),
            Just(now.saturating_sub(1_000)),
        ],
    )
        .prop_map(|(mut e, key, value, expires_ms)| {
            e.key = key;
            e.value = value.into();
            e.expires_ms = expires_ms;
            e
        })
}

fn local_message(range: RangeInclusive<u16>) -> impl Strategy<Value = Message> {
    use proptest::collection::vec;
    prop_oneof![
        3 => gossip_of(local_node(range.clone()), local_relay(range)).prop_map(Message::Gossip),
        3 => vec(local_entry(), 0..5).prop_map(Message::Replicate),
        1 => any::<u32>().prop_map(Message::Ack),
        1 => prop_oneof![vec(any::<u64>(), 0..8), vec(any::<u64>(), 1024..=1024)]
            .prop_map(Message::Digest),
        1 => vec((any_key(), version()), 0..4).prop_map(Message::Versions),
        2 => vec(any_key(), 0..6).prop_map(Message::Fetch),
        2 => vec(local_entry(), 0..5).prop_map(Message::Relay),
        1 => vec("[a-z0-9-]{0,24}", 0..4).prop_map(Message::Holders),
    ]
}

/// Bodies: random bytes, node messages, damaged node messages.
fn body(range: RangeInclusive<u16>) -> impl Strategy<Value = Vec<u8>> {
    let message = local_message(range.clone());
    let damaged = (
        local_message(range),
        proptest::collection::vec(mutation(), 1..3),
    )
        .prop_map(|(m, ms)| {
            let mut raw = m.encode().to_vec();
            for mu in &ms {
                mutate(&mut raw, mu);
            }
            raw
        });
    prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..MAX_VALUE + 64),
        3 => message.prop_map(|m| m.encode().to_vec()),
        2 => damaged,
    ]
}

/// `body`, unless it decodes to gossip that would reach beyond the node's own range.
fn local_only(body: Vec<u8>, range: &RangeInclusive<u16>) -> Vec<u8> {
    match Message::decode(Bytes::from(body.clone())) {
        Ok(Message::Gossip(g)) if !stays_local(&g, range) => b"withheld".to_vec(),
        _ => body,
    }
}

/// Method, target (path and query) and body of a request.
type Line = (String, String, Vec<u8>);

/// Anything: every method on every route with every body.
fn any_line(range: RangeInclusive<u16>) -> impl Strategy<Value = Line> {
    (
        method(),
        prop_oneof![Just(""), Just("/v1")],
        route(),
        query(),
        body(range),
    )
        .prop_map(|(method, prefix, route, query, body)| {
            let prefix = if route.starts_with("/internal/") {
                ""
            } else {
                prefix
            };
            (method, with_query(format!("{prefix}{route}"), query), body)
        })
}

/// Writes of a value: mostly valid keys, TTLs from the query or not at all.
fn put_line() -> impl Strategy<Value = Line> {
    let key = prop_oneof![
        3 => "[a-zA-Z0-9_.-]{1,20}",
        2 => segment(),
    ];
    (
        prop_oneof![Just(""), Just("/v1")],
        key,
        proptest::option::of(ttl_text()),
        proptest::collection::vec(any::<u8>(), 0..MAX_VALUE + 40),
    )
        .prop_map(|(prefix, key, ttl, body)| {
            let query = ttl.map(|t| format!("ttl={}", utf8_percent_encode(&t, NON_ALPHANUMERIC)));
            (
                "PUT".to_string(),
                with_query(format!("{prefix}/data/{key}"), query),
                body,
            )
        })
}

/// Node messages on the route they belong to, intact or damaged, or random bytes there.
fn node_line(range: RangeInclusive<u16>) -> impl Strategy<Value = Line> {
    (local_message(range.clone()), body(range), 0u8..4).prop_map(|(m, other, how)| {
        let path = match &m {
            Message::Gossip(_) => "/internal/v1/gossip",
            Message::Replicate(_) | Message::Ack(_) | Message::Relay(_) | Message::Holders(_) => {
                "/internal/v1/replicate"
            }
            _ => "/internal/v1/sync",
        };
        let body = if how == 0 { other } else { m.encode().to_vec() };
        ("POST".to_string(), path.to_string(), body)
    })
}

fn with_query(path: String, query: Option<String>) -> String {
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

fn request(range: RangeInclusive<u16>) -> impl Strategy<Value = Req> {
    let line = prop_oneof![
        3 => put_line(),
        3 => node_line(range.clone()),
        4 => any_line(range.clone()),
    ];
    (line, proptest::collection::vec(header(), 0..5), framing()).prop_map(
        move |((method, target, body), headers, framing)| Req {
            method,
            target,
            headers,
            body: local_only(body, &range),
            framing,
        },
    )
}

/// Send `req`, then check the answer and the store.
fn check(t: &Target, req: &Req, tally: &Mutex<Tally>) -> Result<Outcome, TestCaseError> {
    let before = snapshot(&t.node);
    let outcome = exchange(t.port, &req.bytes());
    let after = snapshot(&t.node);
    let status = match outcome {
        Outcome::Status(s) => Some(s),
        Outcome::Closed => None,
    };
    *tally
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(status)
        .or_default() += 1;
    prop_assert!(
        status.is_some() || !req.well_framed(),
        "no answer to a well-framed request"
    );
    if let Some(s) = status {
        prop_assert!((100..500).contains(&s), "status {}", s);
    }
    if !req.may_write() || status.map_or(true, |s| (400..500).contains(&s)) {
        assert_unchanged(&before, &after, &format!("{status:?}"));
    }
    Ok(outcome)
}

/// Run `cases` cases of `strategy` through `test` with proptest's runner (shrinking
/// included), then print the statuses seen.
fn run<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: impl FnOnce() -> S + Send,
    test: impl Fn(S::Value, &Mutex<Tally>) -> Result<(), TestCaseError> + Sync,
) {
    let tally = Mutex::new(Tally::new());
    let started = std::time::Instant::now();
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    // Generating these nested values recurses deeply in debug builds: use a big stack.
    let result = std::thread::scope(|scope| {
        let fuzz = || {
            let mut runner = proptest::test_runner::TestRunner::new(config);
            runner
                .run(&strategy(), |v| test(v, &tally))
                .map_err(|e| e.to_string())
        };
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(scope, fuzz)
            .expect("spawn")
            .join()
    })
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    eprintln!(
        "{name}: {cases} cases in {:.1} s, statuses {:?}",
        started.elapsed().as_secs_f64(),
        tally.lock().unwrap_or_else(|e| e.into_inner())
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Random requests to a node without a secret (node messages are decoded and acted on).
#[test]
fn random_requests_to_an_open_node() {
    let t = &fixture().open;
    run(
        "open node",
        1000,
        || request(t.range.clone()),
        |req, tally| {
            let _one_at_a_time = t.lock();
            check(t, &req, tally).map(drop)
        },
    );
    let _one_at_a_time = t.lock();
    assert_serving(t);
}

// ---------------------------------------------------------------------------------------
// Signed node traffic.

#[derive(Clone, Debug)]
enum Signing {
    /// Headers exactly as the strategy made them (random, partial or absent).
    AsIs,
    /// Well-formed headers with a random signature: always 403.
    Forged,
    /// A correct signature from too long ago: always 401.
    Stale,
    /// A correct signature: never 401 or 403.
    Valid,
}

/// Node messages to a node with a secret: anything not correctly signed is refused
/// (401/403) before it is decoded, and changes nothing.
#[test]
fn signed_routes_refuse_whatever_is_not_signed() {
    let t = &fixture().signed;
    let strategy = || {
        (
            request(t.range.clone()),
            proptest::sample::select(vec!["gossip", "replicate", "sync"]),
            prop_oneof![
                Just(Signing::AsIs),
                Just(Signing::Forged),
                Just(Signing::Stale),
                Just(Signing::Valid),
            ],
            "[0-9a-f]{64}",
        )
    };
    run(
        "signed node",
        300,
        strategy,
        |(mut req, kind, signing, forged), tally| {
            let _one_at_a_time = t.lock();
            let path = format!("/internal/v1/{kind}");
            req.method = "POST".into();
            req.target = path.clone();
            req.framing = Framing::Exact;
            let now = now_ms();
            let me = t.node.id.as_str();
            let sig = match signing {
                Signing::AsIs => None,
                Signing::Forged => Some(auth::Signature {
                    signature: format!("v2={forged}"),
                    ..auth::sign(SECRET.as_bytes(), "POST", &path, me, now, b"")
                }),
                Signing::Stale => Some(auth::sign(
                    SECRET.as_bytes(),
                    "POST",
                    &path,
                    me,
                    now - auth::WINDOW_MS - 5_000,
                    &req.body,
                )),
                Signing::Valid => Some(auth::sign(
                    SECRET.as_bytes(),
                    "POST",
                    &path,
                    me,
                    now,
                    &req.body,
                )),
            };
            if let Some(s) = sig {
                req.headers.retain(|(k, _)| !k.starts_with("x-repram-"));
                req.headers.push((
                    auth::TIMESTAMP_HEADER.into(),
                    s.timestamp_ms.to_string().into_bytes(),
                ));
                req.headers
                    .push((auth::NONCE_HEADER.into(), s.nonce.into_bytes()));
                req.headers
                    .push((auth::SIGNATURE_HEADER.into(), s.signature.into_bytes()));
                req.headers
                    .push((auth::RECEIVER_HEADER.into(), s.receiver.into_bytes()));
            }
            let before = snapshot(&t.node);
            let Outcome::Status(status) = check(t, &req, tally)? else {
                return Err(TestCaseError::fail("no answer"));
            };
            match signing {
                Signing::Forged => prop_assert_eq!(status, 403),
                Signing::Stale => prop_assert_eq!(status, 401),
                Signing::Valid => prop_assert!(status == 200 || status == 400, "{}", status),
                Signing::AsIs => prop_assert!(status == 401 || status == 403, "{}", status),
            }
            if !matches!(signing, Signing::Valid) {
                assert_unchanged(&before, &snapshot(&t.node), "not signed");
            }
            Ok(())
        },
    );
    let _one_at_a_time = t.lock();
    assert_serving(t);
}

// ---------------------------------------------------------------------------------------
// Malformed requests over raw TCP: answered with 4xx or closed, and the node keeps serving.

#[test]
fn malformed_requests_are_refused_and_the_node_keeps_serving() {
    let t = &fixture().open;
    let _one_at_a_time = t.lock();
    let huge_header = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let many_headers = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("x-h{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("binary request line", b"\x00\x01\x02\xff\r\n\r\n".to_vec()),
        ("no version", b"GET /health\r\n\r\n".to_vec()),
        ("unknown version", b"GET /health HTTP/9.9\r\nhost: x\r\n\r\n".to_vec()),
        ("space in target", b"GET /data/a b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
        ("header without colon", b"GET /health HTTP/1.1\r\nhost x\r\n\r\n".to_vec()),
        ("space before colon", b"GET /health HTTP/1.1\r\nhost : x\r\n\r\n".to_vec()),
        ("NUL in header", b"GET /health HTTP/1.1\r\nx-a: a\x00b\r\n\r\n".to_vec()),
        ("bare LF line ends", b"GET /health HTTP/1.1\nhost: x\n\n".to_vec()),
        ("obs-fold", b"GET /health HTTP/1.1\r\nx-a: a\r\n b\r\n\r\n".to_vec()),
        ("huge header", huge_header.into_bytes()),
        ("500 headers", many_headers.into_bytes()),
        (
            "length and chunked",
            b"PUT /data/k HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "bad chunk size",
            b"PUT /data/k HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "huge chunk size",
            b"PUT /data/k HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n".to_vec(),
        ),
        (
            "body shorter than its length (body timeout)",
            b"PUT /data/k HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc".to_vec(),
        ),
        (
            "node message shorter than its length",
            b"POST /internal/v1/replicate HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nRF\x01\x02".to_vec(),
        ),
        ("headers never finished (header timeout)", b"GET /health HTTP/1.1\r\nhost: x\r\n".to_vec()),
        ("request line never finished", b"GET /hea".to_vec()),
        (
            "pipelined garbage",
            b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".to_vec(),
        ),
        ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00".to_vec()),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("absolute form", b"PUT http://localhost/data/k?ttl=0 HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nv".to_vec()),
        ("HTTP/1.0 without host", b"GET /health HTTP/1.0\r\n\r\n".to_vec()),
        ("upgrade", b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n".to_vec()),
    ];
    for (what, raw) in cases {
        let before = snapshot(&t.node);
        let outcome = exchange(t.port, &raw);
        eprintln!("malformed: {what}: {outcome:?}");
        // Only the few requests that are valid (if odd) HTTP may be served. With both a
        // length and chunked framing, RFC 9112 lets a server go by the chunks alone.
        let may_serve = matches!(
            what,
            "HTTP/1.0 without host"
                | "upgrade"
                | "pipelined garbage"
                | "bare LF line ends"
                | "length and chunked"
        );
        if let Outcome::Status(s) = outcome {
            assert!(s < 500, "{what}: status {s}");
            assert!(s >= 400 || may_serve, "{what}: served with {s}");
        }
        if !may_serve {
            assert_unchanged(&before, &snapshot(&t.node), what);
        }
        assert_serving(t);
    }
}
