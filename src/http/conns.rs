//! Per-node connection accounting: at most `REPRAM_MAX_CONNECTIONS` open client
//! connections. At the cap, the connection idle the longest is asked to close to make
//! room, so idle or slow clients (which hold no request) cannot lock others out; only
//! when every connection is busy with a request is a newcomer refused.
//!
//! Pure bookkeeping with the clock passed in: the accept loop in [`super::serve`] does
//! the IO.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

/// The open connections of one node.
pub struct Connections {
    cap: usize,
    /// Origin of the millisecond clock in [`Activity::idle_since_ms`].
    epoch: Instant,
    state: Mutex<State>,
    /// Woken whenever the last connection closes.
    all_closed: Notify,
}

#[derive(Default)]
struct State {
    next_id: u64,
    open: HashMap<u64, Arc<Activity>>,
}

/// What a connection is doing, updated without the lock on every request.
struct Activity {
    /// Requests being handled on the connection.
    busy: AtomicU32,
    /// When the connection was accepted or last finished a request, in milliseconds
    /// since [`Connections::epoch`].
    idle_since_ms: AtomicU64,
    close: Notify,
}

/// How a connection was admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Admitted {
    /// There was room.
    Room,
    /// The longest-idle connection was asked to close to make room.
    Evicted,
}

/// Every connection is busy with a request: the newcomer cannot be served now.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

impl Connections {
    /// Room for `cap` connections (at least one).
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Connections {
            cap: cap.max(1),
            epoch: Instant::now(),
            state: Mutex::new(State::default()),
            all_closed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is one step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections currently counted.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// Count a new connection, evicting the longest-idle one when at the cap.
    pub fn admit(self: &Arc<Self>, now: Instant) -> Result<(Conn, Admitted), Full> {
        let mut state = self.lock();
        let mut how = Admitted::Room;
        if state.open.len() >= self.cap {
            let victim = state
                .open
                .iter()
                .filter(|(_, a)| a.busy.load(Ordering::Acquire) == 0)
                .min_by_key(|(id, a)| (a.idle_since_ms.load(Ordering::Acquire), **id))
                .map(|(id, _)| *id);
            let activity = victim.and_then(|id| state.open.remove(&id)).ok_or(Full)?;
            // Stored as a permit if the connection is not listening right now.
            activity.close.notify_one();
            how = Admitted::Evicted;
        }
        let id = state.next_id;
        state.next_id += 1;
        let activity = Arc::new(Activity {
            busy: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(self.ms(now)),
            close: Notify::new(),
        });
        state.open.insert(id, activity.clone());
        let conn = Conn {
            id,
            activity,
            owner: self.clone(),
        };
        Ok((conn, how))
    }

    /// Wait until no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn remove(&self, id: u64) {
        let mut state = self.lock();
        if state.open.remove(&id).is_some() && state.open.is_empty() {
            self.all_closed.notify_waiters();
        }
    }
}

/// One counted connection; dropping it frees its place.
pub struct Conn {
    id: u64,
    activity: Arc<Activity>,
    owner: Arc<Connections>,
}

impl Conn {
    /// Mark a request as being handled until the returned guard drops.
    pub fn request(self: &Arc<Self>) -> Busy {
        self.activity.busy.fetch_add(1, Ordering::AcqRel);
        Busy { conn: self.clone() }
    }

    /// Resolves when the connection was evicted to make room for another.
    pub async fn evicted(&self) {
        self.activity.close.notified().await;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.owner.remove(self.id);
    }
}

/// A request in progress on a connection (see [`Conn::request`]).
pub struct Busy {
    conn: Arc<Conn>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let conn = &self.conn;
        let now = conn.owner.ms(Instant::now());
        conn.activity.idle_since_ms.store(now, Ordering::Release);
        conn.activity.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_longest_idle_connection_makes_room() {
        let conns = Connections::new(3);
        let t = Instant::now();
        let (a, how) = conns.admit(at(t, 0)).unwrap();
        assert_eq!(how, Admitted::Room);
        let (b, _) = conns.admit(at(t, 1)).unwrap();
        let (c, _) = conns.admit(at(t, 2)).unwrap();
        let (a, b, c) = (Arc::new(a), Arc::new(b), Arc::new(c));
        // `a` is busy, so `b` (idle since 1 ms) is the one to go.
        let _busy = a.request();
        let (d, how) = conns.admit(at(t, 3)).unwrap();
        assert_eq!(how, Admitted::Evicted);
        assert_eq!(conns.open(), 3);
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b was told to close");
        // `c` was never told.
        assert!(tokio::time::timeout(Duration::from_millis(10), c.evicted())
            .await
            .is_err());
        drop(b); // its slot is already free: nothing changes
        assert_eq!(conns.open(), 3);
        drop(d);
        assert_eq!(conns.open(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_connection_is_busy_a_newcomer_is_refused() {
        let conns = Connections::new(2);
        let t = Instant::now();
        let a = Arc::new(conns.admit(t).unwrap().0);
        let b = Arc::new(conns.admit(t).unwrap().0);
        let busy_a = a.request();
        let _busy_b = b.request();
        assert_eq!(conns.admit(t).err(), Some(Full));
        assert_eq!(conns.open(), 2);
        // A finished request makes its connection evictable again.
        drop(busy_a);
        let (_c, how) = conns.admit(t).unwrap();
        assert_eq!(how, Admitted::Evicted);
    }

    #[tokio::test(start_paused = true)]
    async fn the_most_recently_active_connection_is_kept() {
        let conns = Connections::new(2);
        let t = Instant::now();
        let a = Arc::new(conns.admit(at(t, 0)).unwrap().0);
        let b = Arc::new(conns.admit(at(t, 5)).unwrap().0);
        // `a` serves a request that ends after `b` was accepted: `b` is now the oldest idle.
        tokio::time::advance(Duration::from_millis(10)).await;
        drop(a.request());
        let _c = conns.admit(Instant::now()).unwrap();
        tokio::time::timeout(Duration::from_secs(1), b.evicted())
            .await
            .expect("b, idle the longest, was told to close");
    }

    #[tokio::test(start_paused = true)]
    async fn all_closed_waits_for_the_last_connection() {
        let conns = Connections::new(4);
        conns.all_closed().await; // nothing open: returns at once
        let a = conns.admit(Instant::now()).unwrap().0;
        let waiter = tokio::spawn({
            let conns = conns.clone();
            async move { conns.all_closed().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        drop(a);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("woken when the last connection closed")
            .unwrap();
    }
}
