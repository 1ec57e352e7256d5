//! Where a cluster's tasks run.
//!
//! - Client connections are served on [`ConnThreads`]: one single-threaded tokio runtime
//!   per core, each connection dealt to the next thread in turn. A connection then never
//!   moves between threads, and a request wakes no other thread: on the shared
//!   work-stealing runtime every idle moment parked a worker and every event woke one,
//!   at a cost in server CPU on every GET (docs/performance.md has the figures).
//! - A node's own long-lived tasks (replication links, catch-up) run on its [`Home`], the
//!   runtime it was created on, even when a request on a connection thread starts them.
//!   The exception: delivery to the nodes of the same process runs on each writing
//!   thread's own runtime (see the replication module).
//!
//! The threads stop when their [`ConnThreads`] is dropped; the tasks still on them (open
//! connections) are dropped with their runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// The connection threads of a cluster. Dropping it stops them.
pub struct ConnThreads {
    dispatch: Dispatch,
    /// Dropped with `self`: each thread then leaves its runtime, which drops its tasks.
    _stop: Vec<oneshot::Sender<()>>,
}

impl ConnThreads {
    /// Start `count` threads (at least one is asked for). A thread that cannot start is
    /// logged and left out; with none, connections are served on the caller's runtime.
    pub fn start(count: usize) -> ConnThreads {
        let mut handles = Vec::new();
        let mut stop = Vec::new();
        for i in 0..count.max(1) {
            match start_thread(i) {
                Ok((handle, tx)) => {
                    handles.push(handle);
                    stop.push(tx);
                }
                Err(e) => {
                    warn!(thread = i, error = %e, "cannot start a connection thread; serving with fewer");
                }
            }
        }
        let dispatch = if handles.is_empty() {
            Dispatch::default()
        } else {
            Dispatch(Some(Arc::new(Threads {
                handles,
                next: AtomicUsize::new(0),
            })))
        };
        ConnThreads {
            dispatch,
            _stop: stop,
        }
    }

    /// One thread per core this process may use.
    pub fn per_core() -> ConnThreads {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ConnThreads::start(cores)
    }

    /// Hands connections to these threads; holds them no longer than `self` lives.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    /// How many threads run.
    pub fn len(&self) -> usize {
        self.dispatch.0.as_ref().map_or(0, |t| t.handles.len())
    }

    /// True when no thread could start.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn start_thread(i: usize) -> std::io::Result<(Handle, oneshot::Sender<()>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let (tx, rx) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("repram-conn-{i}"))
        .spawn(move || {
            // Either a stop or the sender dropped: both end the thread.
            let _ = runtime.block_on(rx);
            debug!(thread = i, "connection thread stopping");
        })?;
    Ok((handle, tx))
}

struct Threads {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

/// Serves connections on the connection threads, in turn; without threads
/// ([`Dispatch::default`]), on the current runtime.
#[derive(Clone, Default)]
pub struct Dispatch(Option<Arc<Threads>>);

impl Dispatch {
    /// Run `serve(stream)` on the next thread. The stream moves to that thread's reactor;
    /// if it cannot, the connection is closed (logged at debug level: it is the kernel
    /// refusing a descriptor operation, as rare as a failed accept).
    pub fn serve<F, Fut>(&self, stream: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(threads) = &self.0 else {
            tokio::spawn(serve(stream));
            return;
        };
        let i = threads.next.fetch_add(1, Ordering::Relaxed) % threads.handles.len();
        let std = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                debug!(error = %e, "cannot hand a connection to a connection thread; closed");
                return;
            }
        };
        // After the threads stopped the task is dropped unrun, which closes the socket.
        threads.handles[i].spawn(async move {
            match TcpStream::from_std(std) {
                Ok(stream) => serve(stream).await,
                Err(e) => debug!(error = %e, "cannot register a connection; closed"),
            }
        });
    }
}

/// The runtime a node was created on: its long-lived tasks run there whichever thread
/// asks for them.
#[derive(Clone, Debug)]
pub struct Home(Option<Handle>);

impl Home {
    /// The current runtime, if any (else tasks go wherever `tokio::spawn` puts them).
    pub fn here() -> Home {
        Home(Handle::try_current().ok())
    }

    /// Spawn `task` on this runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(handle) => handle.spawn(task),
            None => tokio::spawn(task),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Accept `n` connections and dispatch each to an echo of the serving thread's name.
    async fn names_of_serving_threads(dispatch: &Dispatch, n: usize) -> Vec<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut names = Vec::new();
        for _ in 0..n {
            let client = tokio::spawn(async move {
                let mut s = TcpStream::connect(addr).await.unwrap();
                let mut name = String::new();
                s.read_to_string(&mut name).await.unwrap();
                name
            });
            let (stream, _) = listener.accept().await.unwrap();
            dispatch.serve(stream, |mut s| async move {
                let name = std::thread::current().name().unwrap_or("?").to_string();
                s.write_all(name.as_bytes()).await.unwrap();
            });
            names.push(client.await.unwrap());
        }
        names
    }

    #[tokio::test]
    async fn connections_are_dealt_to_the_threads_in_turn() {
        let threads = ConnThreads::start(2);
        assert_eq!(threads.len(), 2);
        let names = names_of_serving_threads(&threads.dispatch(), 4).await;
        assert_eq!(
            names,
            [
                "repram-conn-0",
                "repram-conn-1",
                "repram-conn-0",
                "repram-conn-1"
            ]
        );
    }

    #[tokio::test]
    async fn without_threads_the_current_runtime_serves() {
        let names = names_of_serving_threads(&Dispatch::default(), 1).await;
        assert!(!names[0].starts_with("repram-conn"), "{names:?}");
    }

    #[tokio::test]
    async fn dropping_the_threads_closes_their_connections() {
        let threads = ConnThreads::start(1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        // Holds the connection open forever unless its runtime goes away.
        threads.dispatch().serve(stream, |s| async move {
            std::future::pending::<()>().await;
            drop(s);
        });
        let mut buf = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(100), client.read(&mut buf)).await;
        assert!(
            early.is_err(),
            "the connection is held while the threads run"
        );
        drop(threads);
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("closed once the threads stop");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }

    #[tokio::test]
    async fn home_spawns_on_the_runtime_it_was_made_on() {
        let home = Home::here();
        let threads = ConnThreads::start(1);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let (tx, rx) = oneshot::channel();
        threads.dispatch().serve(stream, move |_s| async move {
            let spawned = home.spawn(async { std::thread::current().name().map(str::to_string) });
            let _ = tx.send(spawned.await.ok().flatten());
        });
        let name = rx.await.unwrap();
        assert!(
            !name.as_deref().unwrap_or("").starts_with("repram-conn"),
            "{name:?}"
        );
        drop(client);
    }
}
