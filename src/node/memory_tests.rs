//! Nodes over the in-memory transport on paused tokio time: the membership driver,
//! replication fan-out (a hung peer here, the rest in [`replication`]), catch-up (with
//! the `/ready` and `/peers` GETs it ranks peers and waits by) and anti-entropy, with no
//! socket. Here each node plays its own process (failure domain), so every message
//! between nodes goes through the transport.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::Config;
use crate::transport::memory::{Fault, Handler};
use crate::transport::{MemoryTransport, PeerClient};

use super::{Node, ProcessWide, Tuning};

mod replication;

const BASE_PORT: u16 = 9100;

/// A wall clock that follows tokio's paused clock.
fn sim_wall_ms() -> u64 {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    let anchor = *ANCHOR.get_or_init(Instant::now);
    1_700_000_000_000 + Instant::now().saturating_duration_since(anchor).as_millis() as u64
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

struct Sim {
    transport: Arc<MemoryTransport>,
    config: Arc<Config>,
    stop_tx: watch::Sender<bool>,
    stop: watch::Receiver<bool>,
    nodes: Vec<Arc<Node>>,
}

impl Sim {
    /// `n` node slots (ports `BASE_PORT..`), none started.
    fn new(n: u16) -> Sim {
        let (stop_tx, stop) = watch::channel(false);
        Sim {
            transport: MemoryTransport::new(),
            config: Arc::new(Config {
                base_port: BASE_PORT,
                max_ports: n,
                ..Config::for_test()
            }),
            stop_tx,
            stop,
            nodes: Vec::new(),
        }
    }

    /// Start the node of slot `index` (1-based) as a process of its own.
    fn start(&mut self, index: usize) -> Arc<Node> {
        let node = self.node(index);
        let serving = {
            let node = node.clone();
            async move {
                node.stopped().await;
                node.leave().await;
            }
        };
        tokio::spawn(node.clone().run(serving));
        node
    }

    /// Start the node of slot `index` with its membership driver alone: a member of the
    /// mesh whose catch-up never runs, so it is never caught up and holds only what is
    /// replicated to it (as a peer stuck catching up would).
    fn start_stalled(&mut self, index: usize) -> Arc<Node> {
        let node = self.node(index);
        tokio::spawn(node.clone().drive_membership());
        node
    }

    /// The node of slot `index`, reachable in memory but not yet running.
    fn node(&mut self, index: usize) -> Arc<Node> {
        let port = BASE_PORT + index as u16 - 1;
        let process = ProcessWide {
            transport: Some(PeerClient::over(self.transport.clone())),
            ..ProcessWide::new(&self.config)
        };
        let tag = crate::ids::new_process_tag();
        let tuning = Tuning {
            wall_ms: sim_wall_ms,
            ..Tuning::default()
        };
        let node = Node::serving_on(
            process,
            crate::ids::node_id(index, &tag, 0),
            index,
            port,
            self.config.clone(),
            tuning,
            self.stop.clone(),
        );
        let handler: Weak<dyn Handler> = Arc::downgrade(&(node.clone() as Arc<dyn Handler>));
        self.transport.add(&addr(port), handler);
        self.nodes.push(node.clone());
        node
    }

    fn start_all(&mut self, n: usize) {
        for index in 1..=n {
            self.start(index);
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
    }
}

/// Poll `cond` every 50 ms of (paused) time until it holds; panics after `within`.
async fn wait_until(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn meshed(nodes: &[Arc<Node>]) -> bool {
    nodes
        .iter()
        .all(|n| n.membership().len() == nodes.len() - 1 && n.is_ready())
}

#[tokio::test(start_paused = true)]
async fn the_membership_driver_meshes_nodes_and_sees_one_leave() {
    let mut sim = Sim::new(3);
    sim.start_all(3);
    let nodes = sim.nodes.clone();
    wait_until(Duration::from_secs(30), "full mesh", || meshed(&nodes)).await;
    // A node that stops answering is declared gone by the others.
    sim.transport
        .set_fault(&addr(BASE_PORT + 2), Some(Fault::Hang));
    wait_until(Duration::from_secs(60), "the hung node dropped", || {
        nodes[..2].iter().all(|n| n.membership().len() == 1)
    })
    .await;
    // It answers again: it is back in the mesh.
    sim.transport.set_fault(&addr(BASE_PORT + 2), None);
    wait_until(Duration::from_secs(120), "mesh again", || meshed(&nodes)).await;
}

#[tokio::test(start_paused = true)]
async fn a_write_reaches_every_peer_and_a_hung_peer_costs_the_quorum_not_the_write() {
    let mut sim = Sim::new(2);
    sim.start_all(2);
    let nodes = sim.nodes.clone();
    wait_until(Duration::from_secs(30), "full mesh", || meshed(&nodes)).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let out = a
        .put("k1".into(), Bytes::from_static(b"v1"), 600)
        .await
        .unwrap();
    assert_eq!((out.acks, out.quorum), (2, 2), "durable: both hold it");
    assert!(b.store.get("k1").is_some());

    // b hangs: the write is held by a alone and answered at the write timeout (202).
    sim.transport
        .set_fault(&addr(BASE_PORT + 1), Some(Fault::Hang));
    let started = Instant::now();
    let out = a
        .put("k2".into(), Bytes::from_static(b"v2"), 600)
        .await
        .unwrap();
    assert!(!out.durable(), "{out:?}");
    assert_eq!(out.acks, 1);
    assert_eq!(started.elapsed(), a.config.write_timeout);
    assert!(a.store.get("k2").is_some() && b.store.get("k2").is_none());
}

#[tokio::test(start_paused = true)]
async fn anti_entropy_repairs_what_a_peer_missed() {
    let mut sim = Sim::new(2);
    sim.start_all(2);
    let nodes = sim.nodes.clone();
    wait_until(Duration::from_secs(30), "full mesh", || meshed(&nodes)).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    // Replication batches to b are lost; membership (and later sync) still reach it.
    sim.transport
        .set_fault(&addr(BASE_PORT + 1), Some(Fault::Refuse));
    let out = a
        .put("k".into(), Bytes::from_static(b"v"), 600)
        .await
        .unwrap();
    assert_eq!(out.acks, 1);
    sim.transport.set_fault(&addr(BASE_PORT + 1), None);
    assert!(b.store.get("k").is_none());
    wait_until(Duration::from_secs(60), "b repaired", || {
        b.store.get("k").is_some()
    })
    .await;
    assert!(b.metrics.anti_entropy_repairs.get() + b.metrics.entries_applied.get() >= 1);
}

/// Keys [`seeded`] writes.
const KEYS: usize = 20;

/// Starts the node of slot 1 and writes [`KEYS`] keys through it.
async fn seeded(sim: &mut Sim) -> Arc<Node> {
    let a = sim.start(1);
    wait_until(Duration::from_secs(30), "a ready", || a.is_ready()).await;
    for i in 0..KEYS {
        a.put(format!("k{i}"), Bytes::from_static(b"v"), 600)
            .await
            .unwrap();
    }
    a
}

/// How many of [`seeded`]'s keys `node` holds.
fn held(node: &Node) -> usize {
    (0..KEYS)
        .filter(|i| node.store.get(&format!("k{i}")).is_some())
        .count()
}

/// Sets the faults of the nodes of slots 1 and 2.
fn faults(sim: &Sim, first: Option<Fault>, second: Option<Fault>) {
    sim.transport.set_fault(&addr(BASE_PORT), first);
    sim.transport.set_fault(&addr(BASE_PORT + 1), second);
}

/// Polls `node` every 10 ms until it is caught up (panics after 30 s): how many of
/// [`seeded`]'s keys it holds at that first moment.
async fn held_once_caught_up(node: &Node) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node.is_caught_up() {
        assert!(Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    held(node)
}

#[tokio::test(start_paused = true)]
async fn a_node_that_starts_late_catches_up_from_its_peers() {
    let mut sim = Sim::new(2);
    seeded(&mut sim).await;
    let b = sim.start(2);
    wait_until(Duration::from_secs(60), "b caught up", || {
        b.is_caught_up() && held(&b) == KEYS
    })
    .await;
    assert!(sim.transport.calls_to(&addr(BASE_PORT)) > 0);
}

#[tokio::test(start_paused = true)]
async fn a_node_whose_first_probes_were_refused_catches_up_when_a_peer_joins() {
    let mut sim = Sim::new(2);
    seeded(&mut sim).await;
    // As a host on a new address is a stranger to the others until they resolve their
    // sources again: b finds nobody and is caught up with nothing...
    faults(&sim, Some(Fault::Refuse), Some(Fault::Refuse));
    let b = sim.start(2);
    wait_until(Duration::from_secs(30), "b alone and caught up", || {
        b.is_caught_up()
    })
    .await;
    assert_eq!(b.store.len(), 0);
    // ...until a reaches it: from then on b is never caught up without a's data.
    faults(&sim, None, None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.membership().is_empty() {
        assert!(Instant::now() < deadline, "a and b never met");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = held_once_caught_up(&b).await;
    assert_eq!(held, KEYS, "b is caught up holding {held} of a's keys");
}

/// A [`seeded`] node, then a second one that it turns away (403) and cannot reach.
async fn turned_away_start(sim: &mut Sim) -> (Arc<Node>, Arc<Node>) {
    let a = seeded(sim).await;
    faults(
        sim,
        Some(Fault::Answer(hyper::StatusCode::FORBIDDEN)),
        Some(Fault::Refuse),
    );
    let b = sim.start(2);
    wait_until(Duration::from_secs(30), "b's first discovery round", || {
        b.is_ready()
    })
    .await;
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn a_node_turned_away_is_not_caught_up_until_a_peer_reaches_it() {
    let mut sim = Sim::new(2);
    let (_a, b) = turned_away_start(&mut sim).await;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert!(
            !b.is_caught_up(),
            "caught up while turned away, with nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    faults(&sim, None, None);
    let held = held_once_caught_up(&b).await;
    assert_eq!(held, KEYS, "b is caught up holding {held} of a's keys");
}

#[tokio::test(start_paused = true)]
async fn a_node_turned_away_for_good_is_ready_alone_after_the_wait() {
    let mut sim = Sim::new(2);
    let (_a, b) = turned_away_start(&mut sim).await;
    let since = Instant::now();
    wait_until(Duration::from_secs(30), "b caught up alone", || {
        b.is_caught_up()
    })
    .await;
    let waited = since.elapsed();
    assert!(
        waited >= super::catchup::TURNED_AWAY_WAIT - Duration::from_millis(500),
        "ready alone after {waited:?}"
    );
    assert_eq!(b.store.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_late_node_catches_up_from_a_caught_up_peer_before_an_older_one_that_is_not() {
    let mut sim = Sim::new(3);
    // c, the older peer, never catches up; a, the younger, does (from c: nothing).
    let c = sim.start_stalled(3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a = sim.start(1);
    wait_until(
        Duration::from_secs(30),
        "a caught up, meshed with c",
        || a.is_caught_up() && a.membership().len() == 1 && c.membership().len() == 1,
    )
    .await;
    // Writes c misses: only a holds them.
    sim.transport
        .set_fault(&addr(BASE_PORT + 2), Some(Fault::Refuse));
    for i in 0..KEYS {
        a.put(format!("k{i}"), Bytes::from_static(b"v"), 600)
            .await
            .unwrap();
    }
    sim.transport.set_fault(&addr(BASE_PORT + 2), None);
    assert_eq!((held(&a), held(&c)), (KEYS, 0));
    let (_, ready) = c.ready_view();
    assert_eq!(ready["caught_up"], false, "{ready}");
    assert!(c.uptime_s() > a.uptime_s());

    // b asks both for /ready and pulls from a, though c has lived longer.
    let b = sim.start(2);
    let held = held_once_caught_up(&b).await;
    assert_eq!(held, KEYS, "b is caught up holding {held} of a's keys");
}

/// Seeds a, puts `get_fault` on a's public API only, starts b: how long b took from
/// holding a's keys (its first pull) to being caught up, while `meanwhile` runs (given
/// the simulation and b, right after the first pull).
async fn known_wait_after_first_pull<F, Fut>(get_fault: Fault, meanwhile: F) -> Duration
where
    F: FnOnce(Arc<MemoryTransport>, Arc<Node>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut sim = Sim::new(2);
    seeded(&mut sim).await;
    sim.transport
        .set_get_fault(&addr(BASE_PORT), Some(get_fault));
    let b = sim.start(2);
    // Polled every 10 ms (not wait_until's 50): the time is what the tests measure.
    let deadline = Instant::now() + Duration::from_secs(30);
    while held(&b) < KEYS {
        assert!(Instant::now() < deadline, "b never pulled a's keys");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pulled = Instant::now();
    meanwhile(sim.transport.clone(), b.clone()).await;
    held_once_caught_up(&b).await;
    pulled.elapsed()
}

#[tokio::test(start_paused = true)]
async fn a_catching_up_node_waits_until_its_peer_lists_it_in_peers() {
    // a answers its public API 429 (rate limited) at first: its /peers lists nobody.
    let limited = Fault::Answer(hyper::StatusCode::TOO_MANY_REQUESTS);
    let listed_after = Duration::from_secs(2);
    let waited = known_wait_after_first_pull(limited, |transport, b| async move {
        let until = Instant::now() + listed_after;
        while Instant::now() < until {
            assert!(!b.is_caught_up(), "caught up before a listed b");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        transport.set_get_fault(&addr(BASE_PORT), None);
    })
    .await;
    assert!(
        waited < listed_after + Duration::from_millis(500),
        "caught up {waited:?} after the first pull: not as soon as a listed b"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_lists_the_node_holds_catch_up_for_the_known_wait_only() {
    let limited = Fault::Answer(hyper::StatusCode::TOO_MANY_REQUESTS);
    let waited = known_wait_after_first_pull(limited, |_, _| async {}).await;
    let wait = super::catchup::KNOWN_WAIT;
    assert!(
        waited >= wait - Duration::from_millis(100) && waited < wait + Duration::from_secs(1),
        "caught up {waited:?} after the first pull, not after {wait:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_peer_whose_public_api_hangs_holds_catch_up_for_one_get_timeout() {
    let waited = known_wait_after_first_pull(Fault::Hang, |_, _| async {}).await;
    let timeout = super::catchup::READ_THROUGH_TIMEOUT;
    assert!(
        waited >= timeout - Duration::from_millis(20)
            && waited < super::catchup::KNOWN_WAIT - Duration::from_secs(1),
        "caught up {waited:?} after the first pull: a hung GET lasts {timeout:?}"
    );
}
