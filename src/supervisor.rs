//! The supervisor: claims a port per node, starts every node at once, restarts a node
//! whose task panics or fails (with backoff, on the same port), and stops them all on
//! shutdown within a deadline.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::error::Error;
use crate::http::Server;
use crate::local::Registry;
use crate::net::{claim_port, port_order, ClaimError};
use crate::node::{Node, ProcessWide, Tuning};
use crate::runtime::ConnThreads;
use crate::store::{PurgedBytes, Store};

/// How long the supervisor waits for all nodes to stop after the shutdown signal.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_millis(4_500);
/// First restart delay; doubles per consecutive failure up to [`MAX_RESTART_BACKOFF`].
const MIN_RESTART_BACKOFF: Duration = Duration::from_millis(50);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);
/// A node that ran this long before failing restarts with the minimum delay again.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// How often nodes that found no free port try to claim one again.
const CLAIM_RETRY: Duration = Duration::from_secs(1);

/// A running cluster: its nodes and the means to stop it.
pub struct Cluster {
    ports: Vec<u16>,
    nodes: Arc<Mutex<Vec<Arc<Node>>>>,
    /// The nodes serving in this process, for replication and catch-up in memory.
    registry: Registry<Node>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Cluster {
    /// Ports claimed by the nodes, in node order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// The current incarnation of every node (restarted nodes appear with their new id).
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        lock(&self.nodes).clone()
    }

    /// The cluster's registry of the nodes serving in this process.
    pub fn registry(&self) -> &Registry<Node> {
        &self.registry
    }

    /// Signal every node to leave and wait (at most [`SHUTDOWN_DEADLINE`]) for them to stop.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Err(e) = self.task.await {
            error!(error = %e, "supervisor task failed");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct Slot {
    index: usize,
    /// Starts of this node so far (the first start is 0).
    restarts: u32,
    port: u16,
    listener: TcpListener,
    failures: u32,
    started: Instant,
}

/// Claim ports for `config.node_count` nodes and start them all.
///
/// Fails if a port cannot be bound for a reason other than "in use", or if no node
/// could claim any port. Nodes that find the range full are logged and keep trying to
/// claim a port (one freed later) every [`CLAIM_RETRY`]; they start when they get one.
pub fn start(config: Config, tuning: Tuning) -> Result<Cluster, Error> {
    start_counting_purged(config, tuning, PurgedBytes::default())
}

/// [`start`], with every node's store counting the bytes its purges free in `purged`.
pub fn start_counting_purged(
    config: Config,
    tuning: Tuning,
    purged: PurgedBytes,
) -> Result<Cluster, Error> {
    let config = Arc::new(config);
    let range = config.port_range();
    let (first, last) = (*range.start(), *range.end());
    let mut slots = Vec::new();
    let mut pending = Vec::new();
    let mut last_err = None;
    for index in 1..=usize::from(config.node_count) {
        let preferred = first.saturating_add(index as u16 - 1);
        match claim_port(config.bind_addr, port_order(first, last, preferred)) {
            Ok((listener, port)) => {
                info!(index, port, bind = %config.bind_addr, "claimed port");
                slots.push(Slot {
                    index,
                    restarts: 0,
                    port,
                    listener,
                    failures: 0,
                    started: Instant::now(),
                });
            }
            Err(e @ ClaimError::NoFreePort { .. }) => {
                error!(index, error = %e, "node not started; it keeps trying to claim a port");
                last_err = Some(e.to_string());
                pending.push(index);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if slots.is_empty() {
        return Err(Error::NoNodeStarted(
            last_err.unwrap_or_else(|| "NODE_COUNT is 0".into()),
        ));
    }
    let ports: Vec<u16> = slots.iter().map(|s| s.port).collect();
    let host = match config.bind_addr {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let dashboards: Vec<String> = ports
        .iter()
        .map(|p| format!("http://{host}:{p}/"))
        .collect();
    info!(
        nodes = ports.len(),
        ports = ?ports,
        dashboards = %dashboards.join(" "),
        "cluster starting; dashboard: http://{host}:{}/ (every node serves one); try: curl http://{host}:{}/health",
        ports[0],
        ports[0]
    );
    let (supervisor, shutdown_tx) = Supervisor::new(
        crate::ids::new_process_tag(),
        config,
        tuning,
        ConnThreads::per_core(),
        purged,
    );
    let registry = supervisor.process.registry.clone();
    let nodes = supervisor.nodes.clone();
    let task = tokio::spawn(supervisor.run(slots, pending));
    Ok(Cluster {
        ports,
        nodes,
        registry,
        shutdown: shutdown_tx,
        task,
    })
}

/// The supervision loop's state: running node tasks and what restarting one needs.
struct Supervisor {
    /// Shared by every node id of this process: its failure domain.
    process_tag: String,
    set: JoinSet<()>,
    tasks: HashMap<Id, usize>,
    config: Arc<Config>,
    tuning: Tuning,
    shutdown: watch::Receiver<bool>,
    nodes: Arc<Mutex<Vec<Arc<Node>>>>,
    /// Serve every node's client connections; held so they stop with the supervisor.
    _conn_threads: ConnThreads,
    /// What every node, and every restart of one, shares: made once per process.
    process: ProcessWide,
    /// Serves every node's HTTP API.
    server: Server,
}

impl Supervisor {
    /// A supervisor with no node started yet, and the switch that shuts it down.
    fn new(
        process_tag: String,
        config: Arc<Config>,
        tuning: Tuning,
        conn_threads: ConnThreads,
        purged: PurgedBytes,
    ) -> (Supervisor, watch::Sender<bool>) {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = Server::new(&config, conn_threads.dispatch());
        // The nodes' discovery keeps the gate's cluster hosts current and hears its knocks.
        let process = ProcessWide {
            registry: Registry::new(),
            hosts: server.gate.shared_hosts(),
            knock: server.gate.shared_knock(),
            transport: None,
            store: Store::with_purged_bytes(config.max_storage_bytes, purged),
            locations: Default::default(),
        };
        let supervisor = Supervisor {
            process_tag,
            set: JoinSet::new(),
            tasks: HashMap::new(),
            config,
            tuning,
            shutdown: shutdown_rx,
            nodes: Arc::new(Mutex::new(Vec::new())),
            process,
            server,
            _conn_threads: conn_threads,
        };
        (supervisor, shutdown_tx)
    }

    /// Start (after `delay`) a fresh incarnation of the node in `slot`.
    fn launch(&mut self, slot: &mut Slot, position: usize, delay: Duration) {
        let id = crate::ids::node_id(slot.index, &self.process_tag, slot.restarts);
        slot.restarts += 1;
        let node = Node::serving_on(
            self.process.clone(),
            id,
            slot.index,
            slot.port,
            self.config.clone(),
            self.tuning.clone(),
            self.shutdown.clone(),
        );
        // The slot keeps the original socket, so the port stays ours while a node restarts.
        let listener = match slot.listener.try_clone() {
            Ok(l) => l,
            Err(e) => {
                error!(index = slot.index, port = slot.port, error = %e, "cannot hand the listener to the node");
                return;
            }
        };
        {
            let mut list = lock(&self.nodes);
            if position < list.len() {
                list[position] = node.clone();
            } else {
                list.push(node.clone());
            }
        }
        info!(node = %node.id, port = slot.port, "node starting");
        slot.started = Instant::now() + delay;
        let server = self.server.clone();
        let handle = self.set.spawn(async move {
            tokio::time::sleep(delay).await;
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => {
                    error!(node = %node.id, error = %e, "node failed");
                    return;
                }
            };
            let leaving = {
                let node = node.clone();
                async move { node.leave().await }
            };
            let serving = server.serve(node.clone(), listener, leaving);
            node.run(serving).await;
        });
        self.tasks.insert(handle.id(), position);
    }

    /// Try again to claim a port for node `index`, which found none at start.
    fn claim_later(&self, index: usize) -> Option<Slot> {
        let range = self.config.port_range();
        let (first, last) = (*range.start(), *range.end());
        let preferred = first.saturating_add(index as u16 - 1);
        match claim_port(self.config.bind_addr, port_order(first, last, preferred)) {
            Ok((listener, port)) => {
                info!(index, port, bind = %self.config.bind_addr, "claimed port (freed since start)");
                Some(Slot {
                    index,
                    restarts: 0,
                    port,
                    listener,
                    failures: 0,
                    started: Instant::now(),
                })
            }
            Err(e) => {
                debug!(index, error = %e, "still no port for this node");
                None
            }
        }
    }

    /// Restart nodes as they fail, until shutdown; then wait for all under the deadline.
    async fn run(mut self, mut slots: Vec<Slot>, mut pending: Vec<usize>) {
        for (position, slot) in slots.iter_mut().enumerate() {
            self.launch(slot, position, Duration::ZERO);
        }
        let mut stop = self.shutdown.clone();
        let mut retry = tokio::time::interval(CLAIM_RETRY);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = retry.tick(), if !pending.is_empty() => {
                    pending.retain(|&index| match self.claim_later(index) {
                        Some(mut slot) => {
                            let position = slots.len();
                            self.launch(&mut slot, position, Duration::ZERO);
                            slots.push(slot);
                            false
                        }
                        None => true,
                    });
                }
                joined = self.set.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (id, why) = match joined {
                        Ok((id, ())) => (id, "stopped unexpectedly".to_string()),
                        Err(e) if e.is_panic() => (e.id(), "panicked".to_string()),
                        Err(e) => (e.id(), format!("was cancelled: {e}")),
                    };
                    let Some(position) = self.tasks.remove(&id) else { continue };
                    if *self.shutdown.borrow() {
                        continue;
                    }
                    let slot = &mut slots[position];
                    let (delay, failures) = restart_backoff(slot.failures, slot.started.elapsed());
                    slot.failures = failures;
                    warn!(index = slot.index, port = slot.port, restart_in_ms = delay.as_millis() as u64, "node {why}; restarting");
                    self.launch(slot, position, delay);
                }
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        info!(nodes = self.set.len(), "shutting down");
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        while !self.set.is_empty() {
            match tokio::time::timeout_at(deadline, self.set.join_next()).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    warn!(
                        nodes = self.set.len(),
                        "nodes still running at the shutdown deadline; stopping them"
                    );
                    self.set.abort_all();
                    break;
                }
            }
        }
        drop(slots);
        info!("all nodes stopped");
    }
}

/// The delay before restarting a node that failed after running for `ran`, given the
/// failures in a row before this one, and the new count: the delay doubles per failure
/// in a row up to [`MAX_RESTART_BACKOFF`]; a run of [`HEALTHY_RUN`] or more starts over.
fn restart_backoff(failures: u32, ran: Duration) -> (Duration, u32) {
    let failures = if ran >= HEALTHY_RUN { 0 } else { failures };
    let delay = MIN_RESTART_BACKOFF
        .saturating_mul(1 << failures.min(10))
        .min(MAX_RESTART_BACKOFF);
    (delay, failures.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// The current node of every slot, as the supervisor publishes them.
    type Nodes = Arc<Mutex<Vec<Arc<Node>>>>;

    /// A supervisor as [`start`] makes one, for `config`, and what the test watches it
    /// through: the shutdown switch and the current node of every slot.
    fn supervisor(config: Config, tuning: Tuning) -> (Supervisor, watch::Sender<bool>, Nodes) {
        let (supervisor, shutdown_tx) = Supervisor::new(
            "0abcde".into(),
            Arc::new(config),
            tuning,
            ConnThreads::start(1),
            PurgedBytes::default(),
        );
        let nodes = supervisor.nodes.clone();
        (supervisor, shutdown_tx, nodes)
    }

    fn slot(listener: TcpListener, port: u16) -> Slot {
        Slot {
            index: 1,
            restarts: 0,
            port,
            listener,
            failures: 0,
            started: Instant::now(),
        }
    }

    fn current_id(nodes: &Mutex<Vec<Arc<Node>>>) -> String {
        lock(nodes)
            .first()
            .map(|n| n.id.clone())
            .unwrap_or_default()
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_task_that_returns_is_restarted_with_backoff() {
        // A "listener" the runtime cannot register (a character device): the real
        // `Node::run` returns its error at once, every time, without panicking.
        let dev_null = std::fs::File::open("/dev/null").expect("open /dev/null");
        socket2::SockRef::from(&dev_null)
            .set_nonblocking(true)
            .expect("O_NONBLOCK");
        let listener = TcpListener::from(std::os::fd::OwnedFd::from(dev_null));
        let (sup, stop, nodes) = supervisor(Config::for_test(), Tuning::default());
        let t0 = Instant::now();
        let run = tokio::spawn(sup.run(vec![slot(listener, 1)], Vec::new()));
        // When each incarnation appeared: r1 replaces the first at once, then each
        // restart waits the backoff of the failures in a row so far.
        let mut seen: Vec<(String, Duration)> = Vec::new();
        for _ in 0..5_000 {
            let id = current_id(&nodes);
            if !id.is_empty() && seen.last().is_none_or(|(last, _)| *last != id) {
                seen.push((id, t0.elapsed()));
            }
            if seen.len() == 5 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The first incarnation fails within the supervisor's first poll, so r1 is the
        // first one seen: a task that returned is replaced by a new id each time.
        let ids: Vec<&str> = seen.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            (1..=5)
                .map(|r| format!("flux-node-1-0abcde-r{r}"))
                .collect::<Vec<_>>(),
            "a node task that returned was not restarted under a new id each time"
        );
        // Each restart waits the backoff of the failures in a row so far: 50, 100, 200,
        // 400 ms (paused time: each start is seen at the 1 ms poll it happened in).
        let at: Vec<u128> = seen.iter().map(|(_, t)| t.as_millis()).collect();
        for (got, want) in at.iter().zip([0u128, 50, 150, 350, 750]) {
            assert!(
                (want..=want + 1).contains(got),
                "restarts at {at:?} ms, want [0, 50, 150, 350, 750] (+1)"
            );
        }
        stop.send(true).expect("supervisor listening");
        run.await.expect("supervisor task");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_aborts_a_node_still_draining_at_the_deadline() {
        // Requests may take far longer to drain than the supervisor waits.
        let tuning = Tuning {
            drain_timeout: Duration::from_secs(600),
            body_timeout: Duration::from_secs(600),
            ..Tuning::default()
        };
        let listener = crate::net::listen_on("127.0.0.1:0".parse().expect("address"))
            .expect("a port from the OS");
        let port = listener.local_addr().expect("bound").port();
        let (sup, stop, _nodes) = supervisor(Config::for_test(), tuning);
        let run = tokio::spawn(sup.run(vec![slot(listener, port)], Vec::new()));
        // A write whose handler is reading its body (proven by 100 Continue), and whose
        // body never comes: the node cannot finish draining.
        let client = tokio::task::spawn_blocking(move || {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            c.write_all(
                b"PUT /data/k?ttl=60 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\
                  Expect: 100-continue\r\n\r\n",
            )
            .expect("send head");
            let mut head = [0u8; 25];
            c.read_exact(&mut head).expect("100 Continue");
            assert!(head.starts_with(b"HTTP/1.1 100 Continue"), "{head:?}");
            c
        })
        .await
        .expect("client");
        stop.send(true).expect("supervisor listening");
        // Bounded by the deadline (plus slack), not by the 600 s drain.
        tokio::time::timeout(SHUTDOWN_DEADLINE * 4, run)
            .await
            .expect("shutdown did not finish: the draining node was not stopped at the deadline")
            .expect("supervisor task");
        // The node was stopped mid-request: its connection closes with no answer.
        let rest = tokio::task::spawn_blocking(move || {
            let mut c = client;
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
            rest
        })
        .await
        .expect("reader");
        assert!(
            !String::from_utf8_lossy(&rest).contains("HTTP/1.1 2"),
            "the write was answered, so the node had finished draining: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }

    #[test]
    fn a_crash_loop_backs_off_to_the_cap_and_a_healthy_run_resets_it() {
        // A node that fails at once, over and over.
        let mut failures = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let (delay, next) = restart_backoff(failures, Duration::ZERO);
            delays.push(delay.as_millis());
            failures = next;
        }
        assert_eq!(
            delays,
            [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
        );
        // Just short of a healthy run: still in the loop.
        let (delay, next) = restart_backoff(failures, HEALTHY_RUN - Duration::from_millis(1));
        assert_eq!((delay, next), (MAX_RESTART_BACKOFF, failures + 1));
        // After a healthy run, the next failure starts over at the first delay.
        assert_eq!(restart_backoff(next, HEALTHY_RUN), (MIN_RESTART_BACKOFF, 1));
        // Any count, however large, stays at the cap (no overflow).
        assert_eq!(
            restart_backoff(u32::MAX - 1, Duration::ZERO).0,
            MAX_RESTART_BACKOFF
        );
    }
}
