//! Per-node counters and gauges, rendered in the Prometheus text format at `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Which public route a request hit (a closed set, so label cardinality stays bounded).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(missing_docs)]
pub enum Route {
    Data,
    Keys,
    Health,
    Ready,
    Peers,
    Status,
    Metrics,
    Internal,
    Other,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route class.
    pub route: Route,
    /// HTTP status code sent.
    pub status: u16,
}

/// How a replication batch reached this node.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(missing_docs)]
pub enum Via {
    /// `POST /internal/v1/replicate` from a node of another process.
    Http,
    /// Handed over in memory by a node of this process.
    Memory,
}

/// Labels of the received-batches counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ViaLabels {
    /// The way the batch came.
    pub via: Via,
}

/// Why a node message (`/internal/`) was refused before it was applied.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Refused {
    /// Without a secret: the sender is not a cluster host.
    stranger,
    /// With a secret: signature headers missing or malformed.
    unsigned,
    /// With a secret: the timestamp is outside the window (clock skew).
    clock_skew,
    /// With a secret: signed for another node.
    wrong_receiver,
    /// With a secret: the nonce was used before.
    replayed,
    /// With a secret: the signature does not match the body.
    bad_signature,
    /// Too many unverified bodies being read at once (503).
    busy,
}

/// Labels of the refused node messages counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    /// Why.
    pub reason: Refused,
}

/// Why an entry from a peer was refused (a closed set).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types, missing_docs)]
pub enum Refusal {
    /// Its version, HLC or creation time is beyond the tolerated skew ahead of our clock.
    future,
    /// Already expired by our clock on arrival: it would not be readable here.
    expired,
}

/// Labels of the refused-entries counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// Why.
    pub reason: Refusal,
}

/// Labels of the per-peer clock skew gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// The peer's node id.
    pub peer: String,
}

/// Every metric of one node.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests answered, by route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Peers that joined the mesh.
    pub peer_joins: Counter,
    /// Peers that announced they were leaving.
    pub peer_leaves: Counter,
    /// Peers declared dead (refused connection, or suspicion ran out).
    pub peer_deaths: Counter,
    /// Times a peer became suspect.
    pub peer_suspicions: Counter,
    /// Probes of members that got no valid answer.
    pub probe_failures: Counter,
    /// Probes of discovery addresses (ports of the range, seeds) where no node answered:
    /// empty ports, so rising on a healthy cluster.
    pub discovery_misses: Counter,
    /// Reads that missed locally while catching up and were read through from a peer
    /// that held the key.
    pub read_throughs: Counter,
    /// Replication batches a peer confirmed.
    pub replication_batches: Counter,
    /// Entries in confirmed batches.
    pub replication_entries: Counter,
    /// Batches that failed (peer down, timeout, refused).
    pub replication_failures: Counter,
    /// Writes not queued for a peer because its queue was full.
    pub replication_dropped: Counter,
    /// Time to deliver and confirm a batch (HTTP round trip, or the in-memory apply).
    pub replication_batch_seconds: Histogram,
    /// Replication batches received from peers, by the way they came.
    pub replication_received: Family<ViaLabels, Counter>,
    /// The `via="http"` member of `replication_received`.
    pub replication_received_http: Counter,
    /// The `via="memory"` member of `replication_received`.
    pub replication_received_memory: Counter,
    /// Batches received over HTTP from another process to apply and hand on in memory.
    pub relay_batches: Counter,
    /// Entries in those batches.
    pub relay_entries: Counter,
    /// Batches to another process sent to a further node of it after a relay failed.
    pub relay_failovers: Counter,
    /// Entries received from peers (replication and catch-up) that changed the store.
    pub entries_applied: Counter,
    /// Anti-entropy rounds completed.
    pub anti_entropy_rounds: Counter,
    /// Entries changed by anti-entropy (repairs and catch-up).
    pub anti_entropy_repairs: Counter,
    /// Time from a write at its origin to its arrival here.
    pub replication_lag_seconds: Histogram,
    /// Writes waiting in the replication queues of all peers and processes (set at scrape
    /// time; a write queued for another process counts once).
    pub replication_queue: Gauge,
    /// Node-to-node messages refused as malformed.
    pub rejected_messages: Counter,
    /// Node-to-node messages refused by the gate before their body was read or applied.
    pub node_messages_refused: Family<RefusedLabels, Counter>,
    /// Entries from peers refused, by reason (never acknowledged).
    pub entries_refused: Family<RefusalLabels, Counter>,
    /// Each live peer's clock minus ours, ms, as last measured by a probe.
    pub peer_clock_skew_ms: Family<PeerLabels, Gauge>,
    /// Live peers (set at scrape time).
    pub peers: Gauge,
    /// Keys held (set at scrape time).
    pub keys: Gauge,
    /// Bytes of keys and values held (set at scrape time).
    pub bytes: Gauge,
    /// Expired entries purged (set at scrape time).
    pub purged: Gauge,
    /// Index entries read by listings (`/keys`, `/scan`; set at scrape time).
    pub listed: Gauge,
    /// Seconds since the node started (set at scrape time).
    pub uptime: Gauge,
    /// Open client connections (set at scrape time).
    pub connections: Gauge,
    /// Request-body bytes the process is receiving (set at scrape time).
    pub receiving_bytes: Gauge,
    /// Idle connections closed to make room under `REPRAM_MAX_CONNECTIONS`.
    pub connections_evicted: Counter,
    /// Connections refused with 503 because every open one was busy.
    pub connections_refused: Counter,
    /// Connections closed because they held no request and made no progress for the
    /// header timeout.
    pub connections_timed_out: Counter,
    /// Handles on the `requests` counters of common (route, status) pairs, filled on
    /// first use: counting then skips the family's lock and label hashing.
    hot: [[OnceLock<Counter>; HOT_STATUSES.len()]; ROUTES],
}

/// Number of [`Route`] variants.
const ROUTES: usize = Route::Other as usize + 1;
/// Statuses whose request counters are cached per route.
const HOT_STATUSES: [u16; 6] = [200, 201, 202, 204, 400, 404];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Count a node message refused by the gate for `reason`.
    pub fn node_message_refused(&self, reason: Refused) {
        self.node_messages_refused
            .get_or_create(&RefusedLabels { reason })
            .inc();
    }

    /// All metrics at zero, registered under the `repram_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("repram");
        let replication_received = Family::<ViaLabels, Counter>::default();
        let received = |via| {
            replication_received
                .get_or_create(&ViaLabels { via })
                .clone()
        };
        let (replication_received_http, replication_received_memory) =
            (received(Via::Http), received(Via::Memory));
        let m = Metrics {
            replication_received,
            replication_received_http,
            replication_received_memory,
            requests: Family::default(),
            peer_joins: Counter::default(),
            peer_leaves: Counter::default(),
            peer_deaths: Counter::default(),
            peer_suspicions: Counter::default(),
            probe_failures: Counter::default(),
            discovery_misses: Counter::default(),
            read_throughs: Counter::default(),
            replication_batches: Counter::default(),
            replication_entries: Counter::default(),
            replication_failures: Counter::default(),
            replication_dropped: Counter::default(),
            replication_batch_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            entries_applied: Counter::default(),
            relay_batches: Counter::default(),
            relay_entries: Counter::default(),
            relay_failovers: Counter::default(),
            anti_entropy_rounds: Counter::default(),
            anti_entropy_repairs: Counter::default(),
            replication_lag_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            replication_queue: Gauge::default(),
            rejected_messages: Counter::default(),
            node_messages_refused: Family::default(),
            entries_refused: Family::default(),
            peer_clock_skew_ms: Family::default(),
            peers: Gauge::default(),
            keys: Gauge::default(),
            bytes: Gauge::default(),
            purged: Gauge::default(),
            listed: Gauge::default(),
            uptime: Gauge::default(),
            connections: Gauge::default(),
            receiving_bytes: Gauge::default(),
            connections_evicted: Counter::default(),
            connections_refused: Counter::default(),
            connections_timed_out: Counter::default(),
            hot: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered",
            m.requests.clone(),
        );
        registry.register("peer_joins", "Peers that joined", m.peer_joins.clone());
        registry.register(
            "peer_leaves",
            "Peers that left gracefully",
            m.peer_leaves.clone(),
        );
        registry.register("peer_deaths", "Peers declared dead", m.peer_deaths.clone());
        registry.register(
            "peer_suspicions",
            "Times a peer became suspect",
            m.peer_suspicions.clone(),
        );
        registry.register(
            "probe_failures",
            "Probes of members without a valid answer",
            m.probe_failures.clone(),
        );
        registry.register(
            "read_throughs",
            "Reads missing locally during catch-up, answered from a peer",
            m.read_throughs.clone(),
        );
        registry.register(
            "discovery_misses",
            "Probes of discovery addresses (empty ports of the range) without an answer",
            m.discovery_misses.clone(),
        );
        registry.register(
            "replication_batches",
            "Replication batches confirmed by a peer",
            m.replication_batches.clone(),
        );
        registry.register(
            "replication_entries",
            "Entries in confirmed replication batches",
            m.replication_entries.clone(),
        );
        registry.register(
            "replication_failures",
            "Replication batches that failed",
            m.replication_failures.clone(),
        );
        registry.register(
            "replication_dropped",
            "Writes not queued because a peer queue was full",
            m.replication_dropped.clone(),
        );
        registry.register(
            "replication_batch_seconds",
            "Time to deliver and confirm a replication batch (round trip over HTTP, or applying in memory)",
            m.replication_batch_seconds.clone(),
        );
        registry.register(
            "replication_received_batches",
            "Replication batches received from peers, over HTTP or in memory",
            m.replication_received.clone(),
        );
        registry.register(
            "relay_batches",
            "Replication batches received from another process to apply and hand to the nodes of this one",
            m.relay_batches.clone(),
        );
        registry.register(
            "relay_entries",
            "Entries in replication batches received for relaying",
            m.relay_entries.clone(),
        );
        registry.register(
            "relay_failovers",
            "Replication batches re-sent to another node of a process after its relay failed",
            m.relay_failovers.clone(),
        );
        registry.register(
            "entries_applied",
            "Entries from peers that changed the store",
            m.entries_applied.clone(),
        );
        registry.register(
            "rejected_messages",
            "Node-to-node messages refused as malformed",
            m.rejected_messages.clone(),
        );
        registry.register(
            "node_messages_refused",
            "Node-to-node messages refused by the gate (stranger, unsigned, clock_skew, wrong_receiver, replayed, bad_signature, busy)",
            m.node_messages_refused.clone(),
        );
        registry.register(
            "entries_refused",
            "Entries from peers refused and not acknowledged, by reason (future: dated beyond the tolerated clock skew ahead; expired: already expired on arrival)",
            m.entries_refused.clone(),
        );
        registry.register(
            "peer_clock_skew_ms",
            "Each live peer's clock minus this node's, milliseconds, as measured by its last probe",
            m.peer_clock_skew_ms.clone(),
        );
        registry.register(
            "anti_entropy_rounds",
            "Anti-entropy rounds completed",
            m.anti_entropy_rounds.clone(),
        );
        registry.register(
            "anti_entropy_repairs",
            "Entries changed by anti-entropy",
            m.anti_entropy_repairs.clone(),
        );
        registry.register(
            "replication_lag_seconds",
            "Time from a write at its origin to its arrival here",
            m.replication_lag_seconds.clone(),
        );
        registry.register(
            "replication_queue",
            "Writes waiting in peer replication queues",
            m.replication_queue.clone(),
        );
        registry.register("peers", "Live peers", m.peers.clone());
        registry.register(
            "connections",
            "Open client connections",
            m.connections.clone(),
        );
        registry.register(
            "receiving_bytes",
            "Request-body bytes the whole process is receiving (REPRAM_MAX_INFLIGHT_BYTES caps it)",
            m.receiving_bytes.clone(),
        );
        registry.register(
            "connections_evicted",
            "Idle connections closed to make room at the connection cap",
            m.connections_evicted.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused because every open one was busy",
            m.connections_refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Connections closed after the header timeout without a request or progress",
            m.connections_timed_out.clone(),
        );
        registry.register("keys", "Keys held", m.keys.clone());
        registry.register("bytes", "Bytes of keys and values held", m.bytes.clone());
        registry.register(
            "purged_entries",
            "Expired entries purged since start",
            m.purged.clone(),
        );
        registry.register(
            "listing_entries_read",
            "Index entries read by /keys and /scan since start (a listing costs O(limit))",
            m.listed.clone(),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the node started",
            m.uptime.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Count one answered request.
    pub fn request(&self, route: Route, status: u16) {
        let counter = |route, status| {
            self.requests
                .get_or_create(&RequestLabels { route, status })
                .clone()
        };
        match HOT_STATUSES.iter().position(|&s| s == status) {
            Some(i) => self.hot[route as usize][i]
                .get_or_init(|| counter(route, status))
                .inc(),
            None => counter(route, status).inc(),
        };
    }

    /// Count one entry refused for `reason`.
    pub fn refused(&self, reason: Refusal) {
        self.entries_refused
            .get_or_create(&RefusalLabels { reason })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels_and_prefix() {
        let m = Metrics::new();
        m.request(Route::Data, 201);
        m.request(Route::Data, 201);
        m.peer_joins.inc();
        m.keys.set(7);
        let text = m.render();
        assert!(
            text.contains("repram_http_requests_total{route=\"Data\",status=\"201\"} 2"),
            "{text}"
        );
        assert!(text.contains("repram_peer_joins_total 1"), "{text}");
        assert!(text.contains("repram_keys 7"), "{text}");
        m.replication_received_memory.inc();
        let text = m.render();
        assert!(
            text.contains("repram_replication_received_batches_total{via=\"Memory\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("repram_replication_received_batches_total{via=\"Http\"} 0"),
            "{text}"
        );
        m.relay_batches.inc();
        m.relay_entries.inc_by(3);
        m.relay_failovers.inc();
        let text = m.render();
        for line in [
            "repram_relay_batches_total 1",
            "repram_relay_entries_total 3",
            "repram_relay_failovers_total 1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn cached_and_uncached_statuses_count_into_the_same_family() {
        let m = Metrics::new();
        for _ in 0..3 {
            m.request(Route::Keys, 404); // cached handle after the first call
        }
        m.request(Route::Keys, 507); // not cached
        m.request(Route::Health, 404); // same status, other route: its own series
        let text = m.render();
        for line in [
            "repram_http_requests_total{route=\"Keys\",status=\"404\"} 3",
            "repram_http_requests_total{route=\"Keys\",status=\"507\"} 1",
            "repram_http_requests_total{route=\"Health\",status=\"404\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in {text}");
        }
        // Nothing is exported for pairs that never happened.
        assert!(!text.contains("status=\"200\""), "{text}");
    }
}
