//! Catch-up: how a node that starts late (or comes back from a pause) gets the data
//! the cluster holds, and the anti-entropy round it is built on (see
//! [`crate::antientropy`]).
//!
//! After its first discovery round a node pulls every live entry from a peer that holds
//! them: a peer of another process (a sibling that started with it is as empty as it is),
//! the one that is itself caught up and has lived longest (asked through `/ready`). The
//! nodes of one process share the work in memory: the lowest-indexed node that needs
//! data fetches (the others wait for it) and applies each page to its siblings too; a
//! node that finds a sibling caught up copies from it without a network call. Until
//! caught up a node is not `/ready`, and a read that misses locally is read through from
//! one or two such peers. A node whose clock jumps (the process was paused, or starved
//! for [`PAUSE`]) or that sees peers it had declared dead come back while it had no other
//! peer outside its process catches up again, and so does a node that found no peer of
//! another process and then meets one (its first probes were refused: a host on a new
//! address is a stranger to the others until they resolve their sources again). A node
//! whose discovery probes were turned away (401, 403: live nodes that do not know it
//! yet) waits up to [`TURNED_AWAY_WAIT`] for one of them to reach it before it concludes
//! it is alone. When no peer gives the data in
//! [`GIVE_UP_AFTER`] rounds, the node is ready without it and anti-entropy goes on.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::anti_entropy::Pull;
use super::Node;
use crate::antientropy::{self, FETCH_CHUNK};
use crate::ids::failure_domain;
use crate::store::Applied;
use crate::transport::{CallError, SYNC_PATH};
use crate::wire::{Entry, Message};

const IDLE: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// A gap this long between two ticks of the pause watch means the process was stopped
/// (SIGSTOP, a frozen VM) or starved: the cluster went on without it.
const PAUSE: Duration = Duration::from_secs(3);
/// How often the pause watch ticks.
const TICK: Duration = Duration::from_millis(250);
/// Deadline of one read-through call, and how long a read waits for a first peer to ask.
pub(super) const READ_THROUGH_TIMEOUT: Duration = Duration::from_millis(500);
const READ_THROUGH_WAIT: Duration = Duration::from_secs(2);
/// Peers asked per read-through, at most: a miss must not fan out to the cluster.
const READ_THROUGH_PEERS: usize = 2;
/// Read-throughs in flight per node, at most; more are answered 503.
const READ_THROUGH_CONCURRENCY: usize = 64;
/// Pages fetched at once during catch-up.
const FETCH_PARALLEL: usize = 4;
/// Peers asked how caught up and how old they are, at most.
const RANKED: usize = 6;
/// How long catch-up waits for every peer to know this node before its last (small)
/// pull, which takes what was written before peers began replicating to it.
pub(super) const KNOWN_WAIT: Duration = Duration::from_secs(5);
/// Rounds in which every peer asked failed to give the data, before a node gives up and
/// is ready without it.
const GIVE_UP_AFTER: u32 = 3;
/// How long a node whose discovery probes were turned away waits for a peer of another
/// process before it is ready alone: longer than the others take to resolve their
/// sources again when a stranger knocks (at most every 5 s) and to hear the node's next
/// probe (discovery backs off to 4 s by then).
pub const TURNED_AWAY_WAIT: Duration = Duration::from_secs(10);
/// Ids of lost peers remembered, at most.
const MAX_LOST: usize = 1_024;

/// The catch-up state of one node.
pub struct CatchUp {
    state: AtomicU8,
    /// Set when catch-up must run (again) after the current one.
    again: AtomicBool,
    /// Set while this node is caught up only because it found no peer of another
    /// process: the first such peer to join may hold data it lacks.
    alone: AtomicBool,
    /// Set when a discovery probe was turned away (401, 403) since the last catch-up.
    turned_away: Mutex<Option<String>>,
    /// Addresses of the peers that hold the data, best first.
    sources: Mutex<Vec<String>>,
    /// Ms since the node started at the pause watch's last tick.
    last_tick_ms: AtomicU64,
    /// Peers this node declared dead (a partition, or a pause elsewhere).
    lost: Mutex<HashSet<String>>,
    read_throughs: Semaphore,
}

impl Default for CatchUp {
    fn default() -> Self {
        CatchUp {
            state: AtomicU8::new(IDLE),
            again: AtomicBool::new(false),
            alone: AtomicBool::new(false),
            turned_away: Mutex::new(None),
            sources: Mutex::new(Vec::new()),
            last_tick_ms: AtomicU64::new(0),
            lost: Mutex::new(HashSet::new()),
            read_throughs: Semaphore::new(READ_THROUGH_CONCURRENCY),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a read-through found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadThrough {
    /// The key is now held here.
    Found,
    /// No peer asked holds it (or none answered in time).
    Missing,
    /// Too many read-throughs in flight: try again shortly.
    Busy,
}

/// How a peer answered `/ready`: for choosing where to catch up from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    answered: bool,
    caught_up: bool,
    uptime_s: u64,
}

impl Node {
    /// Anti-entropy step 2: our (key, version) pairs in the buckets where `remote` differs.
    pub fn versions_for(&self, remote: &[u64]) -> Message {
        let diff = antientropy::differing(&self.store.digest(), remote);
        Message::Versions(self.store.versions_in(&diff, u64::MAX))
    }

    /// Anti-entropy step 3: the live entries among `keys` (at most [`FETCH_CHUNK`]).
    pub fn fetch(&self, keys: &[String]) -> Message {
        let entries = keys
            .iter()
            .take(FETCH_CHUNK)
            .filter_map(|k| {
                let r = self.store.get(k)?;
                Some(Entry {
                    key: k.clone(),
                    value: r.value,
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                    version: r.version,
                })
            })
            .collect();
        Message::Replicate(entries)
    }

    /// Pull from the peer at `addr` every entry we lack or hold an older version of,
    /// applying each page here and to every node of `share` that is still catching up:
    /// how many entries changed here.
    async fn pull(
        &self,
        addr: &str,
        settle: bool,
        share: &[Arc<Node>],
    ) -> Result<usize, CallError> {
        const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
        let to = self.member_at(addr);
        let client = self.client.clone();
        let call = move |msg: Message| {
            let (client, addr, to) = (client.clone(), addr.to_string(), to.clone());
            async move {
                client
                    .call(&addr, to.as_deref(), SYNC_PATH, &msg, ROUND_TIMEOUT)
                    .await
            }
        };
        let how = Pull {
            settle,
            share,
            skip_refused: true,
            parallel: FETCH_PARALLEL,
        };
        self.pull_via(how, call).await
    }

    /// The id of the member reached at `addr`, which signed sync requests name.
    fn member_at(&self, addr: &str) -> Option<String> {
        self.membership()
            .peers()
            .find(|p| p.addr() == addr)
            .map(|p| p.info.id.clone())
    }

    /// One anti-entropy round: pull from the peer at `addr` every entry we lack or hold
    /// an older version of. Returns how many entries changed here.
    ///
    /// Periodic rounds (`settle`) leave out writes younger than [`antientropy::SETTLE_MS`], which
    /// replication is still delivering; catch-up takes everything.
    pub async fn sync_with(&self, addr: &str, settle: bool) -> Result<usize, CallError> {
        self.pull(addr, settle, &[]).await
    }

    /// Copy from `source`, a node of this process, every entry we lack or hold an older
    /// version of, in memory: how many entries changed here.
    fn copy_from(&self, source: &Node) -> usize {
        let diff = antientropy::differing(&self.store.digest(), &source.store.digest());
        let versions = source.store.versions_in(&diff, u64::MAX);
        let mut copied = 0;
        let now = self.wall_ms();
        for key in antientropy::worth_fetching(&versions, |k| self.store.version(k), now, false) {
            let Some(r) = source.store.get(key) else {
                continue;
            };
            let entry = Entry {
                key: key.to_string(),
                value: r.value,
                created_ms: r.created_ms,
                expires_ms: r.expires_ms,
                version: r.version,
            };
            if matches!(
                self.apply_remote(&entry),
                Some(Applied::Inserted | Applied::Replaced)
            ) {
                copied += 1;
            }
        }
        copied
    }

    /// True once this node holds the cluster's data: caught up, and not just back from
    /// a pause it has not yet noticed.
    pub fn is_caught_up(&self) -> bool {
        self.catchup.is_done() && !self.paused()
    }

    /// True when the pause watch has not ticked for [`PAUSE`]: the process was stopped.
    fn paused(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64;
        now.saturating_sub(self.catchup.last_tick_ms.load(Ordering::Acquire))
            > PAUSE.as_millis() as u64
    }

    /// Nodes of this process serving the same cluster, this one left out.
    fn siblings(&self) -> Vec<Arc<Node>> {
        self.local
            .serving_in(failure_domain(&self.id))
            .into_iter()
            .filter(|n| n.id != self.id)
            .collect()
    }

    /// Addresses of the live peers in other processes, as this node or its siblings
    /// know them.
    fn external_peers(&self, siblings: &[Arc<Node>]) -> Vec<String> {
        let domain = failure_domain(&self.id);
        let mut addrs = Vec::new();
        for node in std::iter::once(self).chain(siblings.iter().map(|s| &**s)) {
            let m = node.membership();
            for p in m.peers() {
                if !p.suspect && failure_domain(&p.info.id) != domain {
                    let a = p.addr();
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
            }
        }
        addrs
    }

    /// `candidates` best first: peers that are caught up, then the longest-lived.
    async fn rank(&self, mut candidates: Vec<String>) -> Vec<String> {
        candidates.truncate(RANKED);
        let asks = candidates.iter().map(|addr| async move {
            let rank = match self
                .client
                .get_json(addr, "/ready", READ_THROUGH_TIMEOUT)
                .await
            {
                Ok((status, doc)) => Rank {
                    answered: true,
                    caught_up: doc["caught_up"].as_bool().unwrap_or(status.is_success()),
                    uptime_s: doc["uptime_s"].as_u64().unwrap_or(0),
                },
                Err(_) => Rank {
                    answered: false,
                    caught_up: false,
                    uptime_s: 0,
                },
            };
            (rank, addr.clone())
        });
        let mut ranked = futures::future::join_all(asks).await;
        ranked.sort_by(|a, b| b.0.cmp(&a.0));
        ranked.into_iter().map(|(_, a)| a).collect()
    }

    /// Catch up until done (or shutdown): see the module documentation.
    async fn catch_up(self: &Arc<Self>) {
        let started = Instant::now();
        let mut failures = 0u32;
        let mut waited = false;
        loop {
            if self.is_stopping() {
                return;
            }
            self.catchup.again.store(false, Ordering::Release);
            let siblings = self.siblings();
            let candidates = self.external_peers(&siblings);
            // A sibling that found nobody has nothing to give once a peer is known.
            let source = siblings.iter().find(|s| {
                s.is_caught_up()
                    && (!s.catchup.alone.load(Ordering::Acquire) || candidates.is_empty())
            });
            if let Some(source) = source {
                let n = self.copy_from(source);
                let alone = source.catchup.alone.load(Ordering::Acquire);
                self.catchup.alone.store(alone, Ordering::Release);
                *lock(&self.catchup.sources) = lock(&source.catchup.sources).clone();
                if self.finish() {
                    info!(node = %self.id, port = self.port, from = %source.id, entries = n, ms = started.elapsed().as_millis() as u64, "caught up from a node of this process, in memory");
                    return;
                }
                continue;
            }
            // The lowest-indexed node that needs data fetches it, for us too.
            let fetching = siblings
                .iter()
                .any(|s| s.index < self.index && !s.is_caught_up());
            if fetching {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            self.catchup.state.store(RUNNING, Ordering::Release);
            if candidates.is_empty() {
                // The first process of the cluster (or alone): nobody to catch up from.
                // Marked before the last look, so a peer joining from now on is seen
                // either here or by `catch_up_peer_joined`.
                let turned_away = lock(&self.catchup.turned_away).clone();
                if let Some(addr) = &turned_away {
                    if started.elapsed() < TURNED_AWAY_WAIT {
                        if !waited {
                            waited = true;
                            info!(node = %self.id, port = self.port, addr = %addr, wait_s = TURNED_AWAY_WAIT.as_secs(),
                                "a node turned this one away: not ready until a peer of another process knows this node, or the wait ends");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
                self.catchup.alone.store(true, Ordering::Release);
                if !self.external_peers(&siblings).is_empty() {
                    self.catchup.alone.store(false, Ordering::Release);
                    continue;
                }
                if let Some(addr) = turned_away {
                    warn!(node = %self.id, port = self.port, addr = %addr, waited_s = TURNED_AWAY_WAIT.as_secs(),
                        "nodes still turn this one away (not one of their cluster hosts, or another REPRAM_CLUSTER_SECRET): ready without their data");
                }
                if self.finish() {
                    info!(node = %self.id, port = self.port, ms = started.elapsed().as_millis() as u64, "no peer in another process; nothing to catch up");
                    return;
                }
                continue;
            }
            self.catchup.alone.store(false, Ordering::Release);
            let ranked = self.rank(candidates).await;
            *lock(&self.catchup.sources) = ranked.clone();
            let mut done = false;
            for addr in ranked.iter().take(3) {
                match self.pull(addr, false, &siblings).await {
                    Ok(n) => {
                        // Writes made before every peer replicated to us: a last, small pull.
                        self.wait_known().await;
                        let tail = self.pull(addr, false, &siblings).await.unwrap_or(0);
                        if self.finish() {
                            info!(node = %self.id, port = self.port, peer = %addr, entries = n + tail, keys = self.store.len(), ms = started.elapsed().as_millis() as u64, "caught up from peer");
                            return;
                        }
                        done = true;
                        break;
                    }
                    Err(e) => {
                        debug!(node = %self.id, port = self.port, peer = %addr, error = %e, "catch-up pull failed; trying the next peer")
                    }
                }
            }
            if done {
                continue;
            }
            self.catchup.state.store(IDLE, Ordering::Release);
            failures += 1;
            if failures >= GIVE_UP_AFTER {
                // Peers that answer gossip but not sync (broken, or another program):
                // staying unready forever would take the node out of service for nothing.
                if self.finish() {
                    warn!(node = %self.id, port = self.port, attempts = failures, "no peer gave the data; ready without it (anti-entropy keeps trying)");
                    return;
                }
                failures = 0;
                continue;
            }
            let backoff = Duration::from_millis(50u64 << failures.min(5));
            warn!(node = %self.id, port = self.port, retry_in_ms = backoff.as_millis() as u64, "no peer gave the data; catch-up retries");
            tokio::time::sleep(backoff).await;
        }
    }

    /// Mark this node caught up, unless it must run again: true when done.
    fn finish(&self) -> bool {
        if self.catchup.again.swap(false, Ordering::AcqRel) {
            return false;
        }
        self.catchup.state.store(DONE, Ordering::Release);
        *lock(&self.catchup.turned_away) = None;
        true
    }

    /// A discovery probe to `addr` was turned away (401, 403): a live node that does not
    /// know this one yet. Catch-up waits for it (see [`TURNED_AWAY_WAIT`]).
    pub(crate) fn catch_up_turned_away(&self, addr: &str) {
        if !self.catchup.is_done() {
            lock(&self.catchup.turned_away).get_or_insert_with(|| addr.to_string());
        }
    }

    /// Wait (at most [`KNOWN_WAIT`]) until every live peer of another process lists this
    /// node among its live peers (`/peers`): from then on, it replicates its writes here.
    async fn wait_known(&self) {
        let deadline = Instant::now() + KNOWN_WAIT;
        let mut waiting = self.external_peers(&[]);
        while !waiting.is_empty() && Instant::now() < deadline && !self.is_stopping() {
            let asks = waiting.iter().map(|addr| async move {
                let listed = match self
                    .client
                    .get_json(addr, "/peers", READ_THROUGH_TIMEOUT)
                    .await
                {
                    Ok((_, doc)) => doc["peers"].as_array().is_some_and(|peers| {
                        peers
                            .iter()
                            .any(|p| p["node_id"].as_str() == Some(&self.id))
                    }),
                    // A peer that does not answer holds us up no longer.
                    Err(_) => true,
                };
                (!listed).then(|| addr.clone())
            });
            waiting = futures::future::join_all(asks)
                .await
                .into_iter()
                .flatten()
                .collect();
            if !waiting.is_empty() {
                // Public requests: keep well under a peer's per-client rate limit.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Catch up after the first discovery round, and again whenever asked to, until
    /// shutdown. The pause watch runs beside it.
    pub(crate) async fn catch_up_loop(self: Arc<Self>) {
        let mut shutdown = self.shutdown.clone();
        let mut last = Instant::now();
        loop {
            self.pause_watch(&mut last);
            if self.is_ready() && !self.catchup.is_done() {
                // The watch must keep ticking while catch-up runs.
                let mut catching = std::pin::pin!(self.catch_up());
                loop {
                    tokio::select! {
                        _ = &mut catching => break,
                        _ = tokio::time::sleep(TICK) => self.pause_watch(&mut last),
                        _ = shutdown.changed() => return,
                    }
                }
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(if self.is_ready() { TICK } else { Duration::from_millis(10) }) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One tick of the pause watch: a long gap since the `last` tick means this process
    /// was stopped, and must catch up again (checked before the tick is recorded, so
    /// [`Node::is_caught_up`] is false until then).
    fn pause_watch(&self, last: &mut Instant) {
        let now = Instant::now();
        let gap = now.duration_since(*last);
        if gap > PAUSE {
            warn!(node = %self.id, port = self.port, paused_ms = gap.as_millis() as u64, "this node was paused; catching up again");
            self.resync();
        }
        *last = now;
        self.catchup
            .last_tick_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Catch up again (after a pause or a partition): not ready until done.
    fn resync(&self) {
        self.catchup.again.store(true, Ordering::Release);
        let _ =
            self.catchup
                .state
                .compare_exchange(DONE, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A peer was declared dead: remembered, to notice a partition healing.
    pub(crate) fn catch_up_peer_lost(&self, id: &str) {
        let mut lost = lock(&self.catchup.lost);
        if lost.len() < MAX_LOST {
            lost.insert(id.to_string());
        }
    }

    /// A peer joined. This node catches up again when it is a peer of another process
    /// and either this node found no such peer when it caught up (its own probes were
    /// refused, or the peer started at the same time), or it is a peer this node had
    /// declared dead coming back while no other peer outside this process was alive
    /// (this node was cut off).
    pub(crate) fn catch_up_peer_joined(&self, id: &str) {
        let domain = failure_domain(&self.id);
        if failure_domain(id) == domain {
            return;
        }
        if self.catchup.alone.swap(false, Ordering::AcqRel) {
            lock(&self.catchup.lost).remove(id);
            info!(node = %self.id, port = self.port, peer = %id, "a peer of another process joined after this node found none; catching up from it");
            self.resync();
            return;
        }
        if !lock(&self.catchup.lost).remove(id) {
            return;
        }
        let others = self
            .membership()
            .peers()
            .filter(|p| p.info.id != id && failure_domain(&p.info.id) != domain)
            .count();
        if others == 0 && self.catchup.is_done() {
            info!(node = %self.id, port = self.port, peer = %id, "a lost peer is back after this node was cut off; catching up again");
            self.resync();
        }
    }

    /// Read `key` through from a peer that holds the data, while this node is catching
    /// up: at most [`READ_THROUGH_PEERS`] peers, each within [`READ_THROUGH_TIMEOUT`].
    /// The entry found is stored here with its origin's expiry.
    pub async fn read_through(&self, key: &str) -> ReadThrough {
        let Ok(_permit) = self.catchup.read_throughs.try_acquire() else {
            return ReadThrough::Busy;
        };
        let deadline = Instant::now() + READ_THROUGH_WAIT;
        let addrs = loop {
            if self.is_caught_up() || self.is_stopping() {
                return ReadThrough::Missing;
            }
            let mut addrs = lock(&self.catchup.sources).clone();
            if addrs.is_empty() {
                addrs = self.external_peers(&self.siblings());
            }
            if !addrs.is_empty() {
                break addrs;
            }
            // No peer known yet: worth waiting for only before the first discovery round
            // of a node that serves.
            if self.is_ready() || !self.accepts_replication() || Instant::now() >= deadline {
                return ReadThrough::Missing;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let ask = Message::Fetch(vec![key.to_string()]);
        for addr in addrs.iter().take(READ_THROUGH_PEERS) {
            if let Ok(Message::Replicate(entries)) = self
                .client
                .call(
                    addr,
                    self.member_at(addr).as_deref(),
                    SYNC_PATH,
                    &ask,
                    READ_THROUGH_TIMEOUT,
                )
                .await
            {
                for e in entries.iter().filter(|e| e.key == key) {
                    self.apply_remote(e);
                }
                if self.store.get(key).is_some() {
                    self.metrics.read_throughs.inc();
                    return ReadThrough::Found;
                }
            }
        }
        ReadThrough::Missing
    }
}

impl CatchUp {
    pub(super) fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }
}
