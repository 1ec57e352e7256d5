//! The table of variables: each one declared once, with its field, type, kind (parse,
//! range, default), `--help` text and, through its kind, how `/status` shows it.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;

use super::env::Vars;
use super::help::HelpRow;
use super::kinds::{
    HostName, HttpUrl, InstanceIp, Ip, Kind, Label, NonEmpty, OneOf, OriginList, PeerList, Port,
    ProxyList, SecretText, Span, TraceFilter, Unit, Whole,
};
use super::{
    ConfigError, HomePage, LogFormat, Secret, MAX_CLEANUP_INTERVAL_S, MAX_CONNECTIONS_LIMIT,
    MAX_WRITE_TIMEOUT_MS, TTL_LIMIT_S,
};
use crate::cidr::Cidr;

config_table! {
    /// The whole configuration of one repram-flux process.
    ///
    /// Build it with [`Config::from_env`] (or [`Config::from_iter`] in tests); a value
    /// built by hand should go through [`Config::validate`]. `Debug` never shows the
    /// secret.
    pub struct Config {
        /// `DISCOVERY_DOMAIN`: host scanned for peers over the port range. Default
        /// `localhost`; never empty.
        discovery_domain: String = "DISCOVERY_DOMAIN", NonEmpty { default: "localhost" },
            help "host scanned for peers; every address it resolves to is scanned";
        /// `BASE_PORT`: first port of the range. Default 8081; 1..=65535.
        base_port: u16 = "BASE_PORT", Port { default: 8081 },
            help "first port of the range";
        /// `MAX_PORTS`: number of ports in the range. Default 10; at least 1, and
        /// `base_port + max_ports - 1 <= 65535`.
        max_ports: u16 = "MAX_PORTS", Whole { default: 10, min: 1, max: u16::MAX },
            help format!("size of the range ({:?} by default)", Config::default().port_range());
        /// `NODE_COUNT`: nodes this process runs. Default 3; 1..=`max_ports`.
        node_count: u16 = "NODE_COUNT", Whole { default: 3, min: 1, max: u16::MAX },
            help "nodes this process runs (at most MAX_PORTS)";
        /// `REPLICATION_FACTOR`: replicas that count towards a write quorum (see
        /// [`Config::quorum`]). Default 3; at least 1.
        replication_factor: u16 = "REPLICATION_FACTOR",
            Whole { default: 3, min: 1, max: u16::MAX },
            help "replicas whose acknowledgement makes a write durable; quorum = \
                  floor(min(REPLICATION_FACTOR, live nodes) / 2) + 1";
        /// `BIND_ADDR`: address the nodes listen on. Default `0.0.0.0`.
        bind_addr: IpAddr = "BIND_ADDR", Ip { default: IpAddr::V4(Ipv4Addr::UNSPECIFIED) },
            help "address the nodes listen on";
        /// `DISCOVERY_PEERS`: extra `host:port` seeds (IPv6 as `[::1]:8081`), in the order
        /// given, duplicates dropped. Default empty.
        discovery_peers: Vec<String> = "DISCOVERY_PEERS", PeerList,
            help "extra host:port seeds, comma separated (IPv6 as [::1]:8081)";
        /// `ADVERTISE_HOST`, else `FLUX_NODE_HOST_IP`: host other instances use to reach
        /// this process. `None`: use the address a node was found at.
        advertise_host: Option<String> = "ADVERTISE_HOST", HostName,
            help "host name or IP address other instances use to reach this node",
            shown "FLUX_NODE_HOST_IP, else discovered";
        /// `FLUX_NODE_HOST_IP`: this Flux node's public IP, injected by FluxOS.
        flux_node_host_ip: Option<String> = "FLUX_NODE_HOST_IP", InstanceIp,
            help "public IP of this Flux node",
            shown "set by Flux";
        /// `FLUX_APP_NAME`: set by FluxOS; when present, instances are found through the
        /// Flux location API.
        flux_app_name: Option<String> = "FLUX_APP_NAME", Label,
            help "when set, instances are found through the Flux location API",
            shown "set by Flux";
        /// `REPRAM_FLUX_API`: base URL of the Flux API, no trailing slash. Default
        /// `https://api.runonflux.io`; must start with `http://` or `https://`.
        flux_api: String = "REPRAM_FLUX_API", HttpUrl { default: "https://api.runonflux.io" },
            help "Flux API base URL used with FLUX_APP_NAME";
        /// `REPRAM_CLEANUP_INTERVAL` (seconds): time between expiry sweeps. Default 30 s;
        /// 1 s to one day (expiry itself is exact; this only frees memory).
        cleanup_interval: Duration = "REPRAM_CLEANUP_INTERVAL",
            Span { unit: Unit::Seconds, default: 30, min: 1, max: MAX_CLEANUP_INTERVAL_S },
            help format!(
                "seconds between expiry sweeps, 1 to {MAX_CLEANUP_INTERVAL_S} \
                 (expiry itself is exact)"
            );
        /// `REPRAM_RATE_LIMIT`: requests per second per client IP on the public API.
        /// Default 100; 0 turns limiting off.
        rate_limit: u32 = "REPRAM_RATE_LIMIT", Whole { default: 100, min: 0, max: u32::MAX },
            help "requests per second per client IP on the public API (0 = off); peers exempt";
        /// `REPRAM_TRUSTED_PROXIES`: reverse proxies (IPs or CIDR networks, comma
        /// separated) whose `X-Forwarded-For` is believed, its last entry only; from any
        /// other peer the header is ignored. Default empty: nobody's. Replaces
        /// `REPRAM_TRUST_PROXY`, which is now a configuration error.
        trusted_proxies: Vec<Cidr> = "REPRAM_TRUSTED_PROXIES", ProxyList,
            help "reverse proxies (IPs/CIDRs, comma separated) whose X-Forwarded-For is \
                  believed, its last entry only; ignored from anyone else (replaces \
                  REPRAM_TRUST_PROXY)";
        /// `REPRAM_MIN_TTL` (seconds): shortest TTL; shorter requests are raised to it.
        /// Default 300; at least 1.
        min_ttl: u64 = "REPRAM_MIN_TTL", Whole { default: 300, min: 1, max: TTL_LIMIT_S },
            help "shortest TTL, seconds (at least 1)";
        /// `REPRAM_MAX_TTL` (seconds): longest TTL; longer requests are lowered to it.
        /// Default 86400; `min_ttl..=`[`TTL_LIMIT_S`](super::TTL_LIMIT_S).
        max_ttl: u64 = "REPRAM_MAX_TTL", Whole { default: 86_400, min: 1, max: TTL_LIMIT_S },
            help format!("longest TTL, seconds (at most {TTL_LIMIT_S})");
        /// `REPRAM_DEFAULT_TTL` (seconds): TTL of a write that names none. Default 3600;
        /// within `min_ttl..=max_ttl`.
        default_ttl: u64 = "REPRAM_DEFAULT_TTL",
            Whole { default: 3_600, min: 1, max: TTL_LIMIT_S },
            help "TTL when a write names none, seconds (between MIN and MAX)";
        /// `REPRAM_MAX_VALUE_BYTES`: largest value accepted (413 above). Default 10 MiB;
        /// at least 1.
        max_value_bytes: usize = "REPRAM_MAX_VALUE_BYTES",
            Whole { default: 10 * 1024 * 1024, min: 1, max: usize::MAX },
            help "largest value accepted (413 above)";
        /// `REPRAM_MAX_STORAGE_BYTES`: memory budget for keys and values of the process,
        /// whose nodes share one copy (507 when full).
        /// Default 1 GiB; at least 1.
        max_storage_bytes: u64 = "REPRAM_MAX_STORAGE_BYTES",
            Whole { default: 1024 * 1024 * 1024, min: 1, max: u64::MAX },
            help "memory budget for keys + values, per process (its nodes share one copy; \
                  507 when full)";
        /// `REPRAM_MAX_INFLIGHT_BYTES`: request-body bytes the whole process receives at
        /// once; an upload reserves its `Content-Length` before it is read (503 with
        /// `Retry-After` when it does not fit). Default 256 MiB, or `max_value_bytes` if
        /// larger; at least `max_value_bytes`.
        max_inflight_bytes: u64 = "REPRAM_MAX_INFLIGHT_BYTES",
            Whole { default: 256 * 1024 * 1024, min: 1, max: u64::MAX },
            help "request-body bytes the process receives at once, reserved from \
                  Content-Length before reading (503 + Retry-After when full); at least \
                  REPRAM_MAX_VALUE_BYTES";
        /// `REPRAM_WRITE_TIMEOUT_MS`: how long a PUT waits for its quorum before
        /// answering 202. Default 2000 ms; 1 ms to ten minutes.
        write_timeout: Duration = "REPRAM_WRITE_TIMEOUT_MS",
            Span { unit: Unit::Millis, default: 2_000, min: 1, max: MAX_WRITE_TIMEOUT_MS },
            help format!("milliseconds a PUT waits for its quorum, 1 to {MAX_WRITE_TIMEOUT_MS}");
        /// `REPRAM_CLUSTER_SECRET`: when set, node-to-node traffic is authenticated with
        /// it. Surrounding whitespace is ignored. A [`Secret`]: never printed by `Debug`
        /// or [`Config::effective_json`].
        cluster_secret: Option<Secret> = "REPRAM_CLUSTER_SECRET", SecretText,
            help "when set, all node-to-node traffic is authenticated with it";
        /// `REPRAM_MAX_CONNECTIONS`: open client connections per node. At the cap, the
        /// longest-idle connection is closed to make room; when every one is busy, the
        /// new connection gets 503. Default 1024;
        /// 1..=[`MAX_CONNECTIONS_LIMIT`](super::MAX_CONNECTIONS_LIMIT).
        max_connections: usize = "REPRAM_MAX_CONNECTIONS",
            Whole { default: 1024, min: 1, max: MAX_CONNECTIONS_LIMIT },
            help "open client connections per node; at the cap the longest-idle one is \
                  closed, 503 when all are busy";
        /// `REPRAM_CORS_ORIGINS`: browser origins allowed to call the public API
        /// (comma separated `scheme://host[:port]`, or `*` for any). Default empty: no
        /// CORS headers, so browsers only allow same-origin calls.
        cors_origins: Vec<String> = "REPRAM_CORS_ORIGINS", OriginList,
            help "browser origins allowed to call the API (https://app.example,... or *)";
        /// `REPRAM_LOG`, else `RUST_LOG`: tracing filter. Default `info`.
        log_filter: String = "REPRAM_LOG", TraceFilter { default: "info" },
            help "tracing filter, e.g. info or repram_flux=debug",
            or "RUST_LOG" ("(empty)", "tracing filter used when REPRAM_LOG is not set");
        /// `REPRAM_LOG_FORMAT`: `text` (default) or `json`.
        log_format: LogFormat = "REPRAM_LOG_FORMAT",
            OneOf {
                default: LogFormat::Text,
                words: &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                expected: "text or json",
            },
            help "text, or json for JSON lines";
        /// `REPRAM_HOME_PAGE`: the page at `/`, `dashboard` (default) or `fade`.
        home_page: HomePage = "REPRAM_HOME_PAGE",
            OneOf {
                default: HomePage::Dashboard,
                words: &[("dashboard", HomePage::Dashboard), ("fade", HomePage::Fade)],
                expected: "dashboard or fade",
            },
            help "page at /: dashboard, or fade for the Fade board (always at /fade)";
    }
}
