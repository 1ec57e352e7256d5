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
//!
//! The parts, one file each: [`Replicator`] (a node's links, and the fan-out of a write),
//! [`Acks`] (a write's acknowledgements), `links` (a node's links, and its HTTP peers),
//! `siblings` (the peers serving in this process), `relays` (another process), `job` (a
//! queued write), `view` (the nodes a link stands for), `target` (where a batch goes) and
//! `sender` (the task that batches and delivers a queue).

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::store::Store;
use crate::wire::Entry;

mod acks;
mod job;
mod links;
mod relays;
mod replicator;
mod sender;
mod siblings;
mod target;
mod view;

pub use acks::{AckToken, Acks};
pub use replicator::{Fanout, Replicator};

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests;
