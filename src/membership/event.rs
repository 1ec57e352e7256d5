//! Membership changes reported to the driver.

use crate::wire::NodeInfo;

/// A change in the membership seen by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A new member is alive (first seen, or back with a higher incarnation).
    Joined(NodeInfo),
    /// A member announced it is leaving.
    Left(NodeInfo),
    /// A member was declared dead.
    Dead(NodeInfo),
    /// A new node id answered at the address of another member, which was removed.
    Replaced {
        /// The member that was removed.
        old: NodeInfo,
        /// The node that took its place.
        new: NodeInfo,
    },
    /// A member missed its probes and is suspected (still counted as a member).
    Suspected(NodeInfo),
    /// A suspect proved to be alive.
    Recovered(NodeInfo),
}
