//! One write as it waits in a link's queue.

use std::sync::Arc;

use super::acks::AckToken;
use super::view::View;
use crate::wire::Entry;

/// A write queued on one link.
pub(super) struct Job {
    pub(super) entry: Arc<Entry>,
    /// Stands for the peers the write was queued for: the peer of a peer link, every
    /// node of `view` on a sibling or process link.
    pub(super) ack: Option<AckToken>,
    /// Sibling and process links: their nodes as the writer knew them at the write.
    pub(super) view: Option<Arc<View>>,
}
