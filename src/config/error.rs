//! [`ConfigError`]: what is wrong with a variable, as one line.

/// Longest value (in characters) quoted in an error message.
const SHOWN_VALUE_MAX: usize = 120;

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
    /// A variable that is no longer read; `instead` says what replaced it.
    #[error("{var} is retired: {instead}")]
    Retired {
        /// Variable name.
        var: &'static str,
        /// What to use instead.
        instead: &'static str,
    },
    /// An item of `REPRAM_TRUSTED_PROXIES` is not an IP address or CIDR network.
    #[error(
        "REPRAM_TRUSTED_PROXIES={value}: expected IP addresses or networks such as \
         203.0.113.7, 198.51.100.0/24 or 2001:db8::/32, separated by commas{}",
        bad_item_suffix(.value, .item)
    )]
    BadProxy {
        /// The whole variable.
        value: String,
        /// The offending item.
        item: String,
    },
    /// `REPRAM_MAX_INFLIGHT_BYTES` below `REPRAM_MAX_VALUE_BYTES`: the largest value
    /// could never be received.
    #[error("REPRAM_MAX_INFLIGHT_BYTES={inflight} is below REPRAM_MAX_VALUE_BYTES={max_value}")]
    InflightBelowMaxValue {
        /// `REPRAM_MAX_INFLIGHT_BYTES`.
        inflight: u64,
        /// `REPRAM_MAX_VALUE_BYTES`.
        max_value: u64,
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
}

/// `" (bad item: x)"` when the variable holds more than the offending item.
pub(super) fn bad_item_suffix(value: &str, item: &str) -> String {
    if value == item {
        String::new()
    } else {
        format!(" (bad item: {item})")
    }
}

impl ConfigError {
    /// The same error quoting `text` (as given) instead of the parsed number.
    pub(super) fn with_value(self, text: &str) -> ConfigError {
        match self {
            ConfigError::OutOfRange { var, min, max, .. } => ConfigError::OutOfRange {
                var,
                value: shown(text),
                min,
                max,
            },
            ConfigError::TooSmall { var, min, .. } => ConfigError::TooSmall {
                var,
                value: shown(text),
                min,
            },
            other => other,
        }
    }
}

/// `value` made safe for a one-line message.
pub(super) fn shown(value: &str) -> String {
    crate::text::one_line(value, SHOWN_VALUE_MAX)
}
