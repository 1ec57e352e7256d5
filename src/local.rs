//! The nodes of one cluster that serve in this process, by id, so replication can hand
//! batches to a peer in the same process in memory instead of over loopback HTTP.
//!
//! The cluster owns one [`Registry`] and gives a handle to each of its nodes. A node
//! registers when it starts serving and is removed when its task ends (shutdown, failure
//! or panic: the [`Registration`] guard lives in the node's task). The registry holds
//! only weak references and never keeps a node alive.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// What the registry needs of a node.
pub trait Member: Send + Sync {
    /// Its unique id.
    fn member_id(&self) -> &str;
    /// Told `true` on registration and `false` when the registration ends.
    fn set_serving(&self, serving: bool);
}

/// The nodes serving in this process, by id: a cheap handle to one shared table.
pub struct Registry<T> {
    nodes: Arc<Mutex<HashMap<String, Weak<T>>>>,
}

impl<T> Clone for Registry<T> {
    fn clone(&self) -> Self {
        Registry {
            nodes: self.nodes.clone(),
        }
    }
}

impl<T> Default for Registry<T> {
    fn default() -> Self {
        Registry {
            nodes: Arc::default(),
        }
    }
}

impl<T: Member> Registry<T> {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    fn nodes(&self) -> MutexGuard<'_, HashMap<String, Weak<T>>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register `node` as serving in this process until the returned guard is dropped.
    pub fn register(&self, node: &Arc<T>) -> Registration<T> {
        self.nodes()
            .insert(node.member_id().to_string(), Arc::downgrade(node));
        node.set_serving(true);
        Registration {
            node: node.clone(),
            registry: self.clone(),
        }
    }

    /// The node `id` if it serves in this process.
    pub fn lookup(&self, id: &str) -> Option<Weak<T>> {
        self.nodes().get(id).cloned()
    }

    /// A node serving in this process for which `pred` holds.
    pub fn find(&self, pred: impl Fn(&T) -> bool) -> Option<Arc<T>> {
        self.nodes()
            .values()
            .filter_map(Weak::upgrade)
            .find(|node| pred(node))
    }

    /// The nodes serving in this process whose failure domain is `domain`.
    pub fn serving_in(&self, domain: &str) -> Vec<Arc<T>> {
        self.nodes()
            .iter()
            .filter(|(id, _)| crate::ids::failure_domain(id) == domain)
            .filter_map(|(_, node)| node.upgrade())
            .collect()
    }
}

/// Keeps a node in the registry (and marked as serving) until dropped.
#[must_use = "the node leaves the registry when the registration is dropped"]
pub struct Registration<T: Member> {
    node: Arc<T>,
    registry: Registry<T>,
}

impl<T: Member> Drop for Registration<T> {
    fn drop(&mut self) {
        self.node.set_serving(false);
        self.registry.nodes().remove(self.node.member_id());
    }
}
