//! The dashboard page and the Content-Security-Policy that guards it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::Response;
use rand::Rng;

use super::Resp;

/// The page; `{{NONCE}}` is replaced per response by the CSP nonce.
pub(super) const PAGE: &str = include_str!("dashboard.html");
const NONCE_MARK: &str = "{{NONCE}}";

/// `GET /`: the dashboard page, with a strict Content-Security-Policy (scripts and styles
/// only from this response, by nonce; network only to this origin).
pub fn page() -> Resp {
    html_page(PAGE)
}

/// A self-contained page from `template`, its `{{NONCE}}` marks replaced by a fresh
/// nonce that the Content-Security-Policy names.
pub fn html_page(template: &str) -> Resp {
    let nonce: String = {
        let mut rng = rand::thread_rng();
        (0..16)
            .map(|_| format!("{:02x}", rng.gen::<u8>()))
            .collect()
    };
    let html = template.replace(NONCE_MARK, &nonce);
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // no-store and nosniff come from `cors::secure`.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}
