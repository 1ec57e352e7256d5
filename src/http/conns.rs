//! Per-node connection accounting: at most `REPRAM_MAX_CONNECTIONS` open client
//! connections. At the cap, the connection idle the longest is asked to close to make
//! room, so idle or slow clients (which hold no request) cannot lock others out; only
//! when every connection is busy with a request is a newcomer refused.
//!
//! It also times out connections that hold no request and made no progress for the
//! header timeout (silent clients, and slow ones that never finish a request head):
//! [`Connections::time_out_idle`] runs on a coarse tick, so no request arms a timer.
//!
//! Bookkeeping with the clock passed in: the accept loop in [`super::serve`] does the
//! IO; [`Tracked`] counts a connection's writes on the way.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Successful writes to the client so far (a response still going out is progress).
    writes: AtomicU64,
    /// `writes` as [`Connections::time_out_idle`] last saw it, and when it saw it change.
    swept_writes: AtomicU64,
    wrote_ms: AtomicU64,
    /// Why the connection must close ([`Close`] as a number; 0 while it may stay open).
    close: AtomicU8,
    /// The connection's task, woken when `close` is set.
    waker: AtomicWaker,
}

impl Activity {
    fn new(now_ms: u64) -> Activity {
        Activity {
            busy: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(now_ms),
            writes: AtomicU64::new(0),
            swept_writes: AtomicU64::new(0),
            wrote_ms: AtomicU64::new(0),
            close: AtomicU8::new(0),
            waker: AtomicWaker::new(),
        }
    }

    /// Ask the connection to close; the first reason given wins.
    fn close(&self, why: Close) {
        let _ = self
            .close
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }

    fn closing(&self) -> Option<Close> {
        Close::from_u8(self.close.load(Ordering::Acquire))
    }
}

/// Why a connection is asked to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Close {
    /// To make room for a newcomer at the connection cap.
    Evicted = 1,
    /// It held no request and made no progress for the header timeout.
    TimedOut = 2,
    /// The node is shutting down: finish what is under way within the drain timeout.
    Draining = 3,
    /// The node's server is gone (its task failed): stop answering for it.
    ServerGone = 4,
}

impl Close {
    fn from_u8(n: u8) -> Option<Close> {
        Some(match n {
            1 => Close::Evicted,
            2 => Close::TimedOut,
            3 => Close::Draining,
            4 => Close::ServerGone,
            _ => return None,
        })
    }
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
            // Kept until the connection looks, if it is not listening right now.
            activity.close(Close::Evicted);
            how = Admitted::Evicted;
        }
        let id = state.next_id;
        state.next_id += 1;
        let activity = Arc::new(Activity::new(self.ms(now)));
        state.open.insert(id, activity.clone());
        let conn = Conn {
            id,
            activity,
            owner: self.clone(),
        };
        Ok((conn, how))
    }

    /// Close the connections that hold no request and made no progress (finished a
    /// request or wrote to the client) for `timeout` as of `now`; returns how many.
    /// Progress is seen at the granularity of the calls, so call this at least a few
    /// times per `timeout`.
    pub fn time_out_idle(&self, now: Instant, timeout: Duration) -> usize {
        let now_ms = self.ms(now);
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let state = self.lock();
        let mut closed = 0;
        for activity in state.open.values() {
            let writes = activity.writes.load(Ordering::Acquire);
            if activity.swept_writes.swap(writes, Ordering::AcqRel) != writes {
                activity.wrote_ms.store(now_ms, Ordering::Release);
            }
            if activity.busy.load(Ordering::Acquire) > 0 || activity.closing().is_some() {
                continue;
            }
            let idle = activity.idle_since_ms.load(Ordering::Acquire);
            let last = idle.max(activity.wrote_ms.load(Ordering::Acquire));
            if now_ms.saturating_sub(last) >= timeout_ms {
                activity.close(Close::TimedOut);
                closed += 1;
            }
        }
        closed
    }

    /// Ask every open connection to close.
    pub fn close_all(&self, why: Close) {
        for activity in self.lock().open.values() {
            activity.close(why);
        }
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

    /// Resolves when the connection is asked to close, with the reason. Cheap to poll:
    /// one atomic load, and a waker registration while nothing is asked.
    pub async fn closing(&self) -> Close {
        let activity = &self.activity;
        poll_fn(|cx| {
            if let Some(why) = activity.closing() {
                return Poll::Ready(why);
            }
            activity.waker.register(cx.waker());
            // Set between the first look and the registration: not woken, so look again.
            activity.closing().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// `stream`, counting its writes for this connection's progress.
    pub fn track<S>(self: &Arc<Self>, stream: S) -> Tracked<S> {
        Tracked {
            inner: stream,
            conn: self.clone(),
        }
    }
}

/// Responses up to this size that hyper hands over in pieces (head, then body) are
/// copied into one buffer and sent with one `write`, which costs the server less CPU than
/// a `writev` of the pieces (figures: docs/performance.md).
const COALESCE_MAX: usize = 4096;

thread_local! {
    /// Where small pieces are coalesced: one buffer per thread, reused (never zeroed).
    static COALESCED: std::cell::RefCell<Vec<u8>> =
        std::cell::RefCell::new(Vec::with_capacity(COALESCE_MAX));
}

/// A client stream whose writes count as its connection's progress ([`Conn::track`]).
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S> Tracked<S> {
    fn wrote(&self, result: &Poll<io::Result<usize>>) {
        if let Poll::Ready(Ok(n)) = result {
            if *n > 0 {
                self.conn.activity.writes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(&result);
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() > 1 && total <= COALESCE_MAX {
            return COALESCED.with_borrow_mut(|one| {
                one.clear();
                for b in bufs {
                    one.extend_from_slice(b);
                }
                self.poll_write(cx, one)
            });
        }
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
        let why = tokio::time::timeout(Duration::from_secs(1), b.closing())
            .await
            .expect("b was told to close");
        assert_eq!(why, Close::Evicted);
        // `c` was never told.
        assert!(tokio::time::timeout(Duration::from_millis(10), c.closing())
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
        let why = tokio::time::timeout(Duration::from_secs(1), b.closing())
            .await
            .expect("b, idle the longest, was told to close");
        assert_eq!(why, Close::Evicted);
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

#[cfg(test)]
mod timeouts {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn closing(conn: &Conn) -> Option<Close> {
        conn.activity.closing()
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_silent_for_the_timeout_is_closed_and_a_busy_one_is_not() {
        let conns = Connections::new(8);
        let t = Instant::now();
        let silent = Arc::new(conns.admit(t).unwrap().0);
        let busy = Arc::new(conns.admit(t).unwrap().0);
        let _request = busy.request();
        let late = Arc::new(conns.admit(t + Duration::from_secs(5)).unwrap().0);

        assert_eq!(
            conns.time_out_idle(t + TIMEOUT - Duration::from_millis(1), TIMEOUT),
            0
        );
        assert_eq!(closing(&silent), None);
        assert_eq!(conns.time_out_idle(t + TIMEOUT, TIMEOUT), 1);
        assert_eq!(closing(&silent), Some(Close::TimedOut));
        assert_eq!(closing(&busy), None, "a request is under way");
        assert_eq!(closing(&late), None, "accepted 5 s later");
        // Told once: later sweeps do not count it again.
        assert_eq!(conns.time_out_idle(t + TIMEOUT, TIMEOUT), 0);
        let why = tokio::time::timeout(Duration::from_secs(1), silent.closing()).await;
        assert_eq!(why.ok(), Some(Close::TimedOut));
    }

    #[tokio::test(start_paused = true)]
    async fn a_finished_request_or_a_write_restarts_the_clock() {
        let conns = Connections::new(8);
        let t = Instant::now();
        let conn = Arc::new(conns.admit(t).unwrap().0);
        // A request ends at 8 s (paused clock: `Busy` reads it when dropped).
        tokio::time::advance(Duration::from_secs(8)).await;
        drop(conn.request());
        assert_eq!(conns.time_out_idle(t + Duration::from_secs(17), TIMEOUT), 0);
        // Writes seen by the sweep at 17 s (a response still going out) count as progress.
        let (client, server) = tokio::io::duplex(64);
        let mut tracked = conn.track(server);
        tracked.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        assert_eq!(conns.time_out_idle(t + Duration::from_secs(17), TIMEOUT), 0);
        assert_eq!(conns.time_out_idle(t + Duration::from_secs(26), TIMEOUT), 0);
        assert_eq!(closing(&conn), None);
        assert_eq!(conns.time_out_idle(t + Duration::from_secs(27), TIMEOUT), 1);
        assert_eq!(closing(&conn), Some(Close::TimedOut));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn close_all_reaches_every_connection_and_the_first_reason_wins() {
        let conns = Connections::new(8);
        let t = Instant::now();
        let a = Arc::new(conns.admit(t).unwrap().0);
        let b = Arc::new(conns.admit(t).unwrap().0);
        a.activity.close(Close::TimedOut);
        conns.close_all(Close::Draining);
        assert_eq!(closing(&a), Some(Close::TimedOut));
        assert_eq!(closing(&b), Some(Close::Draining));
    }

    #[tokio::test]
    async fn a_task_waiting_for_closing_is_woken() {
        let conns = Connections::new(8);
        let conn = Arc::new(conns.admit(Instant::now()).unwrap().0);
        let waiter = tokio::spawn({
            let conn = conn.clone();
            async move { conn.closing().await }
        });
        tokio::task::yield_now().await;
        conns.close_all(Close::ServerGone);
        let why = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(why.ok().and_then(Result::ok), Some(Close::ServerGone));
    }
}
