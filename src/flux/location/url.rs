//! The location request's URL, from `REPRAM_FLUX_API` and the app name.

use std::net::Ipv6Addr;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::FluxError;
use crate::text::one_line;

/// Characters escaped in the app name path segment.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

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
    pub(super) fn host_header(&self) -> String {
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
