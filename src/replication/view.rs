//! The nodes a sibling or process link stands for.

use std::collections::HashSet;

/// The known nodes of another process, in the order they are tried as relays.
#[derive(Debug, Default)]
pub(super) struct View {
    pub(super) peers: Vec<Peer>,
}

#[derive(Debug)]
pub(super) struct Peer {
    pub(super) id: String,
    pub(super) addr: String,
}

impl View {
    /// How many of these peers are among `holders`.
    pub(super) fn held_by(&self, holders: &HashSet<String>) -> usize {
        self.peers
            .iter()
            .filter(|p| holders.contains(&p.id))
            .count()
    }
}
