//! The Fade board: an ephemeral message board served by every node at `/fade` (and at
//! `/` with `REPRAM_HOME_PAGE=fade`), so the Flux app needs no second container.
//!
//! One self-contained page (inline CSS and JS, no outside resources) that only calls its
//! own origin: `PUT /data/{key}?ttl=` to post, `GET /scan?limit=20` for the newest
//! messages and `GET /data/{key}` for each, with their TTL headers driving the countdown.
//! Messages are shown as text, never as markup.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

const PAGE: &str = include_str!("fade.html");

/// `GET /fade`: the board, with the dashboard's strict Content-Security-Policy.
pub fn page() -> Response<Full<Bytes>> {
    super::dashboard::html_page(PAGE)
}
