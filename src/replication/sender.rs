//! The task behind one queue: it drains the queue into batches, delivers them and
//! acknowledges the writes their peers hold.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::job::Job;
use super::target::{Held, Target};
use super::view::View;
use super::MAX_BATCH_ENTRIES;
use crate::metrics::Metrics;
use crate::wire::MAX_BATCH_BYTES;

/// Batch the writes of `rx` and deliver them to `target` until the queue is closed;
/// `addr` names the link in the log.
pub(super) async fn sender_task(
    mut target: Target,
    addr: String,
    mut rx: mpsc::Receiver<Job>,
    other_domain: bool,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Job> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut bytes = first.entry.value.len();
        batch.push(first);
        while batch.len() < MAX_BATCH_ENTRIES && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.entry.value.len();
                    batch.push(job);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        match target.deliver(&batch).await {
            // Nobody took it; the target counted the failures.
            Ok(held) if held.nobody() => batch.clear(),
            Ok(held) => {
                metrics.replication_batches.inc();
                metrics.replication_entries.inc_by(batch.len() as u64);
                metrics
                    .replication_batch_seconds
                    .observe(started.elapsed().as_secs_f64());
                // Jobs of one batch mostly share their view: count its holders once.
                let mut counted: Option<(*const View, usize)> = None;
                for job in batch.drain(..) {
                    let Some(ack) = job.ack else { continue };
                    let held = match (&held, &job.view) {
                        (Held::All, _) => ack.peers,
                        (Held::Nodes(ids), Some(view)) => match counted {
                            Some((p, n)) if std::ptr::eq(p, Arc::as_ptr(view)) => n,
                            _ => {
                                let n = view.held_by(ids);
                                counted = Some((Arc::as_ptr(view), n));
                                n
                            }
                        },
                        (Held::Nodes(_), None) => 0,
                    };
                    ack.ack_some(held, other_domain);
                }
            }
            Err(why) => {
                metrics.replication_failures.inc();
                tracing::debug!(peer = %addr, entries = batch.len(), error = %why, "replication batch failed");
                batch.clear();
            }
        }
    }
}
