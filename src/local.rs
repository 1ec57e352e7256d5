//! The nodes that serve in this process, by id, so replication can hand batches to a
//! peer in the same process in memory instead of over loopback HTTP.
//!
//! A node registers when it starts serving and is removed when its task ends (shutdown,
//! failure or panic: the [`Registration`] guard lives in the node's task). The registry
//! holds only weak references and never keeps a node alive.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use crate::node::Node;

static NODES: LazyLock<Mutex<HashMap<String, Weak<Node>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn nodes() -> MutexGuard<'static, HashMap<String, Weak<Node>>> {
    NODES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps a node in the registry (and marked as serving) until dropped.
#[must_use = "the node leaves the registry when the registration is dropped"]
pub struct Registration {
    node: Arc<Node>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.node.set_serving(false);
        nodes().remove(&self.node.id);
    }
}

/// Register `node` as serving in this process until the returned guard is dropped.
pub fn register(node: &Arc<Node>) -> Registration {
    nodes().insert(node.id.clone(), Arc::downgrade(node));
    node.set_serving(true);
    Registration { node: node.clone() }
}

/// The node `id` if it serves in this process.
pub fn lookup(id: &str) -> Option<Weak<Node>> {
    nodes().get(id).cloned()
}

/// The nodes serving in this process whose failure domain is `domain`: the nodes of one
/// cluster (tests run several clusters in one process, each with its own process tag).
pub fn serving_in(domain: &str) -> Vec<Arc<Node>> {
    nodes()
        .iter()
        .filter(|(id, _)| crate::ids::failure_domain(id) == domain)
        .filter_map(|(_, node)| node.upgrade())
        .collect()
}
