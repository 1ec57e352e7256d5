//! The shapes of values: whole numbers, host names, `host:port`, origins, URLs, tracing
//! filters, address lists. Each function names the variable in its error.

use std::net::{IpAddr, Ipv6Addr};

use super::error::{bad_item_suffix, shown, ConfigError};
use crate::cidr::Cidr;

/// Longest host name accepted (DNS's limit; also fits every gossip message).
const MAX_HOST_NAME: usize = 253;

/// Parses a whole number in `min..=max` (`text` is trimmed and not empty).
pub(super) fn number<T>(var: &'static str, text: &str, min: T, max: T) -> Result<T, ConfigError>
where
    T: Copy + TryFrom<u64> + TryInto<u64>,
{
    // Bounds always fit in u64 for the types used here; saturate just in case.
    let min64: u64 = min.try_into().unwrap_or(u64::MAX);
    let max64: u64 = max.try_into().unwrap_or(u64::MAX);
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError::Invalid {
            var,
            value: shown(text),
            expected: "a whole number",
        });
    }
    // Only digits remain, so a parse failure means overflow.
    let n: u64 = digits
        .parse()
        .map_err(|_| out_of_range(var, text, min64, max64))?;
    in_range(var, n, min64, max64).map_err(|e| e.with_value(text))?;
    T::try_from(n).map_err(|_| out_of_range(var, text, min64, max64))
}

/// `n` within `min..=max`: `TooSmall` below, `OutOfRange` above (the value shown is `n`).
pub(super) fn in_range(var: &'static str, n: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if n > max {
        return Err(out_of_range(var, &n.to_string(), min, max));
    }
    if n < min {
        return Err(ConfigError::TooSmall {
            var,
            value: n.to_string(),
            min,
        });
    }
    Ok(())
}

fn out_of_range(var: &'static str, text: &str, min: u64, max: u64) -> ConfigError {
    ConfigError::OutOfRange {
        var,
        value: shown(text),
        min,
        max,
    }
}

/// Splits `DISCOVERY_PEERS`: comma separated, trimmed, empty items and duplicates dropped.
pub(super) fn parse_peers(value: &str) -> Result<Vec<String>, ConfigError> {
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

/// Splits `REPRAM_TRUSTED_PROXIES`: comma separated, trimmed, empty items and duplicates
/// dropped.
pub(super) fn parse_proxies(value: &str) -> Result<Vec<Cidr>, ConfigError> {
    let mut nets: Vec<Cidr> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let net = Cidr::parse(item).ok_or_else(|| ConfigError::BadProxy {
            value: shown(value),
            item: shown(item),
        })?;
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

/// A host name: 1-253 characters of letters, digits, `-`, `.` and `_`.
pub(super) fn is_host_name(host: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&host.len())
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

/// `ADVERTISE_HOST`: a host name or an IP address (IPv6 with or without brackets, kept
/// without), short enough to travel in every gossip message.
pub(super) fn parse_host(var: &'static str, value: &str) -> Result<String, ConfigError> {
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
pub(super) fn is_host_port(item: &str) -> bool {
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
pub(super) fn parse_origins(value: &str) -> Result<Vec<String>, ConfigError> {
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
pub(super) fn is_origin(origin: &str) -> bool {
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
pub(super) fn parse_url(var: &'static str, value: &str) -> Result<String, ConfigError> {
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
pub(super) fn check_log_filter(var: &'static str, filter: &str) -> Result<(), ConfigError> {
    tracing_subscriber::EnvFilter::try_new(filter)
        .map(drop)
        .map_err(|_| ConfigError::Invalid {
            var,
            value: shown(filter),
            expected: "a tracing filter such as info or repram_flux=debug,hyper=warn",
        })
}
