//! Counting the acknowledgements of one write as the sender tasks deliver it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The acknowledgements of one write, collected from the sender tasks without a channel:
/// a few atomics and a [`Notify`] shared by the writer and the [`AckToken`]s of the
/// peers the write was queued for.
pub struct Acks(Arc<AckState>);

struct AckState {
    /// Acknowledgements so far.
    got: AtomicUsize,
    /// Set (before `got` counts it) once an acknowledgement came from another domain.
    other_domain: AtomicBool,
    /// Peers whose tokens are not yet used or dropped: they may still acknowledge.
    pending: AtomicUsize,
    /// Wakes the writer on every acknowledgement and when the last token is gone.
    notify: Notify,
}

/// The share of a write's [`Acks`] of one or more peers (one link's): [`AckToken::ack`]
/// or [`AckToken::ack_some`] once it is known which of them hold the write; dropping it
/// unused means no acknowledgement from them.
pub struct AckToken {
    state: Arc<AckState>,
    /// Peers this token stands for.
    pub(super) peers: usize,
}

impl AckToken {
    /// Every peer of the token holds the write; `other_domain` when they are in another
    /// failure domain (process) than the writer.
    pub fn ack(self, other_domain: bool) {
        let peers = self.peers;
        self.ack_some(peers, other_domain);
    }

    /// `held` of the token's peers hold the write (never counted as more than the token
    /// stands for).
    pub fn ack_some(self, held: usize, other_domain: bool) {
        let held = held.min(self.peers);
        if held == 0 {
            return;
        }
        if other_domain {
            self.state.other_domain.store(true, Ordering::Release);
        }
        self.state.got.fetch_add(held, Ordering::AcqRel);
        self.state.notify.notify_one();
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if self.state.pending.fetch_sub(self.peers, Ordering::AcqRel) == self.peers {
            self.state.notify.notify_one();
        }
    }
}

impl Default for Acks {
    fn default() -> Self {
        Self::new()
    }
}

impl Acks {
    /// No tokens handed out yet.
    pub fn new() -> Self {
        Acks(Arc::new(AckState {
            got: AtomicUsize::new(0),
            other_domain: AtomicBool::new(false),
            pending: AtomicUsize::new(0),
            notify: Notify::new(),
        }))
    }

    /// A token for one more peer.
    pub fn token(&self) -> AckToken {
        self.tokens(1)
    }

    /// One token for `peers` more peers (the nodes of one other process).
    pub fn tokens(&self, peers: usize) -> AckToken {
        self.0.pending.fetch_add(peers, Ordering::AcqRel);
        AckToken {
            state: self.0.clone(),
            peers,
        }
    }

    /// Wait until `needed` acknowledgements arrived (at least one of them from another
    /// failure domain when `need_other_domain`), every token is used or dropped, or
    /// `deadline`. Returns the number received, or fewer than `needed` when the domain
    /// rule is unmet (so the caller sees the quorum as not reached).
    pub async fn wait(&self, needed: usize, need_other_domain: bool, deadline: Instant) -> usize {
        let state = &*self.0;
        loop {
            let done = state.pending.load(Ordering::Acquire) == 0;
            let got = state.got.load(Ordering::Acquire);
            let domain_ok = !need_other_domain || state.other_domain.load(Ordering::Acquire);
            let result = if domain_ok {
                got
            } else {
                got.min(needed.saturating_sub(1))
            };
            if done || (got >= needed && domain_ok) {
                return result;
            }
            // A notification sent after the loads above is kept as a permit: none is lost.
            let woken = tokio::time::timeout_at(deadline, state.notify.notified()).await;
            if woken.is_err() {
                return result;
            }
        }
    }
}
