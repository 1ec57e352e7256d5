//! One REPRAM node: its store, membership driver, replication and HTTP server, all
//! serving on the listener the supervisor claimed for it.

pub mod catchup;

pub use catchup::ReadThrough;

use rand::Rng;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::antientropy::{self, FETCH_CHUNK};
use crate::clock::{hlc_ceiling, now_ms, origin_tag, Hlc, Version, MAX_SKEW_MS};
use crate::config::Config;
use crate::http::ratelimit::RateLimiter;
use crate::http::receiving::Receiving;
use crate::membership::{
    fmt_addr, Event, IndirectProbe, Membership, MembershipConfig, Probe, ProbeOutcome,
};
use crate::metrics::{Metrics, PeerLabels, Refusal};
use crate::replication::{Acks, Fanout, Replicator};
use crate::runtime::Dispatch;
use crate::skew::{PeerSkew, SkewTable};
use crate::store::{Applied, Record, Store, StoreError};
use crate::transport::{CallError, PeerClient, GOSSIP_PATH, SYNC_PATH};
use crate::wire::{self, Entry, Message, NodeInfo};

/// Timing knobs that are not part of the public configuration.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Membership timing.
    pub membership: MembershipConfig,
    /// How often DISCOVERY_DOMAIN is resolved again.
    pub resolve_interval: Duration,
    /// How long in-flight requests may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// How long a header may take to arrive.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// Time between anti-entropy rounds against a random peer.
    pub anti_entropy_interval: Duration,
    /// Wall clock in ms since the Unix epoch (write versions and expiry). Tests swap in a
    /// clock that follows tokio's paused time.
    pub wall_ms: fn() -> u64,
    /// **Test hook**: ms added to `wall_ms` (negative: behind), so one process can play a
    /// host whose clock is wrong. The binary sets it from `REPRAM_TEST_CLOCK_OFFSET_MS`
    /// (see [`Tuning::from_test_env`]); 0 in production.
    pub clock_offset_ms: i64,
}

/// The environment variable of the clock test hook ([`Tuning::clock_offset_ms`]).
pub const TEST_CLOCK_OFFSET_VAR: &str = "REPRAM_TEST_CLOCK_OFFSET_MS";

impl Tuning {
    /// The default tuning with the test hooks the environment sets: only
    /// [`TEST_CLOCK_OFFSET_VAR`], a whole number of ms. A process-wide variable because a
    /// wrong clock belongs to a host, not a node; it is how black-box tests run a real
    /// binary an hour ahead or behind. An invalid value is an error naming it.
    pub fn from_test_env() -> Result<Tuning, String> {
        let mut tuning = Tuning::default();
        if let Ok(raw) = std::env::var(TEST_CLOCK_OFFSET_VAR) {
            tuning.clock_offset_ms = raw.trim().parse().map_err(|_| {
                format!("{TEST_CLOCK_OFFSET_VAR}={raw}: expected a whole number of milliseconds")
            })?;
        }
        Ok(tuning)
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            membership: MembershipConfig::default(),
            resolve_interval: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(3),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            anti_entropy_interval: Duration::from_secs(2),
            wall_ms: now_ms,
            clock_offset_ms: 0,
        }
    }
}

/// How nodes of this host reach each other: loopback when they listen on every address,
/// else the address they listen on.
fn local_host(bind: IpAddr) -> String {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(ip) if ip.is_unspecified() => "::1".into(),
        ip => ip.to_string(),
    }
}

/// True when an applied entry is held here, readable (or superseded by a newer one).
fn holds(applied: Option<Applied>) -> bool {
    matches!(
        applied,
        Some(Applied::Inserted | Applied::Replaced | Applied::Stale)
    )
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The state one node's tasks share.
pub struct Node {
    /// The dashboard's answer cache and peer reports.
    pub(crate) dashboard: crate::http::dashboard::DashState,
    /// The Flux instance lists, shared with the other nodes of the process.
    locations: Arc<crate::flux::location::LocationCache>,
    /// Unique id of this incarnation.
    pub id: String,
    /// 1-based index within this process.
    pub index: usize,
    /// The port it serves on.
    pub port: u16,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Timing knobs.
    pub tuning: Tuning,
    /// The key/value data.
    pub store: Store,
    /// Write versions.
    pub hlc: Hlc,
    /// [`origin_tag`] of `id`.
    pub origin: u64,
    membership: Mutex<Membership>,
    membership_changed: Notify,
    fault: Notify,
    /// Replication queues: one per peer of this process, one per other process.
    pub replicator: Replicator,
    /// Client for node-to-node calls.
    pub client: PeerClient,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
    /// Judges node messages before their body is read; shared by the nodes of a process.
    pub gate: Arc<crate::http::gate::Gate>,
    /// Clock skew of each peer, as measured by probes.
    pub skew: SkewTable,
    /// Per-client limit of the public API (`REPRAM_RATE_LIMIT`; `None` when off), shared
    /// by the nodes of the process.
    pub limiter: Option<Arc<RateLimiter>>,
    /// Request-body bytes being received by the process (`REPRAM_MAX_INFLIGHT_BYTES`).
    pub receiving: Arc<Receiving>,
    /// Open client connections, capped at `REPRAM_MAX_CONNECTIONS`.
    pub connections: Arc<crate::http::conns::Connections>,
    /// When it started.
    pub started: Instant,
    ready: AtomicBool,
    /// True while the node serves (see [`crate::local`]).
    serving: AtomicBool,
    /// Catch-up after start or a pause (see [`catchup`]).
    catchup: catchup::CatchUp,
    shutdown: watch::Receiver<bool>,
    events: Mutex<VecDeque<MembershipEvent>>,
    /// Entries the store refused for want of room (see [`antientropy::Refused`]).
    refused_for_room: Mutex<antientropy::Refused>,
    /// Where its client connections are served.
    pub(crate) conn_threads: Dispatch,
}

/// What the nodes of one process share.
#[derive(Clone)]
pub struct ProcessWide {
    /// Where client connections are served.
    pub conn_threads: Dispatch,
    /// One rate-limit budget per client for the whole process.
    pub limiter: Option<Arc<RateLimiter>>,
    /// One cap on request-body bytes being received.
    pub receiving: Arc<Receiving>,
    /// Judges node messages: the process's cluster hosts, nonces and limits on
    /// unverified bodies.
    pub gate: Arc<crate::http::gate::Gate>,
    /// Bytes freed by every node's purges (read by the binary's heap trimmer).
    pub purged: crate::store::PurgedBytes,
    /// The Flux instance lists every node's discovery reads.
    pub locations: Arc<crate::flux::location::LocationCache>,
}

impl ProcessWide {
    /// A limiter and a receive cap from `config`, serving through `conn_threads`.
    pub fn new(config: &Config, conn_threads: Dispatch) -> ProcessWide {
        ProcessWide {
            conn_threads,
            limiter: RateLimiter::new(config.rate_limit).map(Arc::new),
            receiving: Receiving::new(config.max_inflight_bytes),
            gate: crate::http::gate::Gate::new(config),
            purged: crate::store::PurgedBytes::default(),
            locations: Arc::default(),
        }
    }
}

/// Most recent membership events kept per node (for `/cluster` and the dashboard).
pub const EVENT_HISTORY: usize = 100;

/// A membership change as remembered for display.
#[derive(Clone, Debug, serde::Serialize)]
pub struct MembershipEvent {
    /// Wall-clock ms when this node saw it.
    pub at_ms: u64,
    /// `joined`, `left`, `dead`, `replaced`, `suspected` or `recovered`.
    pub kind: &'static str,
    /// The peer concerned (the new id for `replaced`).
    pub peer: String,
    /// Its address.
    pub address: String,
    /// For `replaced`: the id it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

/// What a PUT achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutOutcome {
    /// Nodes holding the write, this one included.
    pub acks: usize,
    /// Acknowledgements needed for a durable (201) write.
    pub quorum: usize,
}

impl PutOutcome {
    /// True when the quorum acknowledged.
    pub fn durable(&self) -> bool {
        self.acks >= self.quorum
    }
}

impl Node {
    /// A node that knows nobody yet, with a process (gate, limiter, receive cap) of its
    /// own; it serves its connections on the current runtime.
    pub fn new(
        id: String,
        index: usize,
        port: u16,
        config: Arc<Config>,
        tuning: Tuning,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Node> {
        Node::serving_on(
            ProcessWide::new(&config, Dispatch::default()),
            id,
            index,
            port,
            config,
            tuning,
            shutdown,
        )
    }

    /// A node that knows nobody yet, sharing `process` with the other nodes of its process.
    pub fn serving_on(
        process: ProcessWide,
        id: String,
        index: usize,
        port: u16,
        config: Arc<Config>,
        tuning: Tuning,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Node> {
        let me = NodeInfo {
            id: id.clone(),
            host: config.advertise_host.clone().unwrap_or_default(),
            port,
        };
        let metrics = Arc::new(Metrics::new());
        let client = PeerClient::new(config.cluster_secret.as_deref())
            .with_clock_offset(tuning.clock_offset_ms);
        Arc::new(Node {
            origin: origin_tag(&id),
            membership: Mutex::new({
                let mut m = Membership::new(
                    me,
                    tuning.membership.clone(),
                    rand::thread_rng().gen(),
                    Instant::now(),
                );
                m.set_local_host(local_host(config.bind_addr));
                m
            }),
            membership_changed: Notify::new(),
            fault: Notify::new(),
            replicator: Replicator::new(&id, client.clone(), metrics.clone()),
            store: Store::with_purged_bytes(config.max_storage_bytes, process.purged.clone()),
            hlc: Hlc::new(),
            client,
            metrics,
            skew: SkewTable::default(),
            limiter: process.limiter,
            receiving: process.receiving,
            connections: crate::http::conns::Connections::new(config.max_connections),
            gate: process.gate,
            dashboard: crate::http::dashboard::DashState::default(),
            locations: process.locations.clone(),
            started: Instant::now(),
            ready: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            catchup: Default::default(),
            events: Mutex::new(VecDeque::with_capacity(EVENT_HISTORY)),
            refused_for_room: Mutex::default(),
            conn_threads: process.conn_threads,
            id,
            index,
            port,
            config,
            tuning,
            shutdown,
        })
    }

    /// The membership state, locked (never held across `.await`).
    pub fn membership(&self) -> MutexGuard<'_, Membership> {
        self.membership.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the first discovery round has finished (see [`Node::is_caught_up`]
    /// for holding the data too).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// True while this node serves and has not begun to shut down: only then does it
    /// take replication batches handed over in memory by nodes of this process.
    pub fn accepts_replication(&self) -> bool {
        self.serving.load(Ordering::Acquire) && !self.is_stopping()
    }

    pub(crate) fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    /// A host clients can reach this node at: the advertised one, else the address peers
    /// see it at, else the bind address (loopback when that is every address).
    pub fn reachable_host(&self) -> String {
        if let Some(h) = &self.config.advertise_host {
            return h.clone();
        }
        let seen = self.membership().me().host.clone();
        if seen.is_empty() {
            local_host(self.config.bind_addr)
        } else {
            seen
        }
    }

    /// True once shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// This node's wall clock, ms since the Unix epoch (with the test offset, if any).
    pub fn wall_ms(&self) -> u64 {
        crate::clock::offset_ms((self.tuning.wall_ms)(), self.tuning.clock_offset_ms)
    }

    /// Seconds since start.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Store a write locally, replicate it to every live peer at once, and wait for the
    /// quorum (or the write timeout).
    pub async fn put(
        &self,
        key: String,
        value: Bytes,
        ttl_s: u64,
    ) -> Result<PutOutcome, StoreError> {
        let created_ms = self.wall_ms();
        let ttl = Duration::from_secs(ttl_s);
        let version = Version {
            hlc: self.hlc.tick(created_ms),
            origin: self.origin,
        };
        let expires_ms = created_ms.saturating_add(ttl_s.saturating_mul(1000));
        // A clone turns the freshly read value into a shared one, which costs an extra
        // allocation for as long as the key lives: clone only for peers to send it to.
        let (stored, to_send) = if self.replicator.has_peers() {
            (value.clone(), Some(value))
        } else {
            (value, None)
        };
        let record = Record {
            value: stored,
            created_ms,
            expires_ms,
            expires_at: Instant::now() + ttl,
            version,
        };
        // A held version dated beyond the tolerated skew (our clock stepped back since)
        // must not beat this write: see `Store::apply_over`.
        self.store
            .apply_over(&key, record, hlc_ceiling(created_ms))?;
        let deadline = Instant::now() + self.config.write_timeout;
        let acks = Acks::new();
        let fanout = match to_send {
            Some(value) => {
                let entry = Arc::new(Entry {
                    key,
                    value,
                    created_ms,
                    expires_ms,
                    version,
                });
                self.replicator.broadcast(entry, Some(&acks))
            }
            // No peers when the write was stored: nothing to wait for (a peer that joins
            // now gets the key from catch-up).
            None => Fanout::default(),
        };
        let quorum = self.config.quorum(fanout.peers + 1);
        // With other processes alive, one copy must live outside this process, so a
        // durable write survives the loss of any one process.
        let need_other_domain = quorum > 1 && fanout.other_domain;
        let remote = if quorum > 1 && fanout.queued > 0 {
            acks.wait(quorum - 1, need_other_domain, deadline).await
        } else {
            0
        };
        Ok(PutOutcome {
            acks: 1 + remote,
            quorum,
        })
    }

    /// Apply a replication batch from a peer (received over HTTP or handed over in
    /// memory): how many of its entries this node now holds (or holds something newer of).
    /// That count is the acknowledgement, so it never includes an entry this node will not
    /// serve: refused, or already expired here on arrival (acks mean readable).
    pub fn apply_batch<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) -> u32 {
        entries
            .into_iter()
            .map(|e| u32::from(holds(self.apply_remote(e))))
            .sum()
    }

    /// Apply a batch a node of another process sent for relaying, then hand it over in
    /// memory to every other node of this cluster serving in this process: the ids of the
    /// nodes that now hold all of it (at most [`wire::MAX_HOLDERS`]).
    pub fn relay_batch(&self, entries: &[Entry]) -> Vec<String> {
        self.metrics.relay_batches.inc();
        self.metrics.relay_entries.inc_by(entries.len() as u64);
        let whole = |held: u32| held as usize == entries.len();
        let mut holders = Vec::new();
        if whole(self.apply_batch(entries)) {
            holders.push(self.id.clone());
        }
        for sibling in crate::local::serving_in(crate::ids::failure_domain(&self.id)) {
            if sibling.id == self.id || !sibling.accepts_replication() {
                continue;
            }
            sibling.metrics.replication_received_memory.inc();
            if whole(sibling.apply_batch(entries)) && holders.len() < wire::MAX_HOLDERS {
                holders.push(sibling.id.clone());
            }
        }
        holders
    }

    /// Apply one entry received from a peer. `None` when refused (invalid, dated beyond
    /// [`MAX_SKEW_MS`] ahead of our clock, or storage full); otherwise what the store did
    /// ([`Applied::Expired`] when it had expired by our clock: counted, not held). The
    /// value is shared with `e`, not copied.
    pub fn apply_remote(&self, e: &Entry) -> Option<Applied> {
        if crate::http::check_key(&e.key).is_err() || e.value.len() > self.config.max_value_bytes {
            self.metrics.rejected_messages.inc();
            return None;
        }
        let now = self.wall_ms();
        // From a clock (or a forger) too far ahead: it would win every conflict of its key
        // and outlive its TTL by the skew. Refused, and its HLC not adopted.
        let ceiling = now.saturating_add(MAX_SKEW_MS);
        let ahead = e.version.wall_ms().max(e.created_ms);
        if ahead > ceiling {
            self.refused(e, Refusal::future, ahead - now);
            return None;
        }
        if e.expires_ms <= now {
            self.refused(e, Refusal::expired, now - e.expires_ms);
            return Some(Applied::Expired);
        }
        self.hlc.observe(e.version.hlc, now, MAX_SKEW_MS);
        // Trust the origin's expiry, but never beyond what our own policy allows.
        let max_ms = self
            .config
            .max_ttl
            .saturating_mul(1000)
            .saturating_add(MAX_SKEW_MS);
        let origin_remaining = e.expires_ms.saturating_sub(now);
        let remaining = origin_remaining.min(max_ms);
        let record = Record {
            value: e.value.clone(),
            // A creation time in the future is a faulty peer's: keep it within the skew
            // we tolerate, so X-Created-At stays a real date.
            created_ms: e.created_ms.min(now.saturating_add(MAX_SKEW_MS)),
            expires_ms: if remaining == origin_remaining {
                e.expires_ms
            } else {
                now + remaining
            },
            expires_at: Instant::now() + Duration::from_millis(remaining),
            version: e.version,
        };
        match self.store.apply_over(&e.key, record, hlc_ceiling(now)) {
            Ok(applied) => {
                if applied == Applied::Expired {
                    self.metrics.refused(Refusal::expired);
                }
                if matches!(applied, Applied::Inserted | Applied::Replaced) {
                    self.metrics.entries_applied.inc();
                    self.metrics
                        .replication_lag_seconds
                        .observe(now.saturating_sub(e.version.wall_ms()) as f64 / 1000.0);
                }
                Some(applied)
            }
            Err(err) => {
                debug!(node = %self.id, port = self.port, key = %e.key, error = %err, "replica refused");
                // Whether it came by replication or anti-entropy, do not pull it again
                // while there is no more room.
                self.refused_for_room
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .note(&e.key, e.version, self.store.bytes());
                None
            }
        }
    }

    /// Count and (rate-limited) log an entry refused for `reason`, `by_ms` beyond the
    /// limit, naming the peer that wrote it when it is a member we know.
    fn refused(&self, e: &Entry, reason: Refusal, by_ms: u64) {
        self.metrics.refused(reason);
        let what = match reason {
            Refusal::future => "future",
            Refusal::expired => "expired",
        };
        if !self.skew.warn_due(what, Instant::now()) {
            return;
        }
        let origin = self
            .membership()
            .peers()
            .find(|p| origin_tag(&p.info.id) == e.version.origin)
            .map(|p| format!("{} at {}", p.info.id, p.addr()))
            .unwrap_or_else(|| format!("unknown writer (origin tag {:016x})", e.version.origin));
        match reason {
            Refusal::future => {
                warn!(node = %self.id, port = self.port, peer = %origin, key = %e.key, ahead_ms = by_ms, max_skew_ms = MAX_SKEW_MS, "refused entries dated beyond the tolerated clock skew ahead of this node's clock: check the writer's clock (more such refusals are counted in repram_entries_refused, logged again in 30 s)")
            }
            Refusal::expired => {
                warn!(node = %self.id, port = self.port, peer = %origin, key = %e.key, expired_ms_ago = by_ms, "refused (not acknowledged) entries already expired by this node's clock: is the writer's clock behind? (counted in repram_entries_refused, logged again in 30 s)")
            }
        }
    }

    /// One anti-entropy pull (as [`Node::sync_with`], one page at a time) over any transport: `call` carries a sync message to the peer
    /// and returns its answer (tests hand it to a peer in memory).
    pub async fn sync_via<F, Fut>(&self, settle: bool, mut call: F) -> Result<usize, CallError>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        let digest = Message::Digest(self.store.digest());
        let versions = match call(digest).await? {
            Message::Versions(v) => v,
            other => {
                return Err(CallError::Http(format!(
                    "unexpected reply {}",
                    other.kind()
                )))
            }
        };
        let now = self.wall_ms();
        let wanted: Vec<String> =
            antientropy::worth_fetching(&versions, |k| self.store.version(k), now, settle)
                .into_iter()
                .map(String::from)
                .collect();
        let mut repaired = 0;
        for chunk in wanted.chunks(FETCH_CHUNK) {
            match call(Message::Fetch(chunk.to_vec())).await? {
                Message::Replicate(entries) => {
                    for e in &entries {
                        if matches!(
                            self.apply_remote(e),
                            Some(Applied::Inserted | Applied::Replaced)
                        ) {
                            repaired += 1;
                        }
                    }
                }
                other => {
                    return Err(CallError::Http(format!(
                        "unexpected reply {}",
                        other.kind()
                    )))
                }
            }
            if self.is_stopping() {
                break;
            }
        }
        self.metrics.anti_entropy_rounds.inc();
        self.metrics.anti_entropy_repairs.inc_by(repaired as u64);
        Ok(repaired)
    }

    /// One periodic anti-entropy round, paced by `pacer`: `None` when the pacer skips
    /// it, otherwise the settled pull of [`Node::sync_via`] through `call`.
    pub async fn anti_entropy_round<F, Fut>(
        &self,
        pacer: &mut antientropy::Pacer,
        call: F,
    ) -> Option<Result<usize, CallError>>
    where
        F: FnMut(Message) -> Fut,
        Fut: std::future::Future<Output = Result<Message, CallError>>,
    {
        if !pacer.round_due(self.store.digest()) {
            return None;
        }
        Some(self.sync_via(true, call).await)
    }

    /// Anti-entropy rounds against a random live peer, forever (until shutdown).
    async fn anti_entropy_loop(self: Arc<Self>) {
        const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
        let mut shutdown = self.shutdown.clone();
        let mut pacer = antientropy::Pacer::default();
        loop {
            let jitter = rand::thread_rng()
                .gen_range(0..=self.tuning.anti_entropy_interval.as_millis() as u64 / 4);
            tokio::select! {
                _ = tokio::time::sleep(self.tuning.anti_entropy_interval + Duration::from_millis(jitter)) => {}
                _ = shutdown.changed() => return,
            }
            let peer = {
                let m = self.membership();
                let peers: Vec<_> = m
                    .peers()
                    .filter(|p| !p.suspect)
                    .map(|p| (p.info.id.clone(), p.addr()))
                    .collect();
                if peers.is_empty() {
                    continue;
                }
                peers[rand::thread_rng().gen_range(0..peers.len())].clone()
            };
            // Signed sync requests name the member they are meant for.
            let (id, peer) = peer;
            let client = &self.client;
            let call = |msg: Message| {
                let (peer, id) = (&peer, &id);
                async move {
                    client
                        .call(peer, Some(id), SYNC_PATH, &msg, ROUND_TIMEOUT)
                        .await
                }
            };
            match self.anti_entropy_round(&mut pacer, call).await {
                None | Some(Ok(0)) => {}
                Some(Ok(n)) => {
                    info!(node = %self.id, port = self.port, peer = %peer, repaired = n, "anti-entropy repaired entries")
                }
                Some(Err(e)) => {
                    debug!(node = %self.id, port = self.port, peer = %peer, error = %e, "anti-entropy round failed")
                }
            }
        }
    }

    /// Handle gossip received over HTTP and return our answer. A relay request (indirect
    /// probe) is carried out before answering.
    ///
    /// Signed gossip that does not name this node by id (a discovery probe to an address,
    /// or one meant for the node that was here before) is only answered, so a captured
    /// message replayed here changes nothing: the answer says who is here.
    pub async fn on_gossip(
        self: &Arc<Self>,
        msg: crate::wire::Gossip,
        source: IpAddr,
        addressed: bool,
    ) -> Message {
        if !addressed {
            let mut reply = {
                let mut m = self.membership();
                if self.is_stopping() {
                    m.leave_message()
                } else {
                    m.message(msg.full, None)
                }
            };
            reply.observed = source.to_string();
            return Message::Gossip(reply);
        }
        let relay_ok = if msg.relay.is_empty() {
            false
        } else {
            self.relay_probe(&msg.relay).await
        };
        let (events, mut reply) = {
            let mut m = self.membership();
            let events = m.on_gossip(&msg, Some(source), Instant::now());
            let reply = if self.is_stopping() {
                m.leave_message()
            } else {
                m.message(msg.full, Some(&msg.from.id))
            };
            (events, reply)
        };
        self.handle_events(events);
        // Its claims may have made a probe due at once (see Membership::on_gossip).
        self.membership_changed.notify_one();
        reply.observed = source.to_string();
        reply.relay_ok = relay_ok;
        Message::Gossip(reply)
    }

    /// Probe `addr` for another node (an indirect probe): true if anything answered.
    async fn relay_probe(&self, addr: &str) -> bool {
        let (msg, timeout) = {
            let mut m = self.membership();
            let timeout = self.tuning.membership.probe_timeout * (1 + m.health());
            (Message::Gossip(m.message(false, None)), timeout)
        };
        matches!(
            self.client
                .call(addr, None, GOSSIP_PATH, &msg, timeout)
                .await,
            Ok(Message::Gossip(_))
        )
    }

    /// Act on membership changes: logs, metrics, replication links, catch-up.
    pub fn handle_events(self: &Arc<Self>, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let mut changed = false;
        for event in events {
            self.remember(&event);
            match event {
                Event::Joined(p) => self.peer_up(p),
                Event::Left(p) => {
                    info!(node = %self.id, port = self.port, event = "left", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer left");
                    self.metrics.peer_leaves.inc();
                    self.peer_gone(&p.id);
                }
                Event::Dead(p) => {
                    warn!(node = %self.id, port = self.port, event = "dead", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer declared dead");
                    self.metrics.peer_deaths.inc();
                    self.peer_gone(&p.id);
                    self.catch_up_peer_lost(&p.id);
                }
                Event::Replaced { old, new } => {
                    info!(node = %self.id, port = self.port, event = "replaced", peer = %new.id, old = %old.id, addr = %fmt_addr(&new.host, new.port), "peer restarted with a new id");
                    self.metrics.peer_deaths.inc();
                    self.peer_gone(&old.id);
                    self.peer_up(new);
                }
                Event::Suspected(p) => {
                    info!(node = %self.id, port = self.port, event = "suspected", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "peer suspected");
                    self.metrics.peer_suspicions.inc();
                    // Not counted for quorum (nor sent writes) until it answers again:
                    // a member that never answers must not cost every write its quorum.
                    self.replicator.remove_peer(&p.id);
                    continue;
                }
                Event::Recovered(p) => {
                    info!(node = %self.id, port = self.port, event = "recovered", peer = %p.id, addr = %fmt_addr(&p.host, p.port), "suspected peer is alive");
                    let addr = self.membership().peer(&p.id).map(|m| m.addr());
                    self.replicator
                        .add_peer(&p.id, addr.unwrap_or_else(|| fmt_addr(&p.host, p.port)));
                    continue;
                }
            }
            changed = true;
        }
        if !changed {
            self.membership_changed.notify_one();
            return;
        }
        let size = self.membership().len() + 1;
        self.metrics.peers.set(size as i64 - 1);
        info!(node = %self.id, port = self.port, mesh_size = size, "mesh size changed");
        self.membership_changed.notify_one();
    }

    /// The latest membership events, oldest first.
    pub fn recent_events(&self) -> Vec<MembershipEvent> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    fn remember(&self, event: &Event) {
        let (kind, p, replaced) = match event {
            Event::Joined(p) => ("joined", p, None),
            Event::Left(p) => ("left", p, None),
            Event::Dead(p) => ("dead", p, None),
            Event::Replaced { old, new } => ("replaced", new, Some(old.id.clone())),
            Event::Suspected(p) => ("suspected", p, None),
            Event::Recovered(p) => ("recovered", p, None),
        };
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        if events.len() == EVENT_HISTORY {
            events.pop_front();
        }
        events.push_back(MembershipEvent {
            at_ms: now_ms(),
            kind,
            peer: p.id.clone(),
            address: fmt_addr(&p.host, p.port),
            replaced,
        });
    }

    /// A peer left or died: no more writes to it, and its skew is forgotten.
    fn peer_gone(&self, id: &str) {
        self.replicator.remove_peer(id);
        self.skew.remove(id);
        self.metrics.peer_clock_skew_ms.remove(&PeerLabels {
            peer: id.to_string(),
        });
    }

    /// Note the clock of the member `peer` at `addr`, read from the answer to a probe sent
    /// at `sent_ms` and received at `received_ms` (our clock); warn when it splits the
    /// cluster.
    fn note_clock(&self, peer: &str, addr: &str, sent_ms: u64, received_ms: u64, peer_ms: u64) {
        let (skew_ms, error_ms) = crate::skew::measure(sent_ms, received_ms, peer_ms);
        self.metrics
            .peer_clock_skew_ms
            .get_or_create(&PeerLabels {
                peer: peer.to_string(),
            })
            .set(skew_ms);
        let measured = PeerSkew {
            skew_ms,
            error_ms,
            at: Instant::now(),
        };
        if self.skew.record(peer, measured) {
            let side = if skew_ms > 0 { "ahead of" } else { "behind" };
            warn!(node = %self.id, port = self.port, peer = %peer, addr = %addr, skew_ms, max_skew_ms = MAX_SKEW_MS,
                "CLOCK SKEW: peer's clock is {}s {side} this node's, beyond the {}s tolerated: its writes or ours are refused (and with a cluster secret, signatures fail), so the cluster is split; fix the clocks (NTP)",
                skew_ms.unsigned_abs() / 1000, MAX_SKEW_MS / 1000);
        }
    }

    fn peer_up(self: &Arc<Self>, p: NodeInfo) {
        // Where we reach it: for a node on our own host, the local address rather than the
        // public one it advertises (and that events carry).
        let reach = self.membership().peer(&p.id).map(|m| m.addr());
        let addr = reach.unwrap_or_else(|| fmt_addr(&p.host, p.port));
        info!(node = %self.id, port = self.port, event = "joined", peer = %p.id, addr = %addr, "peer joined");
        self.metrics.peer_joins.inc();
        self.replicator.add_peer(&p.id, addr);
        self.catch_up_peer_joined(&p.id);
    }

    /// Send one probe and feed the outcome back into membership.
    async fn probe(self: Arc<Self>, probe: Probe) {
        let msg = Message::Gossip(
            self.membership()
                .message(probe.full, probe.member.as_deref()),
        );
        let sent_ms = self.wall_ms();
        let (result, peer_clock) = self
            .client
            .call_clocked(
                &probe.addr,
                probe.member.as_deref(),
                GOSSIP_PATH,
                msg.encode(),
                probe.timeout,
            )
            .await;
        if let Some(peer_ms) = peer_clock {
            let received_ms = self.wall_ms();
            match (&result, &probe.member) {
                // Measured on direct answers only: the answering id at the address we chose.
                (Ok(Message::Gossip(g)), _) => {
                    self.note_clock(&g.from.id, &probe.addr, sent_ms, received_ms, peer_ms)
                }
                // A refusal (a signature outside the window?) still tells its clock.
                (Err(CallError::Status(status)), Some(member)) => {
                    let (skew_ms, _) = crate::skew::measure(sent_ms, received_ms, peer_ms);
                    if skew_ms.unsigned_abs() > MAX_SKEW_MS
                        && self.skew.warn_due(member, Instant::now())
                    {
                        warn!(node = %self.id, port = self.port, peer = %member, addr = %probe.addr, status = status.as_u16(), skew_ms,
                            "CLOCK SKEW: peer refused our probe and its clock is beyond the tolerated skew: signatures fail and the cluster is split; fix the clocks (NTP)");
                    }
                }
                _ => {}
            }
        }
        let outcome = match result {
            Ok(Message::Gossip(reply)) => ProbeOutcome::Reply(reply),
            Err(CallError::Refused) => ProbeOutcome::Refused,
            other => {
                if probe.member.is_some() {
                    let why = match other {
                        Ok(m) => format!("unexpected reply {m:?}"),
                        Err(e) => e.to_string(),
                    };
                    debug!(node = %self.id, port = self.port, addr = %probe.addr, error = %why, "probe failed");
                }
                ProbeOutcome::Failed
            }
        };
        if !matches!(outcome, ProbeOutcome::Reply(_)) {
            // Empty ports of the range miss forever: kept apart from members' failures.
            match probe.member {
                Some(_) => self.metrics.probe_failures.inc(),
                None => self.metrics.discovery_misses.inc(),
            };
        }
        let (events, indirect) = self
            .membership()
            .probe_result(&probe, outcome, Instant::now());
        self.handle_events(events);
        // A discovery slot may have freed up.
        self.membership_changed.notify_one();
        if let Some(plan) = indirect {
            self.indirect_probe(plan).await;
        }
    }

    /// Ask other members to probe a member that missed its direct probe.
    async fn indirect_probe(self: &Arc<Self>, plan: IndirectProbe) {
        let msg = {
            let mut g = self.membership().message(false, None);
            g.relay = plan.target_addr.clone();
            Message::Gossip(g)
        };
        // Signed requests name their receiver: the helpers are members, ids known.
        let helpers: Vec<(String, Option<String>)> = {
            let m = self.membership();
            plan.helpers
                .iter()
                .map(|addr| {
                    let id = m
                        .peers()
                        .find(|p| p.addr() == *addr)
                        .map(|p| p.info.id.clone());
                    (addr.clone(), id)
                })
                .collect()
        };
        let asks = helpers.iter().map(|(helper, id)| {
            let msg = &msg;
            async move {
                matches!(
                    self.client.call(helper, id.as_deref(), GOSSIP_PATH, msg, plan.timeout).await,
                    Ok(Message::Gossip(g)) if g.relay_ok
                )
            }
        });
        let reached = futures::future::join_all(asks)
            .await
            .into_iter()
            .any(|ok| ok);
        let events = self
            .membership()
            .indirect_result(&plan.member, reached, Instant::now());
        self.handle_events(events);
    }

    /// Add every discovery address to the membership targets.
    async fn refresh_targets(&self) {
        let addrs =
            crate::discovery::targets(&self.config, self.port, self.gate.hosts(), &self.locations)
                .await;
        let now = Instant::now();
        let mut m = self.membership();
        for a in addrs {
            m.add_target(a, now);
        }
    }

    /// Run membership until shutdown: the first discovery round (then ready), then probes
    /// whenever one is due.
    async fn drive_membership(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        self.refresh_targets().await;

        let mut next_resolve = Instant::now() + self.tuning.resolve_interval;
        loop {
            let now = Instant::now();
            if now >= next_resolve {
                self.refresh_targets().await;
                next_resolve = now + self.tuning.resolve_interval;
            }
            let (probes, events) = self.membership().tick(now);
            self.handle_events(events);
            if !self.is_ready() && self.membership().first_scan_done() {
                self.ready.store(true, Ordering::Release);
                info!(node = %self.id, port = self.port, peers = self.membership().len(), "first discovery round done");
            }
            for p in probes {
                tokio::spawn(self.clone().probe(p));
            }
            let wake = self
                .membership()
                .next_deadline()
                .unwrap_or(next_resolve)
                .min(next_resolve)
                .max(now + Duration::from_millis(5));
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = self.membership_changed.notified() => {}
                // A refused stranger may be a cluster host with a new address.
                _ = self.gate.stranger_knocked() => next_resolve = Instant::now(),
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Tell every live peer this node is leaving (best effort, bounded time).
    async fn announce_leave(&self) {
        let (msg, addrs) = {
            let m = self.membership();
            (
                Message::Gossip(m.leave_message()),
                m.peers()
                    .map(|p| (p.addr(), p.info.id.clone()))
                    .collect::<Vec<_>>(),
            )
        };
        let calls = addrs.iter().map(|(a, id)| {
            self.client
                .call(a, Some(id), GOSSIP_PATH, &msg, Duration::from_millis(500))
        });
        futures::future::join_all(calls).await;
        self.replicator.clear();
    }

    /// Serve this node on `listener` until `shutdown` turns true: then announce leaving,
    /// stop accepting, and drain in-flight requests.
    pub async fn run(self: Arc<Self>, listener: std::net::TcpListener) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        // Background tasks die with this future, also when it panics (unwinding drops
        // the guards), so a restarted node never runs beside its predecessor's tasks.
        let _tasks = [
            AbortOnDrop(
                self.store
                    .spawn_purger(self.config.cleanup_interval, self.shutdown.clone()),
            ),
            AbortOnDrop(tokio::spawn(self.clone().drive_membership())),
            AbortOnDrop(tokio::spawn(self.clone().anti_entropy_loop())),
            AbortOnDrop(tokio::spawn(self.clone().catch_up_loop())),
        ];
        // Peers of this process hand replication batches over in memory while this
        // registration lives: it ends with this future, like the tasks above.
        let _local = crate::local::register(&self);
        tokio::select! {
            _ = crate::http::serve(self.clone(), listener) => Ok(()),
            _ = self.fault.notified() => panic!("fault injected into node {}", self.id),
        }
    }

    /// Test hook: make this node's task panic, as a bug would, so the supervisor's
    /// restart path can be exercised. Reachable only through the library API.
    #[doc(hidden)]
    pub fn inject_fault(&self) {
        self.fault.notify_one();
    }

    /// Called by the HTTP server when shutdown begins, before it stops accepting.
    pub async fn leave(&self) {
        self.announce_leave().await;
        info!(node = %self.id, port = self.port, "left the mesh");
    }

    /// Wait for the shutdown signal.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}
