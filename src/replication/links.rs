//! A node's links: one per peer of its own process over HTTP, one for the peers serving
//! in its process, one per other process.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::job::Job;
use super::relays::ProcessLink;
use super::siblings::SiblingLink;

/// A peer of this node's own process (failure domain).
pub(super) struct Link {
    pub(super) addr: String,
    pub(super) tx: mpsc::Sender<Job>,
}

/// Every link of one node.
#[derive(Default)]
pub(super) struct Links {
    /// Peers of this node's process serving in it (in memory).
    pub(super) siblings: Option<SiblingLink>,
    /// Other peers of this node's process (over HTTP), by id.
    pub(super) peers: HashMap<String, Link>,
    /// Other processes, by failure domain.
    pub(super) processes: HashMap<String, ProcessLink>,
}

/// Take `id` out of the sibling link (dropping the link with its last peer); true when it
/// was there.
pub(super) fn remove_sibling(links: &mut Links, id: &str) -> bool {
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
