//! The peers serving in this node's own process as one link, delivered to in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::thread::ThreadId;

use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::job::Job;
use super::sender::sender_task;
use super::target::Target;
use super::view::{Peer, View};
use super::{lock, Replica, QUEUE_CAPACITY};
use crate::metrics::Metrics;
use crate::runtime::Home;
use crate::store::Store;

/// The peers serving in this node's own process: each batch is handed to every one of
/// them in memory (one queue push per write, not one per peer). Every thread that writes
/// has its own queue, whose sender task runs on that thread's runtime: at idle a write,
/// its delivery and the writer's wake-up by the acknowledgement stay on one thread (no
/// wake-up of another one), and under load each queue still batches.
pub(super) struct SiblingLink {
    /// Writing thread → its queue (a handful: the connection threads and the main
    /// runtime's workers).
    pub(super) queues: Vec<(ThreadId, mpsc::Sender<Job>)>,
    /// id → (address, node).
    pub(super) members: BTreeMap<String, (String, Weak<dyn Replica>)>,
    /// `members`, as handed to new jobs.
    pub(super) view: Arc<View>,
    /// The same with the nodes, as the sender task reads it for every batch.
    pub(super) shared: Arc<Mutex<Arc<Siblings>>>,
    /// The writer's store, which holds every write before it is queued.
    pub(super) store: Store,
}

/// The nodes a [`SiblingLink`] delivers to.
#[derive(Default)]
pub(super) struct Siblings {
    pub(super) nodes: Vec<(String, Weak<dyn Replica>)>,
}

/// More writing threads than this share the first queue.
const MAX_SIBLING_QUEUES: usize = 64;

impl SiblingLink {
    /// The index of the current thread's queue, made (with its sender task on this
    /// thread's runtime, else on `home`) at the thread's first write. Queues whose task
    /// is gone (its runtime ended) are dropped then.
    pub(super) fn queue_here(&mut self, home: &Home, metrics: &Arc<Metrics>) -> usize {
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

    pub(super) fn publish(&mut self) {
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
