//! Cross-origin access for browser apps such as Fade (`REPRAM_CORS_ORIGINS`), and the
//! security headers every public response carries.
//!
//! With no origins configured nothing is added, so browsers keep their same-origin
//! rule. An allowed origin gets `Access-Control-Allow-Origin` on every answer and a
//! `204` to its preflight; a preflight from any other origin gets `403`.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};

/// Methods a browser may use across origins (the public API has no others).
const ALLOW_METHODS: &str = "GET, HEAD, PUT";
/// Request headers a browser may send across origins.
const ALLOW_HEADERS: &str = "Content-Type, X-TTL";
/// Response headers a cross-origin script may read.
const EXPOSE_HEADERS: &str = "X-Created-At, X-Original-TTL, X-Remaining-TTL, Retry-After";
/// How long a browser may cache a preflight answer, seconds.
const MAX_AGE_S: u32 = 600;

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`).
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Allowed: answer `204` with these headers.
    Allowed(HeaderMap),
    /// Not allowed: answer `403` with this message.
    Refused(String),
}

/// `Some` when `method` and `headers` make a CORS preflight request.
pub fn preflight(origins: &[String], method: &Method, headers: &HeaderMap) -> Option<Preflight> {
    if method != Method::OPTIONS {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let requested = headers.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
    let Some(allow_origin) = allowed(origins, origin) else {
        return Some(Preflight::Refused(
            "cross-origin requests from this origin are not allowed (REPRAM_CORS_ORIGINS)"
                .to_string(),
        ));
    };
    let method_ok = requested
        .to_str()
        .is_ok_and(|m| ALLOW_METHODS.split(", ").any(|a| a == m));
    if !method_ok {
        return Some(Preflight::Refused(format!(
            "cross-origin requests may use {ALLOW_METHODS} only"
        )));
    }
    let mut h = HeaderMap::new();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOW_HEADERS),
    );
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_S));
    h.insert(
        header::VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Method"),
    );
    Some(Preflight::Allowed(h))
}

/// Add the CORS headers to the answer of a request that came with `origin`.
pub fn decorate(origins: &[String], origin: Option<&HeaderValue>, response: &mut HeaderMap) {
    if origins.is_empty() || response.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        return;
    }
    // Caches must keep answers for different origins apart.
    response.append(header::VARY, HeaderValue::from_static("Origin"));
    let Some(allow_origin) = origin.and_then(|o| allowed(origins, o)) else {
        return;
    };
    response.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    response.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

/// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed.
fn allowed(origins: &[String], origin: &HeaderValue) -> Option<HeaderValue> {
    if origins.iter().any(|o| o == "*") {
        return Some(HeaderValue::from_static("*"));
    }
    let origin_text = origin.to_str().ok()?;
    origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin_text))
        .then(|| origin.clone())
}

/// Headers every answer carries unless its handler chose otherwise: values are private
/// and short-lived, so nothing is cached or sniffed. (The HTML page adds its own framing
/// and referrer rules; on the hot path each extra header costs a few percent of GET
/// throughput, measured.)
pub fn secure(response: &mut HeaderMap) {
    response
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    response
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

/// The status of a refused preflight.
pub const REFUSED: StatusCode = StatusCode::FORBIDDEN;

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn origins(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn without_configured_origins_nothing_is_added() {
        let none = origins(&[]);
        let origin = HeaderValue::from_static("https://fade.repram.io");
        let mut response = HeaderMap::new();
        decorate(&none, Some(&origin), &mut response);
        assert!(response.is_empty());
        let pre = req(&[
            ("origin", "https://fade.repram.io"),
            ("access-control-request-method", "PUT"),
        ]);
        assert!(matches!(
            preflight(&none, &Method::OPTIONS, &pre),
            Some(Preflight::Refused(_))
        ));
    }

    #[test]
    fn an_allowed_origin_is_echoed_and_others_are_not() {
        let list = origins(&["https://fade.repram.io"]);
        let mut response = HeaderMap::new();
        decorate(
            &list,
            Some(&HeaderValue::from_static("https://FADE.repram.io")),
            &mut response,
        );
        assert_eq!(
            response["access-control-allow-origin"],
            "https://FADE.repram.io"
        );
        assert!(response["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("X-Remaining-TTL"));
        assert_eq!(response["vary"], "Origin");

        let mut response = HeaderMap::new();
        decorate(
            &list,
            Some(&HeaderValue::from_static("https://evil.example")),
            &mut response,
        );
        assert!(response.get("access-control-allow-origin").is_none());
        assert_eq!(response["vary"], "Origin");
    }

    #[test]
    fn preflights_are_answered_per_origin_and_method() {
        let list = origins(&["https://fade.repram.io"]);
        let ok = req(&[
            ("origin", "https://fade.repram.io"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-ttl"),
        ]);
        match preflight(&list, &Method::OPTIONS, &ok) {
            Some(Preflight::Allowed(h)) => {
                assert_eq!(h["access-control-allow-origin"], "https://fade.repram.io");
                assert_eq!(h["access-control-allow-methods"], ALLOW_METHODS);
                assert_eq!(h["access-control-allow-headers"], ALLOW_HEADERS);
                assert_eq!(h["access-control-max-age"], "600");
            }
            other => panic!("expected an allowed preflight, got {other:?}"),
        }
        let delete = req(&[
            ("origin", "https://fade.repram.io"),
            ("access-control-request-method", "DELETE"),
        ]);
        assert!(matches!(
            preflight(&list, &Method::OPTIONS, &delete),
            Some(Preflight::Refused(m)) if m.contains("GET, HEAD, PUT")
        ));
        let stranger = req(&[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(matches!(
            preflight(&list, &Method::OPTIONS, &stranger),
            Some(Preflight::Refused(_))
        ));
        // Not a preflight: a plain OPTIONS, or another method with the headers.
        assert_eq!(
            preflight(&list, &Method::OPTIONS, &req(&[("origin", "x")])),
            None
        );
        assert_eq!(preflight(&list, &Method::GET, &ok), None);
    }

    #[test]
    fn a_star_allows_every_origin() {
        let any = origins(&["*"]);
        let mut response = HeaderMap::new();
        decorate(&any, Some(&HeaderValue::from_static("null")), &mut response);
        assert_eq!(response["access-control-allow-origin"], "*");
    }

    #[test]
    fn security_headers_fill_in_without_overriding() {
        let mut response = HeaderMap::new();
        response.insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=5"));
        secure(&mut response);
        assert_eq!(response["cache-control"], "max-age=5");
        assert_eq!(response["x-content-type-options"], "nosniff");
        let mut response = HeaderMap::new();
        secure(&mut response);
        assert_eq!(response["cache-control"], "no-store");
    }
}
