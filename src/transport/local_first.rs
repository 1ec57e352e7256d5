//! Calls to the nodes of this process in memory, every other call through another
//! transport (HTTP). Members join only by answering probes, so every node probes every
//! other: over loopback HTTP the nodes of one process would hold a pooled connection to
//! each sibling and an accepted one from each, two descriptors per pair, which a
//! 100-node process runs out of.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::StatusCode;

use super::memory::{hand_to, Handler};
use super::{CallError, Transport};
use crate::wire::Message;

/// The node of this process that a call to an address, for a node id when known, would
/// reach, if it serves here.
pub type LocalNodes = Arc<dyn Fn(&str, Option<&str>) -> Option<Arc<dyn Handler>> + Send + Sync>;

/// Node messages to a node of this process in memory; the rest, and every GET of a
/// public document, through `rest`.
pub struct LocalFirst {
    local: LocalNodes,
    rest: Arc<dyn Transport>,
}

impl LocalFirst {
    /// Nodes found by `local` in memory, the others through `rest`.
    pub fn new(local: LocalNodes, rest: Arc<dyn Transport>) -> LocalFirst {
        LocalFirst { local, rest }
    }
}

impl Transport for LocalFirst {
    fn call_clocked<'a>(
        &'a self,
        addr: &'a str,
        to: Option<&'a str>,
        path: &'a str,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'a, (Result<Message, CallError>, Option<u64>)> {
        match (self.local)(addr, to) {
            Some(node) => Box::pin(async move {
                tokio::time::timeout(timeout, hand_to(node, path, body))
                    .await
                    .unwrap_or((Err(CallError::Timeout), None))
            }),
            None => self.rest.call_clocked(addr, to, path, body, timeout),
        }
    }

    fn get<'a>(
        &'a self,
        addr: &'a str,
        path: &'a str,
        max_bytes: usize,
        timeout: Duration,
    ) -> BoxFuture<'a, Result<(StatusCode, Bytes), CallError>> {
        self.rest.get(addr, path, max_bytes, timeout)
    }
}
