//! A node's lifecycle: background tasks while it serves, leaving, stopping, and the
//! fault-injection test hook.

use std::sync::Arc;

use tracing::info;

use super::Node;

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Node {
    /// Run this node's background tasks while `serving` (its server, which ends after
    /// shutdown: it calls [`Node::leave`] and drains) runs, registered in this process.
    pub async fn run(self: Arc<Self>, serving: impl std::future::Future<Output = ()>) {
        // Background tasks die with this future, also when it panics (unwinding drops
        // the guards), so a restarted node never runs beside its predecessor's tasks.
        // The purge task belongs to the store the process's nodes share, not to this node:
        // the first node to ask starts it, and it outlives a node that panics.
        let _ = self
            .store
            .spawn_purger(self.config.cleanup_interval, self.shutdown.clone());
        let _tasks = [
            AbortOnDrop(tokio::spawn(self.clone().drive_membership())),
            AbortOnDrop(tokio::spawn(self.clone().anti_entropy_loop())),
            AbortOnDrop(tokio::spawn(self.clone().catch_up_loop())),
        ];
        // Peers of this process hand replication batches over in memory while this
        // registration lives: it ends with this future, like the tasks above.
        let _local = self.local.register(&self);
        tokio::select! {
            _ = serving => {},
            _ = self.fault.notified() => panic!("fault injected into node {}", self.id),
        }
    }

    /// Test hook: make this node's task panic, as a bug would, so the supervisor's
    /// restart path can be exercised. Reachable only through the library API.
    #[doc(hidden)]
    pub fn inject_fault(&self) {
        self.fault.notify_one();
    }

    /// Announce leaving: called when shutdown begins, once the server stops accepting.
    pub async fn leave(&self) {
        self.announce_leave().await;
        info!(node = %self.id, port = self.port, "left the mesh");
    }

    /// Wait for the shutdown signal.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|s| *s).await;
    }
}
