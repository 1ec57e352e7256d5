//! Configuration from the environment: one typed [`Config`], read with `envy`.
//!
//! Every variable is optional; the defaults run a 3-node cluster on ports 8081-8083.
//! Surrounding whitespace is ignored and an empty value means "use the default" (or
//! "not set" for optional strings). Bad input never panics: [`ConfigError`] renders as
//! one line naming the variable, its value and what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::addr::parse_instance_ip;

const DEFAULT_DISCOVERY_DOMAIN: &str = "localhost";
const DEFAULT_BASE_PORT: u16 = 8081;
const DEFAULT_MAX_PORTS: u16 = 10;
const DEFAULT_NODE_COUNT: u16 = 3;
const DEFAULT_REPLICATION_FACTOR: u16 = 3;
const DEFAULT_BIND_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
const DEFAULT_FLUX_API: &str = "https://api.runonflux.io";
const DEFAULT_CLEANUP_INTERVAL_S: u64 = 30;
const DEFAULT_RATE_LIMIT: u32 = 100;
const DEFAULT_MIN_TTL: u64 = 300;
const DEFAULT_MAX_TTL: u64 = 86_400;
const DEFAULT_DEFAULT_TTL: u64 = 3_600;
const DEFAULT_MAX_VALUE_BYTES: usize = 10 * 1024 * 1024;
const DEFAULT_MAX_STORAGE_BYTES: u64 = 1024 * 1024 * 1024;
const DEFAULT_WRITE_TIMEOUT_MS: u64 = 2_000;
const DEFAULT_LOG_FILTER: &str = "info";
const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Largest `REPRAM_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Largest `REPRAM_CLEANUP_INTERVAL`, seconds (one day).
pub const MAX_CLEANUP_INTERVAL_S: u64 = 86_400;
/// Largest accepted TTL setting, seconds (ten years), so deadlines never overflow.
pub const TTL_LIMIT_S: u64 = 315_360_000;
/// Largest `REPRAM_WRITE_TIMEOUT_MS`, milliseconds (ten minutes).
pub const MAX_WRITE_TIMEOUT_MS: u64 = 600_000;
/// Longest host name accepted (DNS's limit; also fits every gossip message).
const MAX_HOST_NAME: usize = 253;

/// Longest value (in characters) quoted in an error message.
const SHOWN_VALUE_MAX: usize = 120;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text lines (the default).
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The name used in `REPRAM_LOG_FORMAT`: `"text"` or `"json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

/// What a node serves at `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HomePage {
    /// The cluster dashboard (the default).
    Dashboard,
    /// The Fade board (also always at `/fade`).
    Fade,
}

impl HomePage {
    /// The name used in `REPRAM_HOME_PAGE`.
    pub fn as_str(self) -> &'static str {
        match self {
            HomePage::Dashboard => "dashboard",
            HomePage::Fade => "fade",
        }
    }
}

/// The whole configuration of one repram-flux process.
///
/// Build it with [`Config::from_env`] (or [`Config::from_iter`] in tests); a value built
/// by hand should go through [`Config::validate`]. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// `DISCOVERY_DOMAIN`: host scanned for peers over the port range. Default
    /// `localhost`; never empty.
    pub discovery_domain: String,
    /// `BASE_PORT`: first port of the range. Default 8081; 1..=65535.
    pub base_port: u16,
    /// `MAX_PORTS`: number of ports in the range. Default 10; at least 1, and
    /// `base_port + max_ports - 1 <= 65535`.
    pub max_ports: u16,
    /// `NODE_COUNT`: nodes this process runs. Default 3; 1..=`max_ports`.
    pub node_count: u16,
    /// `REPLICATION_FACTOR`: replicas that count towards a write quorum (see
    /// [`Config::quorum`]). Default 3; at least 1.
    pub replication_factor: u16,
    /// `BIND_ADDR`: address the nodes listen on. Default `0.0.0.0`.
    pub bind_addr: IpAddr,
    /// `DISCOVERY_PEERS`: extra `host:port` seeds (IPv6 as `[::1]:8081`), in the order
    /// given, duplicates dropped. Default empty.
    pub discovery_peers: Vec<String>,
    /// `ADVERTISE_HOST`, else `FLUX_NODE_HOST_IP`: host other instances use to reach
    /// this process. `None`: use the address a node was found at.
    pub advertise_host: Option<String>,
    /// `FLUX_NODE_HOST_IP`: this Flux node's public IP, injected by FluxOS.
    pub flux_node_host_ip: Option<String>,
    /// `FLUX_APP_NAME`: set by FluxOS; when present, instances are found through the
    /// Flux location API.
    pub flux_app_name: Option<String>,
    /// `REPRAM_FLUX_API`: base URL of the Flux API, no trailing slash. Default
    /// `https://api.runonflux.io`; must start with `http://` or `https://`.
    pub flux_api: String,
    /// `REPRAM_CLEANUP_INTERVAL` (seconds): time between expiry sweeps. Default 30 s;
    /// 1 s to one day (expiry itself is exact; this only frees memory).
    pub cleanup_interval: Duration,
    /// `REPRAM_RATE_LIMIT`: requests per second per client IP on the public API.
    /// Default 100; 0 turns limiting off.
    pub rate_limit: u32,
    /// `REPRAM_TRUST_PROXY`: take the client IP from the `X-Forwarded-For` header set by
    /// a reverse proxy in front of the nodes (on Flux, the Flux Domain Manager fronts all
    /// client traffic). Default false; `true`/`false`/`1`/`0`, any case.
    pub trust_proxy: bool,
    /// `REPRAM_MIN_TTL` (seconds): shortest TTL; shorter requests are raised to it.
    /// Default 300; at least 1.
    pub min_ttl: u64,
    /// `REPRAM_MAX_TTL` (seconds): longest TTL; longer requests are lowered to it.
    /// Default 86400; `min_ttl..=`[`TTL_LIMIT_S`].
    pub max_ttl: u64,
    /// `REPRAM_DEFAULT_TTL` (seconds): TTL of a write that names none. Default 3600;
    /// within `min_ttl..=max_ttl`.
    pub default_ttl: u64,
    /// `REPRAM_MAX_VALUE_BYTES`: largest value accepted (413 above). Default 10 MiB;
    /// at least 1.
    pub max_value_bytes: usize,
    /// `REPRAM_MAX_STORAGE_BYTES`: per-node memory budget for values (507 when full).
    /// Default 1 GiB; at least 1.
    pub max_storage_bytes: u64,
    /// `REPRAM_WRITE_TIMEOUT_MS`: how long a PUT waits for its quorum before answering
    /// 202. Default 2000 ms; 1 ms to ten minutes.
    pub write_timeout: Duration,
    /// `REPRAM_CLUSTER_SECRET`: when set, node-to-node traffic is authenticated with it.
    /// Surrounding whitespace is ignored. Never printed by `Debug` or
    /// [`Config::effective_json`].
    pub cluster_secret: Option<String>,
    /// `REPRAM_MAX_CONNECTIONS`: open client connections per node. At the cap, the
    /// longest-idle connection is closed to make room; when every one is busy, the new
    /// connection gets 503. Default 1024; 1..=[`MAX_CONNECTIONS_LIMIT`].
    pub max_connections: usize,
    /// `REPRAM_CORS_ORIGINS`: browser origins allowed to call the public API
    /// (comma separated `scheme://host[:port]`, or `*` for any). Default empty: no CORS
    /// headers, so browsers only allow same-origin calls.
    pub cors_origins: Vec<String>,
    /// `REPRAM_LOG`, else `RUST_LOG`: tracing filter. Default `info`.
    pub log_filter: String,
    /// `REPRAM_LOG_FORMAT`: `text` (default) or `json`.
    pub log_format: LogFormat,
    /// `REPRAM_HOME_PAGE`: the page at `/`, `dashboard` (default) or `fade`.
    pub home_page: HomePage,
}

/// A configuration problem. `to_string()` is one line naming the variable, the value
/// and what is allowed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// The value has the wrong shape (not a number, not an address, unknown word).
    #[error("{var}={value}: expected {expected}")]
    Invalid {
        /// Variable name.
        var: &'static str,
        /// The value as given (control characters escaped, long values shortened).
        value: String,
        /// What the variable accepts.
        expected: &'static str,
    },
    /// A whole number outside the range the variable accepts.
    #[error("{var}={value}: expected a whole number from {min} to {max}")]
    OutOfRange {
        /// Variable name.
        var: &'static str,
        /// The value as given.
        value: String,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// A whole number below the variable's minimum.
    #[error("{var}={value}: must be at least {min}")]
    TooSmall {
        /// Variable name.
        var: &'static str,
        /// The value as given.
        value: String,
        /// Smallest accepted value.
        min: u64,
    },
    /// A required string is empty (only possible for a [`Config`] built by hand).
    #[error("{var}=: must not be empty")]
    Empty {
        /// Variable name.
        var: &'static str,
    },
    /// An item of `DISCOVERY_PEERS` is not `host:port`.
    #[error(
        "DISCOVERY_PEERS={value}: expected host:port items separated by commas{}",
        bad_item_suffix(.value, .item)
    )]
    BadPeer {
        /// The whole variable.
        value: String,
        /// The offending item.
        item: String,
    },
    /// More nodes than ports in the range.
    #[error("NODE_COUNT={node_count} exceeds MAX_PORTS={max_ports}")]
    NodeCountExceedsMaxPorts {
        /// `NODE_COUNT`.
        node_count: u16,
        /// `MAX_PORTS`.
        max_ports: u16,
    },
    /// The port range runs past 65535.
    #[error("BASE_PORT+MAX_PORTS-1 = {end} exceeds 65535")]
    PortRangeOverflow {
        /// `BASE_PORT + MAX_PORTS - 1`.
        end: u32,
    },
    /// `REPRAM_MIN_TTL` is above `REPRAM_MAX_TTL`.
    #[error("REPRAM_MIN_TTL={min} exceeds REPRAM_MAX_TTL={max}")]
    MinTtlExceedsMax {
        /// `REPRAM_MIN_TTL`.
        min: u64,
        /// `REPRAM_MAX_TTL`.
        max: u64,
    },
    /// `REPRAM_DEFAULT_TTL` is outside `REPRAM_MIN_TTL..=REPRAM_MAX_TTL`.
    #[error(
        "REPRAM_DEFAULT_TTL={default} is outside REPRAM_MIN_TTL..=REPRAM_MAX_TTL ({min}..={max})"
    )]
    DefaultTtlOutOfRange {
        /// `REPRAM_DEFAULT_TTL`.
        default: u64,
        /// `REPRAM_MIN_TTL`.
        min: u64,
        /// `REPRAM_MAX_TTL`.
        max: u64,
    },
    /// A known variable holds bytes that are not UTF-8.
    #[error("{var}: value is not valid UTF-8")]
    NotUnicode {
        /// Variable name.
        var: &'static str,
    },
    /// The environment could not be read (an `envy` error).
    #[error("environment: {0}")]
    Env(String),
}

/// `" (bad item: x)"` when the variable holds more than the offending item.
fn bad_item_suffix(value: &str, item: &str) -> String {
    if value == item {
        String::new()
    } else {
        format!(" (bad item: {item})")
    }
}

/// Every variable read: the names `--help` lists, and the filter applied before `envy`
/// sees the environment.
pub const VARS: [&str; 27] = [
    "DISCOVERY_DOMAIN",
    "BASE_PORT",
    "MAX_PORTS",
    "NODE_COUNT",
    "REPLICATION_FACTOR",
    "BIND_ADDR",
    "DISCOVERY_PEERS",
    "ADVERTISE_HOST",
    "FLUX_NODE_HOST_IP",
    "FLUX_APP_NAME",
    "REPRAM_FLUX_API",
    "REPRAM_CLEANUP_INTERVAL",
    "REPRAM_RATE_LIMIT",
    "REPRAM_TRUST_PROXY",
    "REPRAM_MIN_TTL",
    "REPRAM_MAX_TTL",
    "REPRAM_DEFAULT_TTL",
    "REPRAM_MAX_VALUE_BYTES",
    "REPRAM_MAX_STORAGE_BYTES",
    "REPRAM_WRITE_TIMEOUT_MS",
    "REPRAM_CLUSTER_SECRET",
    "REPRAM_MAX_CONNECTIONS",
    "REPRAM_CORS_ORIGINS",
    "REPRAM_LOG",
    "RUST_LOG",
    "REPRAM_LOG_FORMAT",
    "REPRAM_HOME_PAGE",
];

/// `(variable, default, meaning)` rows of the help table, in [`VARS`] order.
fn help_rows() -> [(&'static str, String, String); 27] {
    [
        (
            "DISCOVERY_DOMAIN",
            DEFAULT_DISCOVERY_DOMAIN.to_string(),
            "host scanned for peers; every address it resolves to is scanned".to_string(),
        ),
        (
            "BASE_PORT",
            DEFAULT_BASE_PORT.to_string(),
            "first port of the range".to_string(),
        ),
        (
            "MAX_PORTS",
            DEFAULT_MAX_PORTS.to_string(),
            format!(
                "size of the range ({}..={} by default)",
                DEFAULT_BASE_PORT,
                DEFAULT_BASE_PORT + DEFAULT_MAX_PORTS - 1
            ),
        ),
        (
            "NODE_COUNT",
            DEFAULT_NODE_COUNT.to_string(),
            "nodes this process runs (at most MAX_PORTS)".to_string(),
        ),
        (
            "REPLICATION_FACTOR",
            DEFAULT_REPLICATION_FACTOR.to_string(),
            "replicas whose acknowledgement makes a write durable; quorum = \
             floor(min(REPLICATION_FACTOR, live nodes) / 2) + 1"
                .to_string(),
        ),
        (
            "BIND_ADDR",
            DEFAULT_BIND_ADDR.to_string(),
            "address the nodes listen on".to_string(),
        ),
        (
            "DISCOVERY_PEERS",
            "(empty)".to_string(),
            "extra host:port seeds, comma separated (IPv6 as [::1]:8081)".to_string(),
        ),
        (
            "ADVERTISE_HOST",
            "FLUX_NODE_HOST_IP, else discovered".to_string(),
            "host name or IP address other instances use to reach this node".to_string(),
        ),
        (
            "FLUX_NODE_HOST_IP",
            "set by Flux".to_string(),
            "public IP of this Flux node".to_string(),
        ),
        (
            "FLUX_APP_NAME",
            "set by Flux".to_string(),
            "when set, instances are found through the Flux location API".to_string(),
        ),
        (
            "REPRAM_FLUX_API",
            DEFAULT_FLUX_API.to_string(),
            "Flux API base URL used with FLUX_APP_NAME".to_string(),
        ),
        (
            "REPRAM_CLEANUP_INTERVAL",
            DEFAULT_CLEANUP_INTERVAL_S.to_string(),
            format!(
                "seconds between expiry sweeps, 1 to {MAX_CLEANUP_INTERVAL_S} \
                 (expiry itself is exact)"
            ),
        ),
        (
            "REPRAM_RATE_LIMIT",
            DEFAULT_RATE_LIMIT.to_string(),
            "requests per second per client IP on the public API (0 = off); peers exempt"
                .to_string(),
        ),
        (
            "REPRAM_TRUST_PROXY",
            "false".to_string(),
            "true behind a reverse proxy (Flux): the client IP comes from X-Forwarded-For"
                .to_string(),
        ),
        (
            "REPRAM_MIN_TTL",
            DEFAULT_MIN_TTL.to_string(),
            "shortest TTL, seconds (at least 1)".to_string(),
        ),
        (
            "REPRAM_MAX_TTL",
            DEFAULT_MAX_TTL.to_string(),
            format!("longest TTL, seconds (at most {TTL_LIMIT_S})"),
        ),
        (
            "REPRAM_DEFAULT_TTL",
            DEFAULT_DEFAULT_TTL.to_string(),
            "TTL when a write names none, seconds (between MIN and MAX)".to_string(),
        ),
        (
            "REPRAM_MAX_VALUE_BYTES",
            DEFAULT_MAX_VALUE_BYTES.to_string(),
            "largest value accepted (413 above)".to_string(),
        ),
        (
            "REPRAM_MAX_STORAGE_BYTES",
            DEFAULT_MAX_STORAGE_BYTES.to_string(),
            "per-node memory budget for values (507 when full)".to_string(),
        ),
        (
            "REPRAM_WRITE_TIMEOUT_MS",
            DEFAULT_WRITE_TIMEOUT_MS.to_string(),
            format!("milliseconds a PUT waits for its quorum, 1 to {MAX_WRITE_TIMEOUT_MS}"),
        ),
        (
            "REPRAM_CLUSTER_SECRET",
            "(empty)".to_string(),
            "when set, all node-to-node traffic is authenticated with it".to_string(),
        ),
        (
            "REPRAM_MAX_CONNECTIONS",
            DEFAULT_MAX_CONNECTIONS.to_string(),
            "open client connections per node; at the cap the longest-idle one is closed, \
             503 when all are busy"
                .to_string(),
        ),
        (
            "REPRAM_CORS_ORIGINS",
            "(empty)".to_string(),
            "browser origins allowed to call the API (https://app.example,... or *)".to_string(),
        ),
        (
            "REPRAM_LOG",
            DEFAULT_LOG_FILTER.to_string(),
            "tracing filter, e.g. info or repram_flux=debug".to_string(),
        ),
        (
            "RUST_LOG",
            "(empty)".to_string(),
            "tracing filter used when REPRAM_LOG is not set".to_string(),
        ),
        (
            "REPRAM_LOG_FORMAT",
            LogFormat::Text.as_str().to_string(),
            "text, or json for JSON lines".to_string(),
        ),
        (
            "REPRAM_HOME_PAGE",
            HomePage::Dashboard.as_str().to_string(),
            "page at /: dashboard, or fade for the Fade board (always at /fade)".to_string(),
        ),
    ]
}

/// The variables exactly as read, before parsing. `envy` lowercases names, so the
/// field names are the lowercased variable names.
#[derive(Debug, Default, Deserialize)]
struct Raw {
    discovery_domain: Option<String>,
    base_port: Option<String>,
    max_ports: Option<String>,
    node_count: Option<String>,
    replication_factor: Option<String>,
    bind_addr: Option<String>,
    discovery_peers: Option<String>,
    advertise_host: Option<String>,
    flux_node_host_ip: Option<String>,
    flux_app_name: Option<String>,
    repram_flux_api: Option<String>,
    repram_cleanup_interval: Option<String>,
    repram_rate_limit: Option<String>,
    repram_trust_proxy: Option<String>,
    repram_min_ttl: Option<String>,
    repram_max_ttl: Option<String>,
    repram_default_ttl: Option<String>,
    repram_max_value_bytes: Option<String>,
    repram_max_storage_bytes: Option<String>,
    repram_write_timeout_ms: Option<String>,
    repram_cluster_secret: Option<String>,
    repram_max_connections: Option<String>,
    repram_cors_origins: Option<String>,
    repram_log: Option<String>,
    rust_log: Option<String>,
    repram_log_format: Option<String>,
    repram_home_page: Option<String>,
}

impl Raw {
    fn parse(self) -> Result<Config, ConfigError> {
        let flux_node_host_ip = text(&self.flux_node_host_ip);
        // FluxOS may append its API port (`1.2.3.4:16137`); only the address is ours.
        let flux_ip = match flux_node_host_ip {
            None => None,
            Some(s) => Some(parse_instance_ip(s).ok_or_else(|| ConfigError::Invalid {
                var: "FLUX_NODE_HOST_IP",
                value: shown(s),
                expected: "an IP address, optionally with :port",
            })?),
        };
        let advertise_host = match text(&self.advertise_host) {
            Some(s) => Some(parse_host("ADVERTISE_HOST", s)?),
            None => flux_ip.map(|ip| ip.to_string()),
        };
        let flux_node_host_ip = flux_node_host_ip.map(str::to_string);
        let (log_var, log_filter) = match (text(&self.repram_log), text(&self.rust_log)) {
            (Some(f), _) => ("REPRAM_LOG", f),
            (None, Some(f)) => ("RUST_LOG", f),
            (None, None) => ("REPRAM_LOG", DEFAULT_LOG_FILTER),
        };
        check_log_filter(log_var, log_filter)?;

        Ok(Config {
            discovery_domain: text(&self.discovery_domain)
                .unwrap_or(DEFAULT_DISCOVERY_DOMAIN)
                .to_string(),
            base_port: parse_port("BASE_PORT", &self.base_port, DEFAULT_BASE_PORT)?,
            max_ports: number("MAX_PORTS", &self.max_ports, DEFAULT_MAX_PORTS, 1, u16::MAX)?,
            node_count: number(
                "NODE_COUNT",
                &self.node_count,
                DEFAULT_NODE_COUNT,
                1,
                u16::MAX,
            )?,
            replication_factor: number(
                "REPLICATION_FACTOR",
                &self.replication_factor,
                DEFAULT_REPLICATION_FACTOR,
                1,
                u16::MAX,
            )?,
            bind_addr: match text(&self.bind_addr) {
                None => DEFAULT_BIND_ADDR,
                Some(s) => s.parse().map_err(|_| ConfigError::Invalid {
                    var: "BIND_ADDR",
                    value: shown(s),
                    expected: "an IP address such as 0.0.0.0 or ::",
                })?,
            },
            discovery_peers: match text(&self.discovery_peers) {
                None => Vec::new(),
                Some(s) => parse_peers(s)?,
            },
            advertise_host,
            flux_node_host_ip,
            flux_app_name: text(&self.flux_app_name).map(str::to_string),
            flux_api: match text(&self.repram_flux_api) {
                None => DEFAULT_FLUX_API.to_string(),
                Some(s) => parse_url("REPRAM_FLUX_API", s)?,
            },
            cleanup_interval: Duration::from_secs(number(
                "REPRAM_CLEANUP_INTERVAL",
                &self.repram_cleanup_interval,
                DEFAULT_CLEANUP_INTERVAL_S,
                1,
                MAX_CLEANUP_INTERVAL_S,
            )?),
            rate_limit: number(
                "REPRAM_RATE_LIMIT",
                &self.repram_rate_limit,
                DEFAULT_RATE_LIMIT,
                0,
                u32::MAX,
            )?,
            trust_proxy: match text(&self.repram_trust_proxy) {
                None => false,
                Some(s) if s == "1" || s.eq_ignore_ascii_case("true") => true,
                Some(s) if s == "0" || s.eq_ignore_ascii_case("false") => false,
                Some(s) => {
                    return Err(ConfigError::Invalid {
                        var: "REPRAM_TRUST_PROXY",
                        value: shown(s),
                        expected: "true, false, 1 or 0",
                    })
                }
            },
            min_ttl: number(
                "REPRAM_MIN_TTL",
                &self.repram_min_ttl,
                DEFAULT_MIN_TTL,
                1,
                TTL_LIMIT_S,
            )?,
            max_ttl: number(
                "REPRAM_MAX_TTL",
                &self.repram_max_ttl,
                DEFAULT_MAX_TTL,
                1,
                TTL_LIMIT_S,
            )?,
            default_ttl: number(
                "REPRAM_DEFAULT_TTL",
                &self.repram_default_ttl,
                DEFAULT_DEFAULT_TTL,
                1,
                TTL_LIMIT_S,
            )?,
            max_value_bytes: number(
                "REPRAM_MAX_VALUE_BYTES",
                &self.repram_max_value_bytes,
                DEFAULT_MAX_VALUE_BYTES,
                1,
                usize::MAX,
            )?,
            max_storage_bytes: number(
                "REPRAM_MAX_STORAGE_BYTES",
                &self.repram_max_storage_bytes,
                DEFAULT_MAX_STORAGE_BYTES,
                1,
                u64::MAX,
            )?,
            write_timeout: Duration::from_millis(number(
                "REPRAM_WRITE_TIMEOUT_MS",
                &self.repram_write_timeout_ms,
                DEFAULT_WRITE_TIMEOUT_MS,
                1,
                MAX_WRITE_TIMEOUT_MS,
            )?),
            cluster_secret: text(&self.repram_cluster_secret).map(str::to_string),
            max_connections: number(
                "REPRAM_MAX_CONNECTIONS",
                &self.repram_max_connections,
                DEFAULT_MAX_CONNECTIONS,
                1,
                MAX_CONNECTIONS_LIMIT,
            )?,
            cors_origins: match text(&self.repram_cors_origins) {
                None => Vec::new(),
                Some(s) => parse_origins(s)?,
            },
            log_filter: log_filter.to_string(),
            log_format: match text(&self.repram_log_format) {
                None => LogFormat::Text,
                Some(s) if s.eq_ignore_ascii_case("text") => LogFormat::Text,
                Some(s) if s.eq_ignore_ascii_case("json") => LogFormat::Json,
                Some(s) => {
                    return Err(ConfigError::Invalid {
                        var: "REPRAM_LOG_FORMAT",
                        value: shown(s),
                        expected: "text or json",
                    })
                }
            },
            home_page: match text(&self.repram_home_page) {
                None => HomePage::Dashboard,
                Some(s) if s.eq_ignore_ascii_case("dashboard") => HomePage::Dashboard,
                Some(s) if s.eq_ignore_ascii_case("fade") => HomePage::Fade,
                Some(s) => {
                    return Err(ConfigError::Invalid {
                        var: "REPRAM_HOME_PAGE",
                        value: shown(s),
                        expected: "dashboard or fade",
                    })
                }
            },
        })
    }
}

/// The trimmed value, or `None` when unset or blank.
fn text(raw: &Option<String>) -> Option<&str> {
    raw.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `value` made safe for a one-line message.
fn shown(value: &str) -> String {
    crate::text::one_line(value, SHOWN_VALUE_MAX)
}

/// Parses a whole number in `min..=max` (blank = `default`).
fn number<T>(
    var: &'static str,
    raw: &Option<String>,
    default: T,
    min: T,
    max: T,
) -> Result<T, ConfigError>
where
    T: Copy + TryFrom<u64> + TryInto<u64>,
{
    let Some(s) = text(raw) else {
        return Ok(default);
    };
    // Bounds always fit in u64 for the types used here; saturate just in case.
    let min64: u64 = min.try_into().unwrap_or(u64::MAX);
    let max64: u64 = max.try_into().unwrap_or(u64::MAX);
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Invalid {
            var,
            value: shown(s),
            expected: "a whole number",
        });
    }
    let out_of_range = || ConfigError::OutOfRange {
        var,
        value: shown(s),
        min: min64,
        max: max64,
    };
    // Only digits remain, so a parse failure means overflow.
    let n: u64 = digits.parse().map_err(|_| out_of_range())?;
    if n > max64 {
        return Err(out_of_range());
    }
    if n < min64 {
        return Err(ConfigError::TooSmall {
            var,
            value: shown(s),
            min: min64,
        });
    }
    T::try_from(n).map_err(|_| out_of_range())
}

/// Parses a port number 1..=65535 (blank = `default`).
fn parse_port(var: &'static str, raw: &Option<String>, default: u16) -> Result<u16, ConfigError> {
    number(var, raw, default, 1, u16::MAX).map_err(|_| ConfigError::Invalid {
        var,
        value: raw.as_deref().map(|s| shown(s.trim())).unwrap_or_default(),
        expected: "a port number from 1 to 65535",
    })
}

/// Splits `DISCOVERY_PEERS`: comma separated, trimmed, empty items and duplicates dropped.
fn parse_peers(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut peers: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if !is_host_port(item) {
            return Err(ConfigError::BadPeer {
                value: shown(value),
                item: shown(item),
            });
        }
        if !peers.iter().any(|p| p == item) {
            peers.push(item.to_string());
        }
    }
    Ok(peers)
}

/// A host name: 1-253 characters of letters, digits, `-`, `.` and `_`.
fn is_host_name(host: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&host.len())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// `ADVERTISE_HOST`: a host name or an IP address (IPv6 with or without brackets, kept
/// without), short enough to travel in every gossip message.
fn parse_host(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let unbracketed = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(value);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if is_host_name(value) {
        return Ok(value.to_string());
    }
    Err(ConfigError::Invalid {
        var,
        value: shown(value),
        expected: "a host name or IP address",
    })
}

/// `host:port` with a port 1..=65535; the host is a name, an IPv4 address, or an IPv6
/// address in brackets (`[::1]:8081`).
fn is_host_port(item: &str) -> bool {
    let (host_ok, port) = if let Some(rest) = item.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((host, port)) => (host.parse::<Ipv6Addr>().is_ok(), port),
            None => return false,
        }
    } else {
        match item.rsplit_once(':') {
            Some((host, port)) => (is_host_name(host), port),
            None => return false,
        }
    };
    host_ok
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && matches!(port.parse::<u16>(), Ok(p) if p >= 1)
}

/// Splits `REPRAM_CORS_ORIGINS`: comma separated, trimmed, empty items and duplicates
/// dropped; each item is `*` or an origin `http(s)://host[:port]` (no path), lowercased
/// because browsers send the scheme and host in lowercase.
fn parse_origins(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut origins: Vec<String> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let origin = item.trim_end_matches('/').to_ascii_lowercase();
        if !(origin == "*" || is_origin(&origin)) {
            return Err(ConfigError::Invalid {
                var: "REPRAM_CORS_ORIGINS",
                value: shown(&format!("{value}{}", bad_item_suffix(value, item))),
                expected: "comma-separated origins such as https://fade.repram.io, or *",
            });
        }
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    Ok(origins)
}

/// `http://host[:port]` or `https://host[:port]`: a name, an IPv4 address or a bracketed
/// IPv6 address, and nothing after the port.
fn is_origin(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    // `port` keeps its leading ':' (or is empty when no port is given).
    let (host_ok, port) = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, port)) => (ip.parse::<Ipv6Addr>().is_ok(), port),
            None => return false,
        }
    } else {
        let (host, port) = match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority, ""),
        };
        let name_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'));
        (name_ok, port)
    };
    let port_ok = match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(p) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && matches!(p.parse::<u16>(), Ok(n) if n >= 1)
        }
    };
    host_ok && port_ok
}

/// An `http://` or `https://` URL with a host part; trailing slashes removed.
fn parse_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(trimmed.to_string())
        }
        _ => Err(ConfigError::Invalid {
            var,
            value: shown(value),
            expected: "an http:// or https:// URL",
        }),
    }
}

/// Rejects a filter `tracing_subscriber` cannot parse.
fn check_log_filter(var: &'static str, filter: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|_| ConfigError::Invalid {
            var,
            value: shown(filter),
            expected: "a tracing filter such as info or repram_flux=debug,hyper=warn",
        })
}

impl Config {
    /// Reads the process environment. Variables other than ours are ignored (even if
    /// not UTF-8); one of ours that is not UTF-8 is an error.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut pairs = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(var) = key.to_str().and_then(known_var) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::NotUnicode { var })?;
            pairs.push((var.to_string(), value));
        }
        Config::from_iter(pairs)
    }

    /// Reads `(variable, value)` pairs as if they were the environment (the last
    /// pair wins for a repeated name; unknown names are ignored), then [`validate`]s.
    ///
    /// [`validate`]: Config::validate
    #[allow(clippy::should_implement_trait)] // fallible, so not `FromIterator`
    pub fn from_iter<I>(iter: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        // Keep only exact names: envy lowercases keys, so `node_count` would otherwise
        // also count, and a repeated key would be a serde "duplicate field" error.
        let vars: BTreeMap<String, String> = iter
            .into_iter()
            .filter(|(k, _)| known_var(k).is_some())
            .collect();
        let raw: Raw = envy::from_iter(vars).map_err(|e| ConfigError::Env(e.to_string()))?;
        raw.parse()?.validate()
    }

    /// Checks every constraint, including those across variables (`NODE_COUNT <=
    /// MAX_PORTS`, range end `<= 65535`, `min <= default <= max` TTL). Use it on a
    /// `Config` built or changed by hand.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if self.discovery_domain.trim().is_empty() {
            return Err(ConfigError::Empty {
                var: "DISCOVERY_DOMAIN",
            });
        }
        if self.base_port == 0 {
            return Err(ConfigError::Invalid {
                var: "BASE_PORT",
                value: "0".to_string(),
                expected: "a port number from 1 to 65535",
            });
        }
        at_least("MAX_PORTS", self.max_ports.into(), 1)?;
        at_least("NODE_COUNT", self.node_count.into(), 1)?;
        at_least("REPLICATION_FACTOR", self.replication_factor.into(), 1)?;
        let end = u32::from(self.base_port) + u32::from(self.max_ports) - 1;
        if end > u32::from(u16::MAX) {
            return Err(ConfigError::PortRangeOverflow { end });
        }
        if self.node_count > self.max_ports {
            return Err(ConfigError::NodeCountExceedsMaxPorts {
                node_count: self.node_count,
                max_ports: self.max_ports,
            });
        }
        for peer in &self.discovery_peers {
            if !is_host_port(peer) {
                return Err(ConfigError::BadPeer {
                    value: shown(&self.discovery_peers.join(",")),
                    item: shown(peer),
                });
            }
        }
        if let Some(host) = &self.advertise_host {
            parse_host("ADVERTISE_HOST", host)?;
        }
        if self.flux_api.trim().is_empty() {
            return Err(ConfigError::Empty {
                var: "REPRAM_FLUX_API",
            });
        }
        if self.cleanup_interval.is_zero() {
            return Err(ConfigError::TooSmall {
                var: "REPRAM_CLEANUP_INTERVAL",
                value: "0".to_string(),
                min: 1,
            });
        }
        at_most(
            "REPRAM_CLEANUP_INTERVAL",
            self.cleanup_interval.as_secs(),
            1,
            MAX_CLEANUP_INTERVAL_S,
        )?;
        at_least("REPRAM_MIN_TTL", self.min_ttl, 1)?;
        at_most("REPRAM_MAX_TTL", self.max_ttl, 1, TTL_LIMIT_S)?;
        if self.min_ttl > self.max_ttl {
            return Err(ConfigError::MinTtlExceedsMax {
                min: self.min_ttl,
                max: self.max_ttl,
            });
        }
        if !(self.min_ttl..=self.max_ttl).contains(&self.default_ttl) {
            return Err(ConfigError::DefaultTtlOutOfRange {
                default: self.default_ttl,
                min: self.min_ttl,
                max: self.max_ttl,
            });
        }
        at_least(
            "REPRAM_MAX_VALUE_BYTES",
            u64::try_from(self.max_value_bytes).unwrap_or(u64::MAX),
            1,
        )?;
        at_least("REPRAM_MAX_STORAGE_BYTES", self.max_storage_bytes, 1)?;
        let max_connections = u64::try_from(self.max_connections).unwrap_or(u64::MAX);
        at_least("REPRAM_MAX_CONNECTIONS", max_connections, 1)?;
        at_most(
            "REPRAM_MAX_CONNECTIONS",
            max_connections,
            1,
            MAX_CONNECTIONS_LIMIT as u64,
        )?;
        for origin in &self.cors_origins {
            if !(origin == "*" || is_origin(origin)) {
                return Err(ConfigError::Invalid {
                    var: "REPRAM_CORS_ORIGINS",
                    value: shown(origin),
                    expected: "comma-separated origins such as https://fade.repram.io, or *",
                });
            }
        }
        let timeout_ms = u64::try_from(self.write_timeout.as_millis()).unwrap_or(u64::MAX);
        if self.write_timeout.is_zero() {
            return Err(ConfigError::TooSmall {
                var: "REPRAM_WRITE_TIMEOUT_MS",
                value: "0".to_string(),
                min: 1,
            });
        }
        at_most(
            "REPRAM_WRITE_TIMEOUT_MS",
            timeout_ms,
            1,
            MAX_WRITE_TIMEOUT_MS,
        )?;
        check_log_filter("REPRAM_LOG", &self.log_filter)?;
        Ok(self)
    }

    /// The ports nodes may claim: `base_port ..= base_port + max_ports - 1`.
    pub fn port_range(&self) -> RangeInclusive<u16> {
        let end = self
            .base_port
            .saturating_add(self.max_ports.saturating_sub(1));
        self.base_port..=end
    }

    /// Acknowledgements a write needs, counting the local store:
    /// `floor(min(replication_factor, live_cluster_size) / 2) + 1`.
    ///
    /// `live_cluster_size` is the number of live nodes *including this one*; 0 is
    /// treated as 1. With the default factor 3: one node → 1, two → 2, three or more → 2.
    pub fn quorum(&self, live_cluster_size: usize) -> usize {
        let live = live_cluster_size.max(1);
        let factor = usize::from(self.replication_factor).max(1);
        factor.min(live) / 2 + 1
    }

    /// The TTL, in seconds, to store a write with: `default_ttl` when the request names
    /// none, else the requested TTL clamped into `min_ttl..=max_ttl`.
    pub fn clamp_ttl(&self, requested: Option<u64>) -> u64 {
        match requested {
            None => self.default_ttl,
            // Not `u64::clamp`: that panics when min > max on an unvalidated config.
            Some(ttl) => ttl.max(self.min_ttl).min(self.max_ttl),
        }
    }

    /// Text for `--help`: usage, what the program does, and every variable with its
    /// default and meaning.
    pub fn help_text() -> String {
        let rows = help_rows();
        let name_w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        let default_w = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
        let mut out = String::from(
            "usage: repram-flux [--help|--version]\n\
             \x20 -h, --help     print this help and exit\n\
             \x20 -V, --version  print the version and exit\n\
             \n\
             Runs a whole REPRAM cluster (a replicated, ephemeral, in-memory key/value\n\
             store) in one process: NODE_COUNT nodes each claim a free port in\n\
             BASE_PORT..=BASE_PORT+MAX_PORTS-1, find each other by scanning\n\
             DISCOVERY_DOMAIN over that range (plus DISCOVERY_PEERS and, on Flux, the\n\
             Flux location API), and replicate every write; values expire after their\n\
             TTL. All settings come from the environment; the defaults run a 3-node\n\
             cluster on ports 8081-8083.\n\
             \n\
             Environment:\n",
        );
        out.push_str(&format!(
            "  {:name_w$}  {:default_w$}  MEANING\n",
            "VARIABLE", "DEFAULT"
        ));
        for (name, default, meaning) in rows {
            out.push_str(&format!(
                "  {name:name_w$}  {default:default_w$}  {meaning}\n"
            ));
        }
        out
    }

    /// The effective configuration for `/status`: keys are the variable names, the
    /// secret is `"<redacted>"` when set and `null` when not.
    pub fn effective_json(&self) -> Value {
        json!({
            "DISCOVERY_DOMAIN": self.discovery_domain,
            "BASE_PORT": self.base_port,
            "MAX_PORTS": self.max_ports,
            "NODE_COUNT": self.node_count,
            "REPLICATION_FACTOR": self.replication_factor,
            "BIND_ADDR": self.bind_addr.to_string(),
            "DISCOVERY_PEERS": self.discovery_peers,
            "ADVERTISE_HOST": self.advertise_host,
            "FLUX_NODE_HOST_IP": self.flux_node_host_ip,
            "FLUX_APP_NAME": self.flux_app_name,
            "REPRAM_FLUX_API": self.flux_api,
            "REPRAM_CLEANUP_INTERVAL": self.cleanup_interval.as_secs(),
            "REPRAM_RATE_LIMIT": self.rate_limit,
            "REPRAM_TRUST_PROXY": self.trust_proxy,
            "REPRAM_MIN_TTL": self.min_ttl,
            "REPRAM_MAX_TTL": self.max_ttl,
            "REPRAM_DEFAULT_TTL": self.default_ttl,
            "REPRAM_MAX_VALUE_BYTES": self.max_value_bytes,
            "REPRAM_MAX_STORAGE_BYTES": self.max_storage_bytes,
            "REPRAM_WRITE_TIMEOUT_MS": u64::try_from(self.write_timeout.as_millis()).unwrap_or(u64::MAX),
            "REPRAM_CLUSTER_SECRET": self.redacted_secret(),
            "REPRAM_MAX_CONNECTIONS": self.max_connections,
            "REPRAM_CORS_ORIGINS": self.cors_origins,
            "REPRAM_LOG": self.log_filter,
            "REPRAM_LOG_FORMAT": self.log_format,
            "REPRAM_HOME_PAGE": self.home_page,
        })
    }

    /// Defaults for tests: loopback only, fast writes, no rate limit, TTLs from 1 s.
    #[doc(hidden)]
    pub fn for_test() -> Config {
        Config {
            bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            discovery_domain: "127.0.0.1".to_string(),
            min_ttl: 1,
            rate_limit: 0,
            write_timeout: Duration::from_millis(500),
            ..Config::default()
        }
    }

    fn redacted_secret(&self) -> Option<&'static str> {
        self.cluster_secret.as_ref().map(|_| "<redacted>")
    }
}

/// The canonical name if `name` is one of our variables.
fn known_var(name: &str) -> Option<&'static str> {
    VARS.iter().copied().find(|v| *v == name)
}

fn at_least(var: &'static str, value: u64, min: u64) -> Result<(), ConfigError> {
    if value < min {
        return Err(ConfigError::TooSmall {
            var,
            value: value.to_string(),
            min,
        });
    }
    Ok(())
}

fn at_most(var: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value > max {
        return Err(ConfigError::OutOfRange {
            var,
            value: value.to_string(),
            min,
            max,
        });
    }
    Ok(())
}

impl Default for Config {
    /// Every variable at its default (the same as an empty environment).
    fn default() -> Config {
        Config {
            discovery_domain: DEFAULT_DISCOVERY_DOMAIN.to_string(),
            base_port: DEFAULT_BASE_PORT,
            max_ports: DEFAULT_MAX_PORTS,
            node_count: DEFAULT_NODE_COUNT,
            replication_factor: DEFAULT_REPLICATION_FACTOR,
            bind_addr: DEFAULT_BIND_ADDR,
            discovery_peers: Vec::new(),
            advertise_host: None,
            flux_node_host_ip: None,
            flux_app_name: None,
            flux_api: DEFAULT_FLUX_API.to_string(),
            cleanup_interval: Duration::from_secs(DEFAULT_CLEANUP_INTERVAL_S),
            rate_limit: DEFAULT_RATE_LIMIT,
            trust_proxy: false,
            min_ttl: DEFAULT_MIN_TTL,
            max_ttl: DEFAULT_MAX_TTL,
            default_ttl: DEFAULT_DEFAULT_TTL,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            max_storage_bytes: DEFAULT_MAX_STORAGE_BYTES,
            write_timeout: Duration::from_millis(DEFAULT_WRITE_TIMEOUT_MS),
            cluster_secret: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            cors_origins: Vec::new(),
            log_filter: DEFAULT_LOG_FILTER.to_string(),
            log_format: LogFormat::Text,
            home_page: HomePage::Dashboard,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("discovery_domain", &self.discovery_domain)
            .field("base_port", &self.base_port)
            .field("max_ports", &self.max_ports)
            .field("node_count", &self.node_count)
            .field("replication_factor", &self.replication_factor)
            .field("bind_addr", &self.bind_addr)
            .field("discovery_peers", &self.discovery_peers)
            .field("advertise_host", &self.advertise_host)
            .field("flux_node_host_ip", &self.flux_node_host_ip)
            .field("flux_app_name", &self.flux_app_name)
            .field("flux_api", &self.flux_api)
            .field("cleanup_interval", &self.cleanup_interval)
            .field("rate_limit", &self.rate_limit)
            .field("trust_proxy", &self.trust_proxy)
            .field("min_ttl", &self.min_ttl)
            .field("max_ttl", &self.max_ttl)
            .field("default_ttl", &self.default_ttl)
            .field("max_value_bytes", &self.max_value_bytes)
            .field("max_storage_bytes", &self.max_storage_bytes)
            .field("write_timeout", &self.write_timeout)
            .field("cluster_secret", &self.redacted_secret())
            .field("max_connections", &self.max_connections)
            .field("cors_origins", &self.cors_origins)
            .field("log_filter", &self.log_filter)
            .field("log_format", &self.log_format)
            .field("home_page", &self.home_page)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_iter(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        match env(pairs) {
            Ok(c) => panic!("expected an error for {pairs:?}, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_environment_gives_defaults() {
        let c = env(&[]).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.discovery_domain, "localhost");
        assert_eq!(c.base_port, 8081);
        assert_eq!(c.max_ports, 10);
        assert_eq!(c.node_count, 3);
        assert_eq!(c.replication_factor, 3);
        assert_eq!(c.bind_addr, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert!(c.discovery_peers.is_empty());
        assert_eq!(c.advertise_host, None);
        assert_eq!(c.flux_node_host_ip, None);
        assert_eq!(c.flux_app_name, None);
        assert_eq!(c.flux_api, "https://api.runonflux.io");
        assert_eq!(c.cleanup_interval, Duration::from_secs(30));
        assert_eq!(c.rate_limit, 100);
        assert!(!c.trust_proxy);
        assert_eq!((c.min_ttl, c.max_ttl, c.default_ttl), (300, 86_400, 3_600));
        assert_eq!(c.max_value_bytes, 10_485_760);
        assert_eq!(c.max_storage_bytes, 1_073_741_824);
        assert_eq!(c.write_timeout, Duration::from_millis(2_000));
        assert_eq!(c.cluster_secret, None);
        assert_eq!(c.log_filter, "info");
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.port_range(), 8081..=8090);
        assert_eq!(Config::default().validate(), Ok(Config::default()));
    }

    #[test]
    fn for_test_is_valid_and_fast() {
        let c = Config::for_test();
        assert_eq!(c.bind_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(c.discovery_domain, "127.0.0.1");
        assert_eq!((c.min_ttl, c.rate_limit), (1, 0));
        assert_eq!(c.write_timeout, Duration::from_millis(500));
        assert!(c.clone().validate().is_ok());
    }

    #[test]
    fn values_are_parsed_and_trimmed() {
        let c = env(&[
            ("NODE_COUNT", " 5 "),
            ("MAX_PORTS", "+20"),
            ("BASE_PORT", "9000"),
            ("BIND_ADDR", "::"),
            ("REPRAM_LOG_FORMAT", "JSON"),
            ("REPRAM_WRITE_TIMEOUT_MS", "750"),
            ("REPRAM_CLEANUP_INTERVAL", "5"),
            ("REPRAM_RATE_LIMIT", "0"),
            ("REPRAM_FLUX_API", "http://flux.example/"),
            ("REPRAM_CLUSTER_SECRET", "  s3cret "),
            ("FLUX_APP_NAME", "fade"),
            ("UNRELATED", "whatever"),
            ("node_count", "not ours"),
        ])
        .unwrap();
        assert_eq!(c.node_count, 5);
        assert_eq!(c.max_ports, 20);
        assert_eq!(c.port_range(), 9000..=9019);
        assert_eq!(c.bind_addr, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.write_timeout, Duration::from_millis(750));
        assert_eq!(c.cleanup_interval, Duration::from_secs(5));
        assert_eq!(c.rate_limit, 0);
        assert_eq!(c.flux_api, "http://flux.example");
        assert_eq!(c.cluster_secret.as_deref(), Some("s3cret"));
        assert_eq!(c.flux_app_name.as_deref(), Some("fade"));
    }

    #[test]
    fn empty_values_mean_default_or_none() {
        let c = env(&[
            ("NODE_COUNT", ""),
            ("BASE_PORT", "  "),
            ("DISCOVERY_DOMAIN", ""),
            ("BIND_ADDR", ""),
            ("REPRAM_CLUSTER_SECRET", ""),
            ("ADVERTISE_HOST", ""),
            ("FLUX_APP_NAME", " "),
            ("REPRAM_LOG_FORMAT", ""),
        ])
        .unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn last_repeated_pair_wins() {
        let c = env(&[("NODE_COUNT", "2"), ("NODE_COUNT", "4")]).unwrap();
        assert_eq!(c.node_count, 4);
    }

    #[test]
    fn exact_error_messages() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("NODE_COUNT", "abc")],
                "NODE_COUNT=abc: expected a whole number",
            ),
            (
                &[("NODE_COUNT", "-1")],
                "NODE_COUNT=-1: expected a whole number",
            ),
            (
                &[("NODE_COUNT", "1.5")],
                "NODE_COUNT=1.5: expected a whole number",
            ),
            (&[("NODE_COUNT", "0")], "NODE_COUNT=0: must be at least 1"),
            (
                &[("BASE_PORT", "70000")],
                "BASE_PORT=70000: expected a port number from 1 to 65535",
            ),
            (
                &[("BASE_PORT", "0")],
                "BASE_PORT=0: expected a port number from 1 to 65535",
            ),
            (
                &[("NODE_COUNT", "11")],
                "NODE_COUNT=11 exceeds MAX_PORTS=10",
            ),
            (
                &[("BASE_PORT", "65531")],
                "BASE_PORT+MAX_PORTS-1 = 65540 exceeds 65535",
            ),
            (
                &[("REPLICATION_FACTOR", "0")],
                "REPLICATION_FACTOR=0: must be at least 1",
            ),
            (
                &[("REPRAM_MIN_TTL", "600"), ("REPRAM_MAX_TTL", "300")],
                "REPRAM_MIN_TTL=600 exceeds REPRAM_MAX_TTL=300",
            ),
            (
                &[("REPRAM_DEFAULT_TTL", "10")],
                "REPRAM_DEFAULT_TTL=10 is outside REPRAM_MIN_TTL..=REPRAM_MAX_TTL (300..=86400)",
            ),
            (
                &[("BIND_ADDR", "nope")],
                "BIND_ADDR=nope: expected an IP address such as 0.0.0.0 or ::",
            ),
            (
                &[("DISCOVERY_PEERS", "foo")],
                "DISCOVERY_PEERS=foo: expected host:port items separated by commas",
            ),
            (
                &[("DISCOVERY_PEERS", "a:1,foo")],
                "DISCOVERY_PEERS=a:1,foo: expected host:port items separated by commas \
                 (bad item: foo)",
            ),
            (
                &[("REPRAM_LOG_FORMAT", "xml")],
                "REPRAM_LOG_FORMAT=xml: expected text or json",
            ),
            (
                &[("MAX_PORTS", "99999999")],
                "MAX_PORTS=99999999: expected a whole number from 1 to 65535",
            ),
            (
                &[("MAX_PORTS", "99999999999999999999999999")],
                "MAX_PORTS=99999999999999999999999999: expected a whole number from 1 to 65535",
            ),
            (
                &[("REPRAM_CLEANUP_INTERVAL", "0")],
                "REPRAM_CLEANUP_INTERVAL=0: must be at least 1",
            ),
            (
                &[("REPRAM_FLUX_API", "ftp://x")],
                "REPRAM_FLUX_API=ftp://x: expected an http:// or https:// URL",
            ),
            (
                &[("REPRAM_TRUST_PROXY", "yes")],
                "REPRAM_TRUST_PROXY=yes: expected true, false, 1 or 0",
            ),
        ];
        for (pairs, want) in cases {
            assert_eq!(err(pairs), *want, "for {pairs:?}");
        }
    }

    #[test]
    fn every_variable_error_names_the_variable() {
        let bad: &[(&str, &str)] = &[
            ("BASE_PORT", "x"),
            ("MAX_PORTS", "x"),
            ("NODE_COUNT", "x"),
            ("REPLICATION_FACTOR", "x"),
            ("BIND_ADDR", "x"),
            ("DISCOVERY_PEERS", "x"),
            ("REPRAM_FLUX_API", "x"),
            ("REPRAM_CLEANUP_INTERVAL", "x"),
            ("REPRAM_RATE_LIMIT", "x"),
            ("REPRAM_MIN_TTL", "x"),
            ("REPRAM_MAX_TTL", "x"),
            ("REPRAM_DEFAULT_TTL", "x"),
            ("REPRAM_MAX_VALUE_BYTES", "x"),
            ("REPRAM_MAX_STORAGE_BYTES", "x"),
            ("REPRAM_WRITE_TIMEOUT_MS", "x"),
            ("REPRAM_LOG_FORMAT", "x"),
            ("REPRAM_TRUST_PROXY", "x"),
            ("REPRAM_LOG", "foo=notalevel"),
            ("RUST_LOG", "foo=notalevel"),
            ("REPRAM_RATE_LIMIT", "4294967296"),
            ("REPRAM_MAX_TTL", "99999999999"),
            ("REPRAM_WRITE_TIMEOUT_MS", "0"),
            ("REPRAM_WRITE_TIMEOUT_MS", "18446744073709551616"),
            ("REPRAM_MAX_VALUE_BYTES", "0"),
            ("REPRAM_MAX_STORAGE_BYTES", "0"),
        ];
        for (var, value) in bad {
            let msg = err(&[(var, value)]);
            assert!(
                msg.starts_with(&format!("{var}={value}: ")),
                "{var}={value} gave {msg:?}"
            );
            assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn error_values_stay_on_one_line() {
        let msg = err(&[("NODE_COUNT", "1\n2")]);
        assert_eq!(msg, "NODE_COUNT=1\\n2: expected a whole number");
        let long = "x".repeat(10_000);
        let msg = err(&[("NODE_COUNT", long.as_str())]);
        assert!(msg.len() < 300, "{msg}");
    }

    #[test]
    fn discovery_peers() {
        let c = env(&[(
            "DISCOVERY_PEERS",
            " 10.0.0.1:8081, ,node-b.example:9000,[::1]:8082,,10.0.0.1:8081 ",
        )])
        .unwrap();
        assert_eq!(
            c.discovery_peers,
            ["10.0.0.1:8081", "node-b.example:9000", "[::1]:8082"]
        );
        assert!(env(&[("DISCOVERY_PEERS", " , ")])
            .unwrap()
            .discovery_peers
            .is_empty());
        for bad in [
            "foo",
            "::1:8081",
            "[::1]",
            "[::1]8081",
            "[nope]:8081",
            "host:0",
            "host:65536",
            "host:",
            ":8081",
            "host:+1",
            "http://host:8081",
            "a b:1",
        ] {
            assert_eq!(
                env(&[("DISCOVERY_PEERS", bad)]),
                Err(ConfigError::BadPeer {
                    value: bad.to_string(),
                    item: bad.to_string()
                }),
                "{bad}"
            );
        }
    }

    #[test]
    fn advertise_host_falls_back_to_flux_node_host_ip() {
        let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7")]).unwrap();
        assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
        assert_eq!(c.flux_node_host_ip.as_deref(), Some("203.0.113.7"));
        let c = env(&[
            ("FLUX_NODE_HOST_IP", "203.0.113.7"),
            ("ADVERTISE_HOST", "node.example"),
        ])
        .unwrap();
        assert_eq!(c.advertise_host.as_deref(), Some("node.example"));
        let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7"), ("ADVERTISE_HOST", "")]).unwrap();
        assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
        assert_eq!(env(&[]).unwrap().advertise_host, None);
    }

    #[test]
    fn advertise_host_is_a_host_that_fits_in_gossip() {
        // FluxOS may append its API port: only the address is advertised.
        let c = env(&[("FLUX_NODE_HOST_IP", "203.0.113.7:16137")]).unwrap();
        assert_eq!(c.advertise_host.as_deref(), Some("203.0.113.7"));
        assert_eq!(c.flux_node_host_ip.as_deref(), Some("203.0.113.7:16137"));
        let c = env(&[("ADVERTISE_HOST", "[2001:db8::1]")]).unwrap();
        assert_eq!(c.advertise_host.as_deref(), Some("2001:db8::1"));
        let name = "a".repeat(253);
        let c = env(&[("ADVERTISE_HOST", name.as_str())]).unwrap();
        assert_eq!(c.advertise_host, Some(name));
        for (var, bad) in [
            ("ADVERTISE_HOST", "a".repeat(254)),
            ("ADVERTISE_HOST", "node example".into()),
            ("ADVERTISE_HOST", "node.example:8081".into()),
            ("ADVERTISE_HOST", "[node]".into()),
            ("FLUX_NODE_HOST_IP", "node.example".into()),
            ("FLUX_NODE_HOST_IP", "1.2.3.4:port".into()),
        ] {
            let err = env(&[(var, bad.as_str())]).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{var}=")), "{err}");
        }
        let hand_made = Config {
            advertise_host: Some("x".repeat(300)),
            ..Config::default()
        };
        assert!(hand_made.validate().is_err());
    }

    #[test]
    fn trust_proxy_accepts_booleans_and_digits() {
        for (value, want) in [
            ("true", true),
            (" TRUE ", true),
            ("True", true),
            ("1", true),
            ("false", false),
            ("FALSE", false),
            ("0", false),
            ("", false),
        ] {
            assert_eq!(
                env(&[("REPRAM_TRUST_PROXY", value)]).unwrap().trust_proxy,
                want,
                "{value:?}"
            );
        }
        for bad in ["yes", "no", "2", "on", "truee", "-1"] {
            assert_eq!(
                err(&[("REPRAM_TRUST_PROXY", bad)]),
                format!("REPRAM_TRUST_PROXY={bad}: expected true, false, 1 or 0")
            );
        }
        assert!(Config::help_text().contains("REPRAM_TRUST_PROXY"));
    }

    #[test]
    fn cors_origins_are_origins_or_a_star() {
        assert!(env(&[]).unwrap().cors_origins.is_empty());
        let c = env(&[(
            "REPRAM_CORS_ORIGINS",
            " https://Fade.repram.io/ , http://localhost:3000,https://fade.repram.io,,http://[::1]:8080",
        )])
        .unwrap();
        assert_eq!(
            c.cors_origins,
            [
                "https://fade.repram.io",
                "http://localhost:3000",
                "http://[::1]:8080"
            ]
        );
        assert_eq!(
            env(&[("REPRAM_CORS_ORIGINS", "*")]).unwrap().cors_origins,
            ["*"]
        );
        for bad in [
            "fade.repram.io",
            "ftp://x.io",
            "https://",
            "https://x.io/app",
            "https://x.io:0",
            "https://x.io:99999",
            "https://x.io:",
            "https://a b",
            "https://[::1",
            "https://[zz]:80",
            "https://x.io?q",
        ] {
            let msg = err(&[("REPRAM_CORS_ORIGINS", &format!("https://ok.io,{bad}"))]);
            assert!(
                msg.starts_with("REPRAM_CORS_ORIGINS=") && msg.contains(bad.trim_end_matches('/')),
                "{bad:?}: {msg}"
            );
        }
        let hand_built = Config {
            cors_origins: vec!["nope".to_string()],
            ..Config::default()
        };
        assert!(hand_built.validate().is_err());
    }

    #[test]
    fn max_connections_has_bounds() {
        assert_eq!(env(&[]).unwrap().max_connections, 1024);
        assert_eq!(
            env(&[("REPRAM_MAX_CONNECTIONS", "5")])
                .unwrap()
                .max_connections,
            5
        );
        assert_eq!(
            err(&[("REPRAM_MAX_CONNECTIONS", "0")]),
            "REPRAM_MAX_CONNECTIONS=0: must be at least 1"
        );
        assert!(err(&[("REPRAM_MAX_CONNECTIONS", "1000001")]).contains("1000000"));
    }

    #[test]
    fn repram_log_beats_rust_log() {
        let c = env(&[("RUST_LOG", "warn"), ("REPRAM_LOG", "debug")]).unwrap();
        assert_eq!(c.log_filter, "debug");
        let c = env(&[("RUST_LOG", "warn")]).unwrap();
        assert_eq!(c.log_filter, "warn");
        let c = env(&[("RUST_LOG", "warn"), ("REPRAM_LOG", " ")]).unwrap();
        assert_eq!(c.log_filter, "warn");
        assert_eq!(env(&[]).unwrap().log_filter, "info");
    }

    #[test]
    fn quorum_table() {
        let with_rf = |rf| Config {
            replication_factor: rf,
            ..Config::default()
        };
        let rf3 = with_rf(3);
        for (size, want) in [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2), (10, 2)] {
            assert_eq!(rf3.quorum(size), want, "rf=3 size={size}");
        }
        assert_eq!(with_rf(5).quorum(10), 3);
        assert_eq!(with_rf(5).quorum(4), 3);
        for size in [0, 1, 2, 10] {
            assert_eq!(with_rf(1).quorum(size), 1);
        }
        assert_eq!(with_rf(0).quorum(5), 1);
        assert_eq!(with_rf(u16::MAX).quorum(usize::MAX), 32_768);
    }

    #[test]
    fn clamp_ttl() {
        let c = Config::default();
        assert_eq!(c.clamp_ttl(None), 3_600);
        assert_eq!(c.clamp_ttl(Some(0)), 300);
        assert_eq!(c.clamp_ttl(Some(299)), 300);
        assert_eq!(c.clamp_ttl(Some(600)), 600);
        assert_eq!(c.clamp_ttl(Some(86_401)), 86_400);
        assert_eq!(c.clamp_ttl(Some(u64::MAX)), 86_400);
        let broken = Config {
            min_ttl: 10,
            max_ttl: 5,
            ..Config::default()
        };
        assert_eq!(broken.clamp_ttl(Some(7)), 5); // no panic on an unvalidated config
    }

    #[test]
    fn validate_catches_hand_built_configs() {
        let base = Config::default;
        let cases = [
            (
                Config {
                    discovery_domain: String::new(),
                    ..base()
                },
                "DISCOVERY_DOMAIN=: must not be empty",
            ),
            (
                Config {
                    max_ports: 0,
                    ..base()
                },
                "MAX_PORTS=0: must be at least 1",
            ),
            (
                Config {
                    base_port: 65535,
                    max_ports: 2,
                    node_count: 1,
                    ..base()
                },
                "BASE_PORT+MAX_PORTS-1 = 65536 exceeds 65535",
            ),
            (
                Config {
                    cleanup_interval: Duration::ZERO,
                    ..base()
                },
                "REPRAM_CLEANUP_INTERVAL=0: must be at least 1",
            ),
            (
                Config {
                    write_timeout: Duration::ZERO,
                    ..base()
                },
                "REPRAM_WRITE_TIMEOUT_MS=0: must be at least 1",
            ),
            (
                Config {
                    discovery_peers: vec!["nope".to_string()],
                    ..base()
                },
                "DISCOVERY_PEERS=nope: expected host:port items separated by commas",
            ),
        ];
        for (config, want) in cases {
            assert_eq!(config.validate().unwrap_err().to_string(), want);
        }
        let fast = Config {
            cleanup_interval: Duration::from_millis(100),
            ..base()
        };
        assert!(fast.validate().is_ok());
        let extremes = env(&[
            ("BASE_PORT", "65535"),
            ("MAX_PORTS", "1"),
            ("NODE_COUNT", "1"),
        ])
        .unwrap();
        assert_eq!(extremes.port_range(), 65535..=65535);
    }

    #[test]
    fn help_text_mentions_every_variable() {
        let help = Config::help_text();
        assert!(help.starts_with("usage: repram-flux [--help|--version]"));
        assert!(help.contains("-h") && help.contains("-V"));
        for var in VARS {
            assert!(help.contains(var), "help lacks {var}");
        }
        for default in [
            "localhost",
            "8081",
            "86400",
            "10485760",
            "1073741824",
            "2000",
        ] {
            assert!(help.contains(default), "help lacks {default}");
        }
    }

    #[test]
    fn secret_is_redacted() {
        let c = env(&[("REPRAM_CLUSTER_SECRET", "hunter2-very-secret")]).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:#?}").contains("hunter2"));
        assert!(format!("{c:?}").contains("<redacted>"));
        let json = c.effective_json();
        assert!(!json.to_string().contains("hunter2"));
        assert_eq!(json["REPRAM_CLUSTER_SECRET"], "<redacted>");
        assert_eq!(
            Config::default().effective_json()["REPRAM_CLUSTER_SECRET"],
            Value::Null
        );
    }

    #[test]
    fn effective_json_uses_variable_names() {
        let json = Config::default().effective_json();
        let obj = json.as_object().unwrap();
        for var in VARS.iter().filter(|v| **v != "RUST_LOG") {
            assert!(obj.contains_key(*var), "missing {var}");
        }
        assert_eq!(json["BASE_PORT"], 8081);
        assert_eq!(json["BIND_ADDR"], "0.0.0.0");
        assert_eq!(json["REPRAM_WRITE_TIMEOUT_MS"], 2000);
        assert_eq!(json["REPRAM_CLEANUP_INTERVAL"], 30);
        assert_eq!(json["REPRAM_LOG_FORMAT"], "text");
        assert_eq!(json["REPRAM_TRUST_PROXY"], false);
        assert_eq!(json["DISCOVERY_PEERS"], serde_json::json!([]));
        assert_eq!(json["ADVERTISE_HOST"], Value::Null);
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        // Only checks that it runs; the test process environment is not controlled.
        let _ = Config::from_env();
    }
}
