//! Configuration from the environment: one typed [`Config`], declared as one table.
//!
//! Every variable is optional; the defaults run a 3-node cluster on ports 8081-8083.
//! Surrounding whitespace is ignored and an empty value means "use the default" (or
//! "not set" for optional strings). Bad input never panics: [`ConfigError`] renders as
//! one line naming the variable, its value and what is allowed.
//!
//! `table.rs` declares each variable once (field, type, kind with default and range,
//! help text); `declare.rs` turns it into the struct, `Default`, parsing, the checks of
//! [`Config::validate`], `--help` and the effective configuration of `/status`. The
//! rules across variables live here in [`Config::validate`].

#[macro_use]
mod declare;
mod env;
mod error;
mod help;
mod kinds;
mod secret;
mod syntax;
mod table;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::Serialize;

pub use error::ConfigError;
pub use secret::Secret;
pub use table::Config;

/// Largest `REPRAM_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS_LIMIT: usize = 1_000_000;

/// Largest `REPRAM_CLEANUP_INTERVAL`, seconds (one day).
pub const MAX_CLEANUP_INTERVAL_S: u64 = 86_400;
/// Largest accepted TTL setting, seconds (ten years), so deadlines never overflow.
pub const TTL_LIMIT_S: u64 = 315_360_000;
/// Largest `REPRAM_WRITE_TIMEOUT_MS`, milliseconds (ten minutes).
pub const MAX_WRITE_TIMEOUT_MS: u64 = 600_000;

/// Every variable read: the names `--help` lists, and the filter applied to the
/// environment.
pub const VARS: [&str; table::NAMES.len()] = names_array(table::NAMES);

const fn names_array<const N: usize>(names: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = names[i];
        i += 1;
    }
    out
}

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

impl Config {
    /// Reads the process environment. Variables other than ours are ignored (even if
    /// not UTF-8); one of ours that is not UTF-8 is an error.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(&env::Vars::from_env()?)
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
        Config::from_vars(&env::Vars::new(iter)?)
    }

    fn from_vars(vars: &env::Vars) -> Result<Config, ConfigError> {
        let mut config = Config::parse(vars)?;
        if config.advertise_host.is_none() {
            // FluxOS may append its API port (`1.2.3.4:16137`); only the address is ours.
            config.advertise_host = config
                .flux_node_host_ip
                .as_deref()
                .and_then(crate::addr::parse_instance_ip)
                .map(|ip| ip.to_string());
        }
        if vars.text("REPRAM_MAX_INFLIGHT_BYTES").is_none() {
            // The default never makes the largest value unreceivable.
            let max_value = u64::try_from(config.max_value_bytes).unwrap_or(u64::MAX);
            config.max_inflight_bytes = config.max_inflight_bytes.max(max_value);
        }
        config.validate()
    }

    /// Checks every constraint: each variable's own (the table's) and those across
    /// variables (`NODE_COUNT <= MAX_PORTS`, range end `<= 65535`, `min <= default <=
    /// max` TTL, in-flight bytes `>=` the largest value). Use it on a `Config` built or
    /// changed by hand.
    pub fn validate(self) -> Result<Config, ConfigError> {
        self.check_each()?;
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
        let max_value = u64::try_from(self.max_value_bytes).unwrap_or(u64::MAX);
        if self.max_inflight_bytes < max_value {
            return Err(ConfigError::InflightBelowMaxValue {
                inflight: self.max_inflight_bytes,
                max_value,
            });
        }
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
        help::render(&table::help_rows())
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
}
