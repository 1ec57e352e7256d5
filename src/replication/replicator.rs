//! The replication side of one node: its links, kept in step with membership, and the
//! fan-out of every write to them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::acks::Acks;
use super::job::Job;
use super::links::{remove_sibling, Link, Links};
use super::relays::{relay_order, ProcessLink, Relays};
use super::sender::sender_task;
use super::siblings::{SiblingLink, Siblings};
use super::target::Target;
use super::view::View;
use super::{lock, LocalReplicas, QUEUE_CAPACITY};
use crate::ids::failure_domain;
use crate::metrics::Metrics;
use crate::runtime::Home;
use crate::store::Store;
use crate::transport::PeerClient;
use crate::wire::Entry;

/// The replication side of one node: its links to peers and other processes.
pub struct Replicator {
    /// This node's id.
    pub(super) id: String,
    /// This node's failure domain (see [`crate::ids::failure_domain`]).
    domain: String,
    links: Mutex<Links>,
    client: PeerClient,
    pub(super) metrics: Arc<Metrics>,
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
        let target = Target::Process(Relays::new(
            self.client.clone(),
            shared.clone(),
            self.metrics.clone(),
        ));
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
