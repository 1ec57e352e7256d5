//! One REPRAM node: its store, membership driver, replication and catch-up. The
//! supervisor serves it over HTTP; each concept is a file:
//! [`data`] (writes and received entries), [`driver`] (membership), [`anti_entropy`],
//! [`catchup`], [`messages`] (answers to node messages), [`views`] (the JSON a node
//! tells about itself), [`events`] (history for the UI), [`lifecycle`], [`tuning`].

mod anti_entropy;
pub mod catchup;
mod data;
mod driver;
mod events;
mod lifecycle;
#[cfg(test)]
mod memory_tests;
mod messages;
mod tuning;
mod views;

pub use catchup::ReadThrough;
pub use data::PutOutcome;
pub use events::{MembershipEvent, EVENT_HISTORY};
pub use tuning::{Tuning, TEST_CLOCK_OFFSET_VAR};

use rand::Rng;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::antientropy;
use crate::clock::{origin_tag, Hlc};
use crate::cluster_hosts::ClusterHosts;
use crate::config::Config;
use crate::local::{Member, Registry};
use crate::membership::{split_addr, Membership};
use crate::metrics::Metrics;
use crate::replication::{LocalReplicas, Replica, Replicator};
use crate::skew::SkewTable;
use crate::store::Store;
use crate::transport::local_first::LocalNodes;
use crate::transport::memory::Handler;
use crate::transport::PeerClient;
use crate::wire::{Entry, NodeInfo};

/// How nodes of this host reach each other: loopback when they listen on every address,
/// else the address they listen on.
fn local_host(bind: IpAddr) -> String {
    match bind {
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(ip) if ip.is_unspecified() => "::1".into(),
        ip => ip.to_string(),
    }
}

/// The state one node's tasks share.
pub struct Node {
    /// The Flux instance lists, shared with the other nodes of the process.
    pub(crate) locations: Arc<crate::flux::location::LocationCache>,
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
    /// The key/value data, shared with the other nodes of this process.
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
    /// The cluster hosts, kept current by discovery (the HTTP gate reads them).
    pub hosts: Arc<ClusterHosts>,
    /// Notified when a stranger was refused: discovery resolves again at once.
    knock: Arc<Notify>,
    /// The nodes of this cluster serving in this process.
    local: Registry<Node>,
    /// Clock skew of each peer, as measured by probes.
    pub skew: SkewTable,
    /// When it started.
    pub started: Instant,
    ready: AtomicBool,
    /// True while the node serves (registered in `local`).
    serving: AtomicBool,
    /// Catch-up after start or a pause (see [`catchup`]).
    catchup: catchup::CatchUp,
    shutdown: watch::Receiver<bool>,
    events: Mutex<VecDeque<MembershipEvent>>,
    /// Entries the store refused for want of room (see [`antientropy::Refused`]).
    refused_for_room: Mutex<antientropy::Refused>,
}

/// What the nodes of one cluster in this process share, and every restart of one.
#[derive(Clone)]
pub struct ProcessWide {
    /// The nodes of the cluster serving in this process.
    pub registry: Registry<Node>,
    /// The cluster hosts, kept current by the nodes' discovery rounds.
    pub hosts: Arc<ClusterHosts>,
    /// Notified (by whoever refuses strangers) when discovery should resolve again.
    pub knock: Arc<Notify>,
    /// How the nodes reach their peers; `None`: over HTTP, each with its own client.
    pub transport: Option<PeerClient>,
    /// The data, one copy per process: every node of the cluster here serves this store
    /// (a write that reaches one has reached them all), and so does a restart of one.
    pub store: Store,
    /// The Flux instance lists every node's discovery reads.
    pub locations: Arc<crate::flux::location::LocationCache>,
}

impl ProcessWide {
    /// An empty registry and the cluster hosts of `config`.
    pub fn new(config: &Config) -> ProcessWide {
        ProcessWide {
            registry: Registry::new(),
            hosts: Arc::new(ClusterHosts::new(config)),
            knock: Arc::new(Notify::new()),
            transport: None,
            store: Store::new(config.max_storage_bytes),
            locations: Arc::default(),
        }
    }
}

impl Node {
    /// A node that knows nobody yet, alone in a process (registry, cluster hosts) of its
    /// own.
    pub fn new(
        id: String,
        index: usize,
        port: u16,
        config: Arc<Config>,
        tuning: Tuning,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Node> {
        Node::serving_on(
            ProcessWide::new(&config),
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
        let client = process.transport.clone().unwrap_or_else(|| {
            // By id; without one, by port when the address is how this host's nodes are
            // reached (what an HTTP call there would reach). A stopping node is left to
            // HTTP, whose server stops answering as it drains.
            let registry = process.registry.clone();
            let here = local_host(config.bind_addr);
            let local: LocalNodes = Arc::new(move |addr, id| {
                let node = match id {
                    Some(id) => registry.lookup(id)?.upgrade()?,
                    None => {
                        let (host, port) = split_addr(addr)?;
                        if host != here {
                            return None;
                        }
                        registry.find(|n| n.port == port)?
                    }
                };
                (!node.is_stopping()).then_some(node as Arc<dyn Handler>)
            });
            PeerClient::local_first(
                local,
                config.cluster_secret.as_deref(),
                tuning.clock_offset_ms,
            )
        });
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
            replicator: Replicator::new(
                &id,
                client.clone(),
                metrics.clone(),
                {
                    let registry = process.registry.clone();
                    let local: LocalReplicas = Arc::new(move |id| {
                        registry
                            .lookup(id)
                            .map(|n| n as std::sync::Weak<dyn Replica>)
                    });
                    local
                },
                process.store.clone(),
            ),
            store: process.store,
            hlc: Hlc::new(),
            client,
            metrics,
            skew: SkewTable::default(),
            hosts: process.hosts,
            knock: process.knock,
            local: process.registry,
            locations: process.locations.clone(),
            started: Instant::now(),
            ready: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            catchup: Default::default(),
            events: Mutex::new(VecDeque::with_capacity(EVENT_HISTORY)),
            refused_for_room: Mutex::default(),
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

    /// The cluster's registry of the nodes serving in this process.
    pub fn registry(&self) -> &Registry<Node> {
        &self.local
    }
}

impl Member for Node {
    fn member_id(&self) -> &str {
        &self.id
    }

    fn set_serving(&self, serving: bool) {
        Node::set_serving(self, serving)
    }
}

impl Replica for Node {
    fn accepts_replication(&self) -> bool {
        Node::accepts_replication(self)
    }

    fn take_in_memory(
        &self,
        entries: &mut dyn Iterator<Item = &Entry>,
        held_in: Option<&Store>,
    ) -> u32 {
        self.metrics.replication_received_memory.inc();
        match held_in {
            // The nodes of a process share their store: what the writer holds, so does it.
            Some(store) if store.is_same(&self.store) => {
                u32::try_from(entries.count()).unwrap_or(u32::MAX)
            }
            _ => self.apply_batch(entries),
        }
    }
}
