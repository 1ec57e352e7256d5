//! Write fan-out: bounded queues with one sender task each. For the peers serving in this
//! node's own process, one queue per writing thread, whose task runs on that thread's
//! runtime (a write and its delivery wake no other thread); one per other process
//! (failure domain), however many nodes serve in it; and one per peer of this process
//! reached over HTTP (a node of this cluster not serving here, which only tests arrange).
//!
//! A write is handed to every queue at once (the entry is shared, never copied per peer).
//! Each sender drains whatever has queued up into one batch, delivers it, and
//! acknowledges the writes of the batch for every peer that confirms it holds them. The
//! peers serving in this process (see [`Replica`]) get the batch handed over in
//! memory, one after the other, applied by the same code as a batch received over HTTP.
//! Another process gets it as one HTTP request to one of its nodes, the *relay*, which
//! applies it and hands it in memory to every node serving in its process, then answers
//! with the ids of the nodes that hold the whole batch: so a write costs one HTTP batch
//! stream per other process, not one per remote node. The relay is the first of a fixed
//! order of that process's nodes (different for every writer, so the relaying is spread)
//! that answers; a relay that fails or is slow makes the batch go to the next.
//!
//! A full queue or a failed batch simply withholds the acknowledgements: the writer sees
//! fewer acks (202 instead of 201) and catch-up repairs the peers later. A slow peer or
//! process never delays the others. Acknowledgements are counted in one small shared
//! [`Acks`] per write, not sent through a channel.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use crate::ids::failure_domain;
use crate::metrics::Metrics;
use crate::runtime::Home;
use crate::store::Store;
use crate::transport::{CallError, PeerClient, REPLICATE_PATH};
use crate::wire::{self, Entry, Message, MAX_BATCH_BYTES};
use hyper::StatusCode;

/// A node of this process as replication hands it batches in memory (implemented by the
/// node; replication knows nothing else of it).
pub trait Replica: Send + Sync {
    /// True while it takes batches handed over in memory.
    fn accepts_replication(&self) -> bool;
    /// Take a batch handed over in memory: how many of its entries it holds now.
    /// `held_in` already holds every entry: a node that serves from that very store
    /// holds them without applying anything.
    fn take_in_memory(
        &self,
        entries: &mut dyn Iterator<Item = &Entry>,
        held_in: Option<&Store>,
    ) -> u32;
}

/// Hand a batch of `len` entries over in memory to each of `nodes` (id, the node if it
/// still exists) that takes replication: `took(id, whole)` for every node, `whole` when
/// it now holds every entry. `held_in`: a store that holds all of them already (see
/// [`Replica::take_in_memory`]). Sender tasks and relays share it.
pub fn hand_over<'n, 'e, R, I>(
    nodes: impl IntoIterator<Item = (&'n str, Option<Arc<R>>)>,
    len: usize,
    entries: impl Fn() -> I,
    held_in: Option<&Store>,
    mut took: impl FnMut(&'n str, bool),
) where
    R: Replica + ?Sized,
    I: Iterator<Item = &'e Entry>,
{
    for (id, node) in nodes {
        let held = node
            .filter(|n| n.accepts_replication())
            .map(|n| n.take_in_memory(&mut entries(), held_in));
        took(id, held.is_some_and(|n| n as usize == len));
    }
}

/// The nodes serving in this process, by id (the cluster's registry, as replication
/// sees it).
pub type LocalReplicas = Arc<dyn Fn(&str) -> Option<Weak<dyn Replica>> + Send + Sync>;

/// Writes queued per link (peer or other process) before new ones are refused for it.
pub const QUEUE_CAPACITY: usize = 8_192;
/// Most entries in one batch.
pub const MAX_BATCH_ENTRIES: usize = 512;
/// Deadline for one batch round trip.
pub(crate) const BATCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline for one batch to another process, across all the relays tried.
const RELAY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a process whose node refused a relay request as unknown (an older version)
/// gets plain batches, one per node, before relaying is tried again.
const PLAIN_PERIOD: Duration = Duration::from_secs(60);

/// The acknowledgements of one write, collected from the sender tasks without a channel:
/// a few atomics and a [`Notify`] shared by the writer and the [`AckToken`]s of the
/// peers the write was queued for.
pub struct Acks(Arc<AckState>);

struct AckState {
    /// Acknowledgements so far.
    got: AtomicUsize,
    /// Set (before `got` counts it) once an acknowledgement came from another domain.
    other_domain: AtomicBool,
    /// Peers whose tokens are not yet used or dropped: they may still acknowledge.
    pending: AtomicUsize,
    /// Wakes the writer on every acknowledgement and when the last token is gone.
    notify: Notify,
}

/// The share of a write's [`Acks`] of one or more peers (one link's): [`AckToken::ack`]
/// or [`AckToken::ack_some`] once it is known which of them hold the write; dropping it
/// unused means no acknowledgement from them.
pub struct AckToken {
    state: Arc<AckState>,
    /// Peers this token stands for.
    peers: usize,
}

impl AckToken {
    /// Every peer of the token holds the write; `other_domain` when they are in another
    /// failure domain (process) than the writer.
    pub fn ack(self, other_domain: bool) {
        let peers = self.peers;
        self.ack_some(peers, other_domain);
    }

    /// `held` of the token's peers hold the write (never counted as more than the token
    /// stands for).
    pub fn ack_some(self, held: usize, other_domain: bool) {
        let held = held.min(self.peers);
        if held == 0 {
            return;
        }
        if other_domain {
            self.state.other_domain.store(true, Ordering::Release);
        }
        self.state.got.fetch_add(held, Ordering::AcqRel);
        self.state.notify.notify_one();
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if self.state.pending.fetch_sub(self.peers, Ordering::AcqRel) == self.peers {
            self.state.notify.notify_one();
        }
    }
}

impl Default for Acks {
    fn default() -> Self {
        Self::new()
    }
}

impl Acks {
    /// No tokens handed out yet.
    pub fn new() -> Self {
        Acks(Arc::new(AckState {
            got: AtomicUsize::new(0),
            other_domain: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            notify: Notify::new(),
        }))
    }

    /// A token for one more peer.
    pub fn token(&self) -> AckToken {
        self.tokens(1)
    }

    /// One token for `peers` more peers (the nodes of one other process).
    pub fn tokens(&self, peers: usize) -> AckToken {
        self.0.pending.fetch_add(peers, Ordering::AcqRel);
        AckToken {
            state: self.0.clone(),
            peers,
        }
    }

    /// Wait until `needed` acknowledgements arrived (at least one of them from another
    /// failure domain when `need_other_domain`), every token is used or dropped, or
    /// `deadline`. Returns the number received, or fewer than `needed` when the domain
    /// rule is unmet (so the caller sees the quorum as not reached).
    pub async fn wait(&self, needed: usize, need_other_domain: bool, deadline: Instant) -> usize {
        let state = &*self.0;
        loop {
            let done = state.pending.load(Ordering::Acquire) == 0;
            let got = state.got.load(Ordering::Acquire);
            let domain_ok = !need_other_domain || state.other_domain.load(Ordering::Acquire);
            let result = if domain_ok {
                got
            } else {
                got.min(needed.saturating_sub(1))
            };
            if done || (got >= needed && domain_ok) {
                return result;
            }
            // A notification sent after the loads above is kept as a permit: none is lost.
            let woken = tokio::time::timeout_at(deadline, state.notify.notified()).await;
            if woken.is_err() {
                return result;
            }
        }
    }
}

struct Job {
    entry: Arc<Entry>,
    /// Stands for the peers the write was queued for: the peer of a peer link, every
    /// node of `view` on a sibling or process link.
    ack: Option<AckToken>,
    /// Sibling and process links: their nodes as the writer knew them at the write.
    view: Option<Arc<View>>,
}

/// A peer of this node's own process (failure domain).
struct Link {
    addr: String,
    tx: mpsc::Sender<Job>,
}

/// The known nodes of another process, in the order they are tried as relays.
#[derive(Debug, Default)]
struct View {
    peers: Vec<Peer>,
}

#[derive(Debug)]
struct Peer {
    id: String,
    addr: String,
}

impl View {
    /// How many of these peers are among `holders`.
    fn held_by(&self, holders: &HashSet<String>) -> usize {
        self.peers
            .iter()
            .filter(|p| holders.contains(&p.id))
            .count()
    }
}

/// The relay order of `writer` over the nodes `members` (id → address): by a hash of
/// both ids, so it is stable for one writer and differs between writers.
fn relay_order(writer: &str, members: &BTreeMap<String, String>) -> View {
    let rank = |peer: &str| {
        let mut h = DefaultHasher::new();
        (writer, peer).hash(&mut h);
        h.finish()
    };
    let mut peers: Vec<Peer> = members
        .iter()
        .map(|(id, addr)| Peer {
            id: id.clone(),
            addr: addr.clone(),
        })
        .collect();
    peers.sort_by_cached_key(|p| (rank(&p.id), p.id.clone()));
    View { peers }
}

/// Another process (failure domain): one queue and sender task for all its nodes.
struct ProcessLink {
    tx: mpsc::Sender<Job>,
    /// Its nodes known live: id → address.
    members: BTreeMap<String, String>,
    /// `members` in relay order, as handed to new jobs.
    view: Arc<View>,
    /// The same, as the sender task reads it for every batch.
    shared: Arc<Mutex<Arc<View>>>,
}

impl ProcessLink {
    fn publish(&mut self, writer: &str) {
        self.view = Arc::new(relay_order(writer, &self.members));
        *lock(&self.shared) = self.view.clone();
    }
}

/// The peers serving in this node's own process: each batch is handed to every one of
/// them in memory (one queue push per write, not one per peer). Every thread that writes
/// has its own queue, whose sender task runs on that thread's runtime: at idle a write,
/// its delivery and the writer's wake-up by the acknowledgement stay on one thread (no
/// wake-up of another one), and under load each queue still batches.
struct SiblingLink {
    /// Writing thread → its queue (a handful: the connection threads and the main
    /// runtime's workers).
    queues: Vec<(ThreadId, mpsc::Sender<Job>)>,
    /// id → (address, node).
    members: BTreeMap<String, (String, Weak<dyn Replica>)>,
    /// `members`, as handed to new jobs.
    view: Arc<View>,
    /// The same with the nodes, as the sender task reads it for every batch.
    shared: Arc<Mutex<Arc<Siblings>>>,
    /// The writer's store, which holds every write before it is queued.
    store: Store,
}

/// The nodes a [`SiblingLink`] delivers to.
#[derive(Default)]
struct Siblings {
    nodes: Vec<(String, Weak<dyn Replica>)>,
}

/// More writing threads than this share the first queue.
const MAX_SIBLING_QUEUES: usize = 64;

impl SiblingLink {
    /// The index of the current thread's queue, made (with its sender task on this
    /// thread's runtime, else on `home`) at the thread's first write. Queues whose task
    /// is gone (its runtime ended) are dropped then.
    fn queue_here(&mut self, home: &Home, metrics: &Arc<Metrics>) -> usize {
        let me = std::thread::current().id();
        let live = |tx: &mpsc::Sender<Job>| !tx.is_closed();
        if let Some(i) = self.queues.iter().position(|(t, tx)| *t == me && live(tx)) {
            return i;
        }
        self.queues.retain(|(_, tx)| live(tx));
        if self.queues.len() >= MAX_SIBLING_QUEUES {
            return 0;
        }
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let target = Target::Siblings {
            nodes: self.shared.clone(),
            metrics: metrics.clone(),
            held_in: self.store.clone(),
        };
        let task = sender_task(target, "this process".into(), rx, false, metrics.clone());
        match Handle::try_current() {
            Ok(here) => drop(here.spawn(task)),
            Err(_) => drop(home.spawn(task)),
        }
        self.queues.push((me, tx));
        self.queues.len() - 1
    }

    fn publish(&mut self) {
        let peers = self.members.iter().map(|(id, (addr, _))| Peer {
            id: id.clone(),
            addr: addr.clone(),
        });
        self.view = Arc::new(View {
            peers: peers.collect(),
        });
        let nodes = self
            .members
            .iter()
            .map(|(id, (_, n))| (id.clone(), n.clone()));
        *lock(&self.shared) = Arc::new(Siblings {
            nodes: nodes.collect(),
        });
    }
}

#[derive(Default)]
struct Links {
    /// Peers of this node's process serving in it (in memory).
    siblings: Option<SiblingLink>,
    /// Other peers of this node's process (over HTTP), by id.
    peers: HashMap<String, Link>,
    /// Other processes, by failure domain.
    processes: HashMap<String, ProcessLink>,
}

/// Which of a batch's peers hold it.
enum Held {
    /// Every peer the batch was sent for.
    All,
    /// The nodes with these ids.
    Nodes(HashSet<String>),
}

impl Held {
    fn nobody(&self) -> bool {
        matches!(self, Held::Nodes(ids) if ids.is_empty())
    }
}

/// Where a sender task delivers its batches.
enum Target {
    /// POST to the peer's `/internal/v1/replicate` at this address.
    Http {
        client: PeerClient,
        addr: String,
        /// The peer's node id, which signed batches name.
        id: String,
    },
    /// The nodes of this process: apply in memory on each that serves.
    Siblings {
        nodes: Arc<Mutex<Arc<Siblings>>>,
        metrics: Arc<Metrics>,
        /// The writer's store (see [`SiblingLink::store`]).
        held_in: Store,
    },
    /// Another process: POST a relay request to one of its nodes.
    Process(Relays),
}

/// The nodes of another process as relays of its batches.
struct Relays {
    client: PeerClient,
    view: Arc<Mutex<Arc<View>>>,
    /// The relay that took the last batch: tried first while it is known.
    last: Option<String>,
    /// Until when every node gets its own plain batch (see [`PLAIN_PERIOD`]).
    plain_until: Option<Instant>,
    metrics: Arc<Metrics>,
}

impl Relays {
    /// Send `batch` to the first relay that answers naming a known node as a holder,
    /// trying the others in order within [`RELAY_TIMEOUT`].
    async fn deliver(&mut self, batch: &[Job]) -> Result<Held, String> {
        let view = lock(&self.view).clone();
        if self.plain_until.is_some_and(|t| Instant::now() < t) {
            return self.deliver_plain(&view, batch).await;
        }
        let n = view.peers.len();
        let first = self
            .last
            .as_ref()
            .and_then(|id| view.peers.iter().position(|p| &p.id == id))
            .unwrap_or(0);
        let body = wire::encode_relay(batch.iter().map(|j| j.entry.as_ref()));
        let deadline = Instant::now() + RELAY_TIMEOUT;
        let mut errors = Vec::new();
        for (tried, peer) in view.peers.iter().cycle().skip(first).take(n).enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if tried > 0 {
                self.metrics.relay_failovers.inc();
            }
            let reply = self
                .client
                .call_encoded(
                    &peer.addr,
                    Some(&peer.id),
                    REPLICATE_PATH,
                    body.clone(),
                    left.min(BATCH_TIMEOUT),
                )
                .await;
            match reply {
                Ok(Message::Holders(ids)) => {
                    let holders: HashSet<String> = ids.into_iter().collect();
                    if view.held_by(&holders) > 0 {
                        self.last = Some(peer.id.clone());
                        return Ok(Held::Nodes(holders));
                    }
                    errors.push(format!("{}: no known node holds the batch", peer.id));
                }
                Ok(m) => errors.push(format!("{}: unexpected reply {}", peer.id, m.kind())),
                // Only a node that does not know relay requests refuses a valid one as
                // bad: it runs an older version (as during a rolling upgrade).
                Err(CallError::Status(StatusCode::BAD_REQUEST)) => {
                    tracing::info!(peer = %peer.id, "relay request refused as unknown: sending that process plain batches for a while");
                    self.plain_until = Some(Instant::now() + PLAIN_PERIOD);
                    return self.deliver_plain(&view, batch).await;
                }
                Err(e) => errors.push(format!("{}: {e}", peer.id)),
            }
        }
        Err(format!("no relay took the batch ({})", errors.join("; ")))
    }

    /// Send `batch` to every node of `view` as a plain (not relayed) batch, at once.
    async fn deliver_plain(&self, view: &View, batch: &[Job]) -> Result<Held, String> {
        let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
        let calls = view.peers.iter().map(|peer| {
            let body = body.clone();
            async move {
                let reply = self
                    .client
                    .call_encoded(
                        &peer.addr,
                        Some(&peer.id),
                        REPLICATE_PATH,
                        body,
                        BATCH_TIMEOUT,
                    )
                    .await;
                match reply {
                    Ok(Message::Ack(n)) if n as usize == batch.len() => Some(peer.id.clone()),
                    _ => None,
                }
            }
        });
        let holders: HashSet<String> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        if holders.is_empty() {
            Err("no node took the plain batch".into())
        } else {
            Ok(Held::Nodes(holders))
        }
    }
}

impl Target {
    /// Deliver `batch`: which of its peers hold every entry of it now.
    async fn deliver(&mut self, batch: &[Job]) -> Result<Held, String> {
        let held = match self {
            Target::Http { client, addr, id } => {
                let body = wire::encode_replicate(batch.iter().map(|j| j.entry.as_ref()));
                match client
                    .call_encoded(addr, Some(id), REPLICATE_PATH, body, BATCH_TIMEOUT)
                    .await
                {
                    Ok(Message::Ack(n)) => n,
                    Ok(m) => return Err(format!("unexpected reply {m:?}")),
                    Err(e) => return Err(e.to_string()),
                }
            }
            Target::Siblings {
                nodes,
                metrics,
                held_in,
            } => {
                let nodes = lock(nodes).clone();
                let mut holders = HashSet::with_capacity(nodes.nodes.len());
                let each = nodes.nodes.iter().map(|(id, n)| (id.as_str(), n.upgrade()));
                let entries = || batch.iter().map(|j| j.entry.as_ref());
                hand_over(each, batch.len(), entries, Some(held_in), |id, whole| {
                    if whole {
                        holders.insert(id.to_string());
                    } else {
                        metrics.replication_failures.inc();
                        tracing::debug!(peer = %id, entries = batch.len(), "peer in this process did not take the batch (not serving)");
                    }
                });
                // Those that did not take it were counted above, one by one.
                return Ok(Held::Nodes(holders));
            }
            Target::Process(relays) => return relays.deliver(batch).await,
        };
        if held as usize == batch.len() {
            Ok(Held::All)
        } else {
            Err(format!("peer holds {held} of {} entries", batch.len()))
        }
    }
}

/// The replication side of one node: its links to peers and other processes.
pub struct Replicator {
    /// This node's id.
    id: String,
    /// This node's failure domain (see [`crate::ids::failure_domain`]).
    domain: String,
    links: Mutex<Links>,
    client: PeerClient,
    metrics: Arc<Metrics>,
    /// Where the sender tasks run: the runtime the replicator was made on.
    home: Home,
    /// The nodes serving in this process.
    local: LocalReplicas,
    /// The store this node writes to.
    store: Store,
}

impl Replicator {
    /// No peers yet, for the node `id`, which writes to `store`.
    pub fn new(
        id: &str,
        client: PeerClient,
        metrics: Arc<Metrics>,
        local: LocalReplicas,
        store: Store,
    ) -> Self {
        Replicator {
            id: id.to_string(),
            domain: failure_domain(id).to_string(),
            links: Mutex::new(Links::default()),
            client,
            metrics,
            home: Home::here(),
            local,
            store,
        }
    }

    /// Start replicating to a peer at `addr`. A peer of this node's own process gets a
    /// link of its own (replacing any of the same id): in memory when it serves in this
    /// process, else over HTTP. A node of another process joins (or moves to `addr` in)
    /// the link of that process, made with its first node. (Only tests run several
    /// clusters in one process; each is its own failure domain, so between them batches
    /// go over HTTP, as between processes.)
    pub fn add_peer(&self, id: &str, addr: String) {
        let domain = failure_domain(id);
        if domain != self.domain {
            let mut links = lock(&self.links);
            let link = links
                .processes
                .entry(domain.to_string())
                .or_insert_with(|| self.process_link(domain));
            link.members.insert(id.to_string(), addr);
            link.publish(&self.id);
            return;
        }
        let mut links = lock(&self.links);
        links.peers.remove(id);
        if let Some(node) = (self.local)(id) {
            let group = links.siblings.get_or_insert_with(|| self.sibling_link());
            group.members.insert(id.to_string(), (addr, node));
            group.publish();
            return;
        }
        remove_sibling(&mut links, id);
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let target = Target::Http {
            client: self.client.clone(),
            addr: addr.clone(),
            id: id.to_string(),
        };
        let task = sender_task(target, addr.clone(), rx, false, self.metrics.clone());
        self.home.spawn(task);
        links.peers.insert(id.to_string(), Link { addr, tx });
    }

    /// The link to the peers serving in this process, with none yet (its queues are made
    /// by the writes).
    fn sibling_link(&self) -> SiblingLink {
        SiblingLink {
            queues: Vec::new(),
            members: BTreeMap::new(),
            view: Arc::new(View::default()),
            shared: Arc::new(Mutex::new(Arc::new(Siblings::default()))),
            store: self.store.clone(),
        }
    }

    /// A link to the process `domain`, with no nodes yet, and its sender task.
    fn process_link(&self, domain: &str) -> ProcessLink {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let view = Arc::new(View::default());
        let shared = Arc::new(Mutex::new(view.clone()));
        let target = Target::Process(Relays {
            client: self.client.clone(),
            view: shared.clone(),
            last: None,
            plain_until: None,
            metrics: self.metrics.clone(),
        });
        self.home.spawn(sender_task(
            target,
            format!("process {domain}"),
            rx,
            true,
            self.metrics.clone(),
        ));
        ProcessLink {
            tx,
            members: BTreeMap::new(),
            view,
            shared,
        }
    }

    /// The numbers of sibling queues, HTTP peer links and process links (for tests).
    #[doc(hidden)]
    pub fn link_counts(&self) -> (usize, usize, usize) {
        let l = lock(&self.links);
        let queues = l.siblings.as_ref().map_or(0, |s| s.queues.len());
        (queues, l.peers.len(), l.processes.len())
    }

    /// The ids of `members` in the order the node `writer` tries them as relays (for
    /// tests).
    #[doc(hidden)]
    pub fn relay_order(writer: &str, members: &[String]) -> Vec<String> {
        let members = members
            .iter()
            .map(|id| (id.clone(), String::new()))
            .collect();
        relay_order(writer, &members)
            .peers
            .into_iter()
            .map(|p| p.id)
            .collect()
    }

    /// Stop replicating to a peer. Writes queued for it are still attempted (for a node
    /// of another process: through the others, or through it when it was the last, whose
    /// departure removes the process link).
    pub fn remove_peer(&self, id: &str) {
        let mut links = lock(&self.links);
        if links.peers.remove(id).is_some() || remove_sibling(&mut links, id) {
            return;
        }
        let domain = failure_domain(id);
        let Some(link) = links.processes.get_mut(domain) else {
            return;
        };
        if link.members.remove(id).is_none() {
            return;
        }
        if link.members.is_empty() {
            links.processes.remove(domain);
        } else {
            link.publish(&self.id);
        }
    }

    /// Stop replicating to everyone.
    pub fn clear(&self) {
        let mut links = lock(&self.links);
        links.siblings = None;
        links.peers.clear();
        links.processes.clear();
    }

    /// Writes waiting in all queues (a write queued for another process counts once).
    pub fn queued(&self) -> usize {
        let links = lock(&self.links);
        let waiting = |tx: &mpsc::Sender<Job>| QUEUE_CAPACITY.saturating_sub(tx.capacity());
        let siblings = links.siblings.as_ref().map_or(0, |l| {
            l.queues.iter().map(|(_, tx)| waiting(tx)).sum::<usize>()
        });
        siblings
            + links.peers.values().map(|l| waiting(&l.tx)).sum::<usize>()
            + links
                .processes
                .values()
                .map(|l| waiting(&l.tx))
                .sum::<usize>()
    }

    /// True when writes have somewhere to go.
    pub fn has_peers(&self) -> bool {
        let links = lock(&self.links);
        links.siblings.is_some() || !links.peers.is_empty() || !links.processes.is_empty()
    }

    /// Queue `entry` for every peer, with a token of `acks` when given (a peer that
    /// stores the write acknowledges with it).
    pub fn broadcast(&self, entry: Arc<Entry>, acks: Option<&Acks>) -> Fanout {
        let mut links = lock(&self.links);
        let mut fanout = Fanout::default();
        if let Some(link) = &mut links.siblings {
            let i = link.queue_here(&self.home, &self.metrics);
            self.enqueue(
                &link.queues[i].1,
                &entry,
                acks,
                Some(&link.view),
                &mut fanout,
                || "this process's peers".to_string(),
            );
        }
        for (id, link) in &links.peers {
            self.enqueue(&link.tx, &entry, acks, None, &mut fanout, || {
                format!("peer {id} at {}", link.addr)
            });
        }
        for (domain, link) in &links.processes {
            fanout.other_domain = true;
            let peers = Some(&link.view);
            self.enqueue(&link.tx, &entry, acks, peers, &mut fanout, || {
                format!("process {domain}")
            });
        }
        fanout
    }

    /// Queue `entry` on one link, which stands for the peers of `view` (for one peer when
    /// there is none), counting them in `fanout`; `link` names it in the log when its
    /// queue is full.
    fn enqueue(
        &self,
        tx: &mpsc::Sender<Job>,
        entry: &Arc<Entry>,
        acks: Option<&Acks>,
        view: Option<&Arc<View>>,
        fanout: &mut Fanout,
        link: impl FnOnce() -> String,
    ) {
        let peers = view.map_or(1, |v| v.peers.len());
        fanout.peers += peers;
        let job = Job {
            entry: entry.clone(),
            ack: acks.map(|a| a.tokens(peers)),
            view: view.cloned(),
        };
        match tx.try_send(job) {
            Ok(()) => fanout.queued += peers,
            Err(_) => {
                self.metrics.replication_dropped.inc_by(peers as u64);
                tracing::debug!(link = %link(), peers, "replication queue full, write left to catch-up");
            }
        }
    }
}

/// What [`Replicator::broadcast`] did with a write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Peers replicated to (live nodes, of this process and others).
    pub peers: usize,
    /// Peers whose queue took the write (all nodes of a process share one).
    pub queued: usize,
    /// True when some peer lives in another failure domain (process).
    pub other_domain: bool,
}

/// Take `id` out of the sibling link (dropping the link with its last peer); true when it
/// was there.
fn remove_sibling(links: &mut Links, id: &str) -> bool {
    let Some(group) = &mut links.siblings else {
        return false;
    };
    if group.members.remove(id).is_none() {
        return false;
    }
    if group.members.is_empty() {
        links.siblings = None;
    } else {
        group.publish();
    }
    true
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn sender_task(
    mut target: Target,
    addr: String,
    mut rx: mpsc::Receiver<Job>,
    other_domain: bool,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.entry.value.len();
        batch.push(first);
        while batch.len() < MAX_BATCH_ENTRIES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.entry.value.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        match target.deliver(&batch).await {
            // Nobody took it; the target counted the failures.
            Ok(held) if held.nobody() => batch.clear(),
            Ok(held) => {
                metrics.replication_batches.inc();
                metrics.replication_entries.inc_by(batch.len() as u64);
                metrics
                    .replication_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                // Jobs of one batch mostly share their view: count its holders once.
                let mut counted: Option<(*const View, usize)> = None;
                for job in batch.drain(..) {
                    let Some(ack) = job.ack else { continue };
                    let held = match (&held, &job.view) {
                        (Held::All, _) => ack.peers,
                        (Held::Nodes(ids), Some(view)) => match counted {
                            Some((p, n)) if std::ptr::eq(p, Arc::as_ptr(view)) => n,
                            _ => {
                                let n = view.held_by(ids);
                                counted = Some((Arc::as_ptr(view), n));
                                n
                            }
                        },
                        (Held::Nodes(_), None) => 0,
                    };
                    ack.ack_some(held, other_domain);
                }
            }
            Err(why) => {
                metrics.replication_failures.inc();
                tracing::debug!(peer = %addr, entries = batch.len(), error = %why, "replication batch failed");
                batch.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests;
