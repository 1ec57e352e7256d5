//! The live dashboard: `GET /` serves one self-contained HTML page (inline JS and CSS, no
//! CDN, no build step) and `GET /cluster` the JSON it polls about once a second.
//!
//! `/cluster` is this node's view of the cluster: its own membership and recent
//! membership events, plus each live peer's own report (`/cluster?scope=node`), fetched
//! server-side and concurrently — at most [`FETCH_CONCURRENCY`] at once, each within
//! [`FETCH_TIMEOUT`], all within [`FANOUT_DEADLINE`]. The answer is cached for
//! [`CACHE_TTL`] and computed by one request at a time per node, so any number of open
//! dashboards cost the peers about one small request per second each. The browser only
//! ever talks to the node that served the page.
//!
//! `?key=K` adds, per node, whether it holds `K` (the page's "watch a key appear on every
//! node"). `?scope=node` answers with this node's report alone, without asking anyone.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

mod handler;
mod page;
mod poll;
mod report;
mod state;
#[cfg(test)]
mod tests;
mod view;

pub use handler::cluster;
pub use page::{html_page, page};
pub use report::{local_report, Counters, NodeReport, PeerView};
pub use state::DashState;
pub use view::assemble;

/// How long a computed `/cluster` answer is reused.
pub const CACHE_TTL: Duration = Duration::from_millis(900);
/// Most peer reports fetched at the same time by one node. Each goes to another peer, so
/// this bounds only this node's sockets; with 100 nodes in one busy process each report
/// waits tens of milliseconds for the runtime, and 16 at a time took 0.3–1.8 s in all.
pub const FETCH_CONCURRENCY: usize = 64;
/// Deadline of one peer report.
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(1_200);
/// Deadline of the whole fan-out; peers that have not answered by then are shown as such.
pub const FANOUT_DEADLINE: Duration = Duration::from_millis(1_500);
/// A peer that did not answer this time is shown with its last answer (marked stale)
/// if that is at most this old.
pub const STALE_LIMIT: Duration = Duration::from_secs(30);
/// Largest peer report accepted.
const MAX_REPORT_BYTES: usize = 4 << 20;
/// Nodes this node saw die or leave stay on the picture this long (milliseconds).
pub const GHOST_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most membership events sent to the page (newest first).
pub const EVENTS_SHOWN: usize = 50;
/// Most distinct `?key=` answers cached at once per node.
const CACHED_VIEWS: usize = 8;

type Resp = Response<Full<Bytes>>;
