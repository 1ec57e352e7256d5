//! Kinds of variable: how a row of the table parses its text, checks a typed value
//! (the same rule, for a [`Config`](super::Config) built by hand), shows it in `/status`
//! and shows its default in `--help`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use super::error::{shown, ConfigError};
use super::secret::Secret;
use super::syntax;
use crate::addr::parse_instance_ip;
use crate::cidr::Cidr;

/// One kind of variable. `text` given to [`Kind::parse`] is trimmed and never empty
/// (an unset or blank variable takes [`Kind::default_value`]).
pub(super) trait Kind {
    /// The typed value in [`Config`](super::Config).
    type Value;
    /// The value when the variable is unset or blank.
    fn default_value(&self) -> Self::Value;
    /// The value from the variable's text, or what is wrong with it.
    fn parse(&self, var: &'static str, text: &str) -> Result<Self::Value, ConfigError>;
    /// The rule `parse` applies, on a typed value.
    fn check(&self, var: &'static str, value: &Self::Value) -> Result<(), ConfigError>;
    /// The value in the effective configuration of `/status`.
    fn show(&self, value: &Self::Value) -> Value;
    /// The default in `--help`.
    fn show_default(&self) -> String;
}

/// A string that must not be empty.
pub(super) struct NonEmpty {
    pub default: &'static str,
}

impl Kind for NonEmpty {
    type Value = String;
    fn default_value(&self) -> String {
        self.default.to_string()
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<String, ConfigError> {
        Ok(text.to_string())
    }
    fn check(&self, var: &'static str, value: &String) -> Result<(), ConfigError> {
        match value.trim().is_empty() {
            true => Err(ConfigError::Empty { var }),
            false => Ok(()),
        }
    }
    fn show(&self, value: &String) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// An `http://` or `https://` URL, kept without trailing slashes.
pub(super) struct HttpUrl {
    pub default: &'static str,
}

impl Kind for HttpUrl {
    type Value = String;
    fn default_value(&self) -> String {
        self.default.to_string()
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<String, ConfigError> {
        syntax::parse_url(var, text)
    }
    fn check(&self, var: &'static str, value: &String) -> Result<(), ConfigError> {
        NonEmpty { default: "" }.check(var, value)
    }
    fn show(&self, value: &String) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// A `tracing` filter such as `info` or `repram_flux=debug`.
pub(super) struct TraceFilter {
    pub default: &'static str,
}

impl Kind for TraceFilter {
    type Value = String;
    fn default_value(&self) -> String {
        self.default.to_string()
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<String, ConfigError> {
        syntax::check_log_filter(var, text).map(|()| text.to_string())
    }
    fn check(&self, var: &'static str, value: &String) -> Result<(), ConfigError> {
        syntax::check_log_filter(var, value)
    }
    fn show(&self, value: &String) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// A whole number in `min..=max`.
pub(super) struct Whole<T> {
    pub default: T,
    pub min: T,
    pub max: T,
}

impl<T> Kind for Whole<T>
where
    T: Copy + TryFrom<u64> + TryInto<u64> + Serialize + ToString,
{
    type Value = T;
    fn default_value(&self) -> T {
        self.default
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<T, ConfigError> {
        syntax::number(var, text, self.min, self.max)
    }
    fn check(&self, var: &'static str, value: &T) -> Result<(), ConfigError> {
        let wide = |n: T| n.try_into().unwrap_or(u64::MAX);
        syntax::in_range(var, wide(*value), wide(self.min), wide(self.max))
    }
    fn show(&self, value: &T) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// A port number, 1 to 65535.
pub(super) struct Port {
    pub default: u16,
}

impl Port {
    fn invalid(var: &'static str, text: &str) -> ConfigError {
        ConfigError::Invalid {
            var,
            value: shown(text),
            expected: "a port number from 1 to 65535",
        }
    }
}

impl Kind for Port {
    type Value = u16;
    fn default_value(&self) -> u16 {
        self.default
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<u16, ConfigError> {
        syntax::number(var, text, 1, u16::MAX).map_err(|_| Port::invalid(var, text))
    }
    fn check(&self, var: &'static str, value: &u16) -> Result<(), ConfigError> {
        match *value {
            0 => Err(Port::invalid(var, "0")),
            _ => Ok(()),
        }
    }
    fn show(&self, value: &u16) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// The unit a [`Span`] is written in.
#[derive(Clone, Copy)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

impl Unit {
    fn span(self, n: u64) -> Duration {
        match self {
            Unit::Seconds => Duration::from_secs(n),
            Unit::Millis => Duration::from_millis(n),
        }
    }

    /// Whole units in `d`, rounded down.
    fn count(self, d: Duration) -> u64 {
        match self {
            Unit::Seconds => d.as_secs(),
            Unit::Millis => u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// A time span written as a whole number of `unit`s in `min..=max`.
pub(super) struct Span {
    pub unit: Unit,
    pub default: u64,
    pub min: u64,
    pub max: u64,
}

impl Kind for Span {
    type Value = Duration;
    fn default_value(&self) -> Duration {
        self.unit.span(self.default)
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<Duration, ConfigError> {
        syntax::number(var, text, self.min, self.max).map(|n| self.unit.span(n))
    }
    fn check(&self, var: &'static str, value: &Duration) -> Result<(), ConfigError> {
        // A hand-built span between whole units (tests use 100 ms sweeps) counts as the
        // next unit up against the minimum.
        let floor = self.unit.count(*value);
        let ceil = match self.unit.span(floor) == *value {
            true => floor,
            false => floor.saturating_add(1),
        };
        syntax::in_range(var, ceil, self.min, u64::MAX)?;
        syntax::in_range(var, floor, 0, self.max).map_err(|_| ConfigError::OutOfRange {
            var,
            value: floor.to_string(),
            min: self.min,
            max: self.max,
        })
    }
    fn show(&self, value: &Duration) -> Value {
        json!(self.unit.count(*value))
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// An IP address.
pub(super) struct Ip {
    pub default: IpAddr,
}

impl Kind for Ip {
    type Value = IpAddr;
    fn default_value(&self) -> IpAddr {
        self.default
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<IpAddr, ConfigError> {
        text.parse().map_err(|_| ConfigError::Invalid {
            var,
            value: shown(text),
            expected: "an IP address such as 0.0.0.0 or ::",
        })
    }
    fn check(&self, _: &'static str, _: &IpAddr) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &IpAddr) -> Value {
        json!(value.to_string())
    }
    fn show_default(&self) -> String {
        self.default.to_string()
    }
}

/// One of a few words (any case), each naming a value.
pub(super) struct OneOf<T: 'static> {
    pub default: T,
    pub words: &'static [(&'static str, T)],
    /// The words, for the error message.
    pub expected: &'static str,
}

impl<T: Copy + PartialEq> OneOf<T> {
    fn word(&self, value: T) -> &'static str {
        self.words
            .iter()
            .find(|(_, v)| *v == value)
            .map_or("", |(w, _)| w)
    }
}

impl<T: Copy + PartialEq> Kind for OneOf<T> {
    type Value = T;
    fn default_value(&self) -> T {
        self.default
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<T, ConfigError> {
        self.words
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(text))
            .map(|(_, v)| *v)
            .ok_or_else(|| ConfigError::Invalid {
                var,
                value: shown(text),
                expected: self.expected,
            })
    }
    fn check(&self, _: &'static str, _: &T) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &T) -> Value {
        json!(self.word(*value))
    }
    fn show_default(&self) -> String {
        self.word(self.default).to_string()
    }
}

/// `DISCOVERY_PEERS`: `host:port` items, comma separated.
pub(super) struct PeerList;

impl Kind for PeerList {
    type Value = Vec<String>;
    fn default_value(&self) -> Vec<String> {
        Vec::new()
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<Vec<String>, ConfigError> {
        syntax::parse_peers(text)
    }
    fn check(&self, _: &'static str, value: &Vec<String>) -> Result<(), ConfigError> {
        match value.iter().find(|p| !syntax::is_host_port(p)) {
            Some(bad) => Err(ConfigError::BadPeer {
                value: shown(&value.join(",")),
                item: shown(bad),
            }),
            None => Ok(()),
        }
    }
    fn show(&self, value: &Vec<String>) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// `REPRAM_TRUSTED_PROXIES`: IP addresses and CIDR networks, comma separated.
pub(super) struct ProxyList;

impl Kind for ProxyList {
    type Value = Vec<Cidr>;
    fn default_value(&self) -> Vec<Cidr> {
        Vec::new()
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<Vec<Cidr>, ConfigError> {
        syntax::parse_proxies(text)
    }
    fn check(&self, _: &'static str, _: &Vec<Cidr>) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &Vec<Cidr>) -> Value {
        json!(value.iter().map(ToString::to_string).collect::<Vec<_>>())
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// `REPRAM_CORS_ORIGINS`: origins or `*`, comma separated.
pub(super) struct OriginList;

impl Kind for OriginList {
    type Value = Vec<String>;
    fn default_value(&self) -> Vec<String> {
        Vec::new()
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<Vec<String>, ConfigError> {
        syntax::parse_origins(text)
    }
    fn check(&self, var: &'static str, value: &Vec<String>) -> Result<(), ConfigError> {
        match value.iter().find(|o| !(*o == "*" || syntax::is_origin(o))) {
            Some(bad) => Err(ConfigError::Invalid {
                var,
                value: shown(bad),
                expected: "comma-separated origins such as https://fade.repram.io, or *",
            }),
            None => Ok(()),
        }
    }
    fn show(&self, value: &Vec<String>) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// A host name or IP address (IPv6 kept without brackets); unset is `None`.
pub(super) struct HostName;

impl Kind for HostName {
    type Value = Option<String>;
    fn default_value(&self) -> Option<String> {
        None
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<Option<String>, ConfigError> {
        syntax::parse_host(var, text).map(Some)
    }
    fn check(&self, var: &'static str, value: &Option<String>) -> Result<(), ConfigError> {
        match value {
            Some(host) => syntax::parse_host(var, host).map(drop),
            None => Ok(()),
        }
    }
    fn show(&self, value: &Option<String>) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// An IP address, optionally with `:port` (FluxOS may append its API port); kept as
/// given.
pub(super) struct InstanceIp;

impl Kind for InstanceIp {
    type Value = Option<String>;
    fn default_value(&self) -> Option<String> {
        None
    }
    fn parse(&self, var: &'static str, text: &str) -> Result<Option<String>, ConfigError> {
        match parse_instance_ip(text) {
            Some(_) => Ok(Some(text.to_string())),
            None => Err(ConfigError::Invalid {
                var,
                value: shown(text),
                expected: "an IP address, optionally with :port",
            }),
        }
    }
    fn check(&self, _: &'static str, _: &Option<String>) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &Option<String>) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// Any text; unset is `None`.
pub(super) struct Label;

impl Kind for Label {
    type Value = Option<String>;
    fn default_value(&self) -> Option<String> {
        None
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<Option<String>, ConfigError> {
        Ok(Some(text.to_string()))
    }
    fn check(&self, _: &'static str, _: &Option<String>) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &Option<String>) -> Value {
        json!(value)
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}

/// A [`Secret`]; `/status` shows `"<redacted>"` when set and `null` when not.
pub(super) struct SecretText;

impl Kind for SecretText {
    type Value = Option<Secret>;
    fn default_value(&self) -> Option<Secret> {
        None
    }
    fn parse(&self, _: &'static str, text: &str) -> Result<Option<Secret>, ConfigError> {
        Ok(Some(Secret::from(text)))
    }
    fn check(&self, _: &'static str, _: &Option<Secret>) -> Result<(), ConfigError> {
        Ok(())
    }
    fn show(&self, value: &Option<Secret>) -> Value {
        json!(value.as_ref().map(|_| Secret::REDACTED))
    }
    fn show_default(&self) -> String {
        "(empty)".to_string()
    }
}
