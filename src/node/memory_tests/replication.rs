//! Replication between nodes over the in-memory transport on paused time: several
//! nodes per process, the in-memory hand-over to the nodes of the writer's own process,
//! one relayed batch per other process, relay failover, what counts as an
//! acknowledgement, and plain batches for a process of an older version.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use hyper::StatusCode;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{addr, wait_until};
use crate::config::Config;
use crate::local::Registration;
use crate::metrics::Metrics;
use crate::node::{Node, ProcessWide, Tuning};
use crate::replication::{Replicator, BATCH_TIMEOUT};
use crate::store::Store;
use crate::transport::memory::{Fault, Handler, Scripted};
use crate::transport::{MemoryTransport, PeerClient};
use crate::wire::Message;

/// `n` nodes of one new process calling their peers through `transport`, node `i` on
/// port `first_port + i - 1`; none registered as serving or reachable yet (see
/// [`reach`]), and no background tasks.
///
/// Unlike the nodes of a real process, each has a store of its own, so that what reached
/// a node shows in its store: the hand-over is tested as if it had to carry the data.
fn process(
    transport: &Arc<MemoryTransport>,
    n: usize,
    first_port: u16,
    stop: &watch::Receiver<bool>,
) -> Vec<Arc<Node>> {
    let config = Arc::new(Config::for_test());
    let process = ProcessWide {
        transport: Some(PeerClient::over(transport.clone())),
        ..ProcessWide::new(&config)
    };
    let tag = crate::ids::new_process_tag();
    (1..=n)
        .map(|index| {
            Node::serving_on(
                ProcessWide {
                    store: Store::new(config.max_storage_bytes),
                    ..process.clone()
                },
                crate::ids::node_id(index, &tag, 0),
                index,
                first_port + index as u16 - 1,
                config.clone(),
                Tuning::default(),
                stop.clone(),
            )
        })
        .collect()
}

/// Make `node` reachable through `transport` at its address: that address.
fn reach(transport: &MemoryTransport, node: &Arc<Node>) -> String {
    let handler: Weak<dyn Handler> = Arc::downgrade(&(node.clone() as Arc<dyn Handler>));
    transport.add(&addr(node.port), handler);
    addr(node.port)
}

/// Register every node as serving in its process and make it reachable: the
/// registrations and the addresses.
fn serve_all(
    transport: &MemoryTransport,
    nodes: &[Arc<Node>],
) -> (Vec<Registration<Node>>, Vec<String>) {
    let regs = nodes.iter().map(|n| n.registry().register(n)).collect();
    let addrs = nodes.iter().map(|n| reach(transport, n)).collect();
    (regs, addrs)
}

/// `n` nodes of one process over `transport`, registered and reachable: the nodes,
/// addresses and registrations.
fn process_over(
    transport: &Arc<MemoryTransport>,
    n: usize,
    first_port: u16,
    stop: &watch::Receiver<bool>,
) -> (Vec<Arc<Node>>, Vec<String>, Vec<Registration<Node>>) {
    let nodes = process(transport, n, first_port, stop);
    let (regs, addrs) = serve_all(transport, &nodes);
    (nodes, addrs, regs)
}

/// Put the stand-in `peer` at `addr` in `transport`.
fn place(transport: &MemoryTransport, addr: &str, peer: &Arc<impl Handler + 'static>) {
    let peer: Arc<dyn Handler> = peer.clone();
    transport.add(addr, Arc::downgrade(&peer));
}

/// The nodes of `others` in the order `writer` tries them as relays.
fn relay_order_of(writer: &Node, others: &[Arc<Node>]) -> Vec<String> {
    let ids: Vec<String> = others.iter().map(|n| n.id.clone()).collect();
    Replicator::relay_order(&writer.id, &ids)
}

fn sum(nodes: &[Arc<Node>], counter: impl Fn(&Metrics) -> u64) -> u64 {
    nodes.iter().map(|n| counter(&n.metrics)).sum()
}

/// A write on `a` gets no acknowledgement from its only peer `b`, which lacks it.
async fn write_is_not_acknowledged(a: &Node, b: &Node) {
    let out = a
        .put("k1".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 1, "no acknowledgement from the peer");
    assert!(b.store.get("k1").is_none());
    assert_eq!(a.metrics.replication_failures.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_peer_of_this_process_gets_writes_in_memory_without_the_transport() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 2, 9400, &stop);
    let (a, b) = (&nodes[0], &nodes[1]);
    let _serving = b.registry().register(b);
    // Nobody is at the address in the transport: only the in-memory path can deliver.
    a.replicator.add_peer(&b.id, addr(b.port));
    // Big enough for stores to keep it as a shared handle (they copy small values).
    let value = Bytes::from(vec![7u8; crate::store::PACKED_VALUE_MAX + 1]);
    let out = a.put("k1".into(), value.clone(), 60).await.unwrap();
    assert_eq!((out.acks, out.quorum), (2, 2), "b acknowledged");
    let held = b.store.get("k1").expect("b holds the write");
    assert_eq!(held.value, value);
    assert_eq!(
        held.value.as_ptr(),
        value.as_ptr(),
        "the value is shared, not copied"
    );
    assert_eq!(transport.calls_to(&addr(b.port)), 0, "no call to b");
    assert_eq!(b.metrics.replication_received_memory.get(), 1);
    assert_eq!(b.metrics.replication_received_http.get(), 0);
    assert_eq!(b.metrics.entries_applied.get(), 1);
    assert_eq!(a.metrics.replication_entries.get(), 1);
    assert_eq!(a.metrics.replication_failures.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_nodes_of_a_process_keep_one_copy_of_the_data() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let config = Arc::new(Config::for_test());
    let process = ProcessWide {
        transport: Some(PeerClient::over(transport.clone())),
        ..ProcessWide::new(&config)
    };
    let tag = crate::ids::new_process_tag();
    let nodes: Vec<_> = (1..=3)
        .map(|index| {
            Node::serving_on(
                process.clone(),
                crate::ids::node_id(index, &tag, 0),
                index,
                9400 + index as u16,
                config.clone(),
                Tuning::default(),
                stop.clone(),
            )
        })
        .collect();
    let (_serving, _) = serve_all(&transport, &nodes);
    let a = &nodes[0];
    for p in &nodes[1..] {
        a.replicator.add_peer(&p.id, addr(p.port));
    }
    let value = Bytes::from(vec![b'v'; 4096]);
    let out = a.put("k1".into(), value.clone(), 60).await.unwrap();
    assert_eq!((out.acks, out.quorum), (3, 2), "the siblings acknowledge");
    assert_eq!(process.store.len(), 1, "one entry for the whole process");
    assert_eq!(process.store.bytes(), 2 + 4096, "charged once");
    for p in &nodes {
        let held = p.store.get("k1").expect("every node serves it");
        assert_eq!(held.value.as_ptr(), value.as_ptr(), "not copied");
    }
    // The siblings were handed the write and applied nothing: they already held it.
    assert_eq!(sum(&nodes[1..], |m| m.replication_received_memory.get()), 2);
    assert_eq!(sum(&nodes[1..], |m| m.entries_applied.get()), 0);
}

#[tokio::test(start_paused = true)]
async fn the_peers_of_this_process_share_one_queue_and_each_acknowledges_what_it_holds() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 4, 9400, &stop);
    let (a, peers) = (&nodes[0], &nodes[1..]);
    let mut serving: Vec<_> = peers.iter().map(|p| p.registry().register(p)).collect();
    for p in peers {
        a.replicator.add_peer(&p.id, addr(p.port));
    }
    let out = a
        .put("k1".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 4, "a and its three peers");
    assert!(peers.iter().all(|p| p.store.get("k1").is_some()));
    assert_eq!(
        a.metrics.replication_batches.get(),
        1,
        "one batch for all three"
    );

    // One stops serving: the others still take writes and acknowledge them.
    drop(serving.pop());
    let out = a
        .put("k2".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 3);
    assert!(peers[2].store.get("k2").is_none());
    assert_eq!(a.metrics.replication_failures.get(), 1);

    // Membership takes the peers away one by one; the link goes with the last.
    for p in peers {
        assert!(a.replicator.has_peers());
        a.replicator.remove_peer(&p.id);
    }
    assert!(!a.replicator.has_peers());
    let out = a
        .put("k3".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 1);
    assert!(peers[0].store.get("k3").is_none());
}

/// Writes from two threads, each with a runtime of its own, while the test's runtime
/// is blocked: each is delivered and acknowledged on its own thread.
#[tokio::test(start_paused = true)]
async fn each_writing_thread_delivers_to_this_process_on_its_own_runtime() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 2, 9400, &stop);
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let _serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, addr(b.port));
    // Each keeps its runtime until both wrote.
    let both = Arc::new(std::sync::Barrier::new(2));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let (a, both) = (a.clone(), both.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let acks = rt.block_on(async {
                    let key = format!("t{t}");
                    a.put(key, Bytes::from_static(b"v"), 60).await.unwrap().acks
                });
                both.wait();
                acks
            })
        })
        .collect();
    // Blocking here: a sender task spawned on this runtime would never run.
    let acks: Vec<usize> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(acks, [2, 2], "a and b, within the writer's thread");
    assert!(b.store.get("t0").is_some() && b.store.get("t1").is_some());
    let queues = |a: &Node| a.replicator.link_counts().0;
    assert_eq!(queues(&a), 2, "one per writing thread");

    // Those threads and their runtimes are gone: the next write drops their queues.
    let out = a
        .put("t2".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 2);
    assert_eq!(queues(&a), 1);
    assert!(b.store.get("t2").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_stopped_serving_does_not_acknowledge() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 2, 9400, &stop);
    let (a, b) = (&nodes[0], &nodes[1]);
    let serving = b.registry().register(b);
    a.replicator.add_peer(&b.id, addr(b.port));
    drop(serving);
    assert!(b.registry().lookup(&b.id).is_none(), "unregistered");
    write_is_not_acknowledged(a, b).await;
    assert_eq!(b.metrics.replication_received_memory.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_is_shutting_down_does_not_acknowledge() {
    let transport = MemoryTransport::new();
    let (stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 2, 9400, &stop);
    let (a, b) = (&nodes[0], &nodes[1]);
    let _serving = b.registry().register(b);
    a.replicator.add_peer(&b.id, addr(b.port));
    stop_tx.send(true).unwrap();
    write_is_not_acknowledged(a, b).await;
}

/// Over HTTP in production; what matters is that the batch leaves through the transport
/// (here nobody answers there) and is not handed over in memory.
#[tokio::test(start_paused = true)]
async fn a_node_of_another_cluster_in_this_process_is_sent_through_the_transport() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(&transport, 1, 9400, &stop).remove(0);
    let b = process(&transport, 1, 9410, &stop).remove(0);
    assert_ne!(
        crate::ids::failure_domain(&a.id),
        crate::ids::failure_domain(&b.id)
    );
    let _serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, addr(b.port));
    write_is_not_acknowledged(&a, &b).await;
    assert_eq!(
        transport.calls_to(&addr(b.port)),
        1,
        "sent through the transport"
    );
    assert_eq!(b.metrics.replication_received_memory.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_peer_not_serving_in_this_process_is_sent_through_the_transport() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(&transport, 2, 9400, &stop);
    let (a, b) = (&nodes[0], &nodes[1]);
    // Not registered: the batch goes through the transport, to an address where nobody
    // answers.
    a.replicator.add_peer(&b.id, addr(b.port));
    let _serving = b.registry().register(b);
    write_is_not_acknowledged(a, b).await;
    assert_eq!(
        transport.calls_to(&addr(b.port)),
        1,
        "sent through the transport"
    );
    assert_eq!(b.metrics.replication_received_memory.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_write_reaches_every_node_of_another_process_through_one_call() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(&transport, 1, 9400, &stop).remove(0);
    let b = process(&transport, 3, 9410, &stop);
    let (_serving, addrs) = serve_all(&transport, &b);
    for (n, addr) in b.iter().zip(&addrs) {
        a.replicator.add_peer(&n.id, addr.clone());
    }
    let calls = |addr: &String| transport.calls_to(addr);
    for i in 1..=5u64 {
        let key = format!("k{i}");
        let out = a
            .put(key.clone(), Bytes::from_static(b"v"), 60)
            .await
            .unwrap();
        assert_eq!((out.acks, out.quorum), (4, 2), "every node of b counted");
        assert!(
            b.iter().all(|n| n.store.get(&key).is_some()),
            "all hold {key}"
        );
        // One call per write for the whole process, the rest in memory.
        let memory = |m: &Metrics| m.replication_received_memory.get();
        assert_eq!(addrs.iter().map(calls).sum::<u64>(), i);
        assert_eq!(sum(&b, memory), 2 * i);
        assert_eq!(sum(&b, |m| m.relay_batches.get()), i);
        assert_eq!(sum(&b, |m| m.relay_entries.get()), i);
    }
    // Always the same relay: the first of a's order.
    let relay = &relay_order_of(&a, &b)[0];
    for (n, addr) in b.iter().zip(&addrs) {
        let expected = if &n.id == relay { 5 } else { 0 };
        assert_eq!(calls(addr), expected, "{}", n.id);
    }
    // Calls of the in-memory transport are no HTTP arrivals.
    assert_eq!(sum(&b, |m| m.replication_received_http.get()), 0);
    assert_eq!(a.metrics.replication_batches.get(), 5);
    assert_eq!(a.metrics.relay_failovers.get(), 0);
    assert_eq!(a.metrics.replication_failures.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_relay_that_is_down_or_broken_makes_the_batch_go_to_the_next_node() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(&transport, 1, 9400, &stop).remove(0);
    let b = process(&transport, 3, 9410, &stop);
    let (_serving, addrs) = serve_all(&transport, &b);
    let order = relay_order_of(&a, &b);
    let at = |id: &String| &addrs[b.iter().position(|n| &n.id == id).unwrap()];
    // The first relay is unreachable, the second breaks the connection, the third works.
    transport.set_fault(at(&order[0]), Some(Fault::Refuse));
    transport.set_fault(at(&order[1]), Some(Fault::Break));
    for (n, addr) in b.iter().zip(&addrs) {
        a.replicator.add_peer(&n.id, addr.clone());
    }
    let out = a
        .put("k1".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 4, "the third node relayed to the other two");
    assert!(b.iter().all(|n| n.store.get("k1").is_some()));
    assert_eq!(a.metrics.relay_failovers.get(), 2);
    assert_eq!(a.metrics.replication_failures.get(), 0);
    // The next batch goes straight to the relay that worked.
    let out = a
        .put("k2".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 4);
    assert_eq!(a.metrics.relay_failovers.get(), 2);
    assert_eq!(sum(&b, |m| m.relay_batches.get()), 2);
    let calls: Vec<u64> = order.iter().map(|id| transport.calls_to(at(id))).collect();
    assert_eq!(calls, [1, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn an_acknowledgement_counts_only_known_nodes_that_hold_the_write() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(&transport, 1, 9400, &stop).remove(0);
    // b1 and b4 serve; b2 is registered but no longer takes batches (as while it shuts
    // down); b3 never served. a does not know b4 yet.
    let b = process(&transport, 4, 9410, &stop);
    let _serving = [&b[0], &b[1], &b[3]].map(|n| n.registry().register(n));
    b[1].set_serving(false);
    let relay = reach(&transport, &b[0]);
    a.replicator.add_peer(&b[0].id, relay);
    for n in &b[1..3] {
        a.replicator.add_peer(&n.id, addr(n.port));
    }
    // b1 relays (the others cannot be reached); of the three known nodes only it holds
    // the write.
    let out = a
        .put("k1".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    assert_eq!(out.acks, 2, "a and b1 only");
    assert!(b[0].store.get("k1").is_some());
    assert!(b[1].store.get("k1").is_none());
    assert!(b[2].store.get("k1").is_none());
    // The node a does not know got it too (it serves in b's process), uncounted.
    assert!(b[3].store.get("k1").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_process_of_an_older_version_gets_plain_batches_on_every_node() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(&transport, 1, 9400, &stop).remove(0);
    let b = process(&transport, 2, 9410, &stop);
    let relays = Arc::new(AtomicUsize::new(0));
    let plain = Arc::new(AtomicUsize::new(0));
    let mut olds = Vec::new();
    for n in &b {
        let (relays, plain) = (relays.clone(), plain.clone());
        // Knows plain batches only, and refuses the unknown kind with 400.
        let old = Scripted::new(move |_: &str, m| match m {
            Message::Replicate(es) => {
                plain.fetch_add(1, Ordering::SeqCst);
                Ok(Message::Ack(es.len() as u32))
            }
            _ => {
                relays.fetch_add(1, Ordering::SeqCst);
                Err(StatusCode::BAD_REQUEST)
            }
        });
        place(&transport, &addr(n.port), &old);
        olds.push(old);
        a.replicator.add_peer(&n.id, addr(n.port));
    }
    for (i, key) in ["k1", "k2"].into_iter().enumerate() {
        let out = a
            .put(key.into(), Bytes::from_static(b"v"), 60)
            .await
            .unwrap();
        assert_eq!(out.acks, 3, "both nodes of b acknowledged");
        assert_eq!(plain.load(Ordering::SeqCst), 2 * (i + 1));
    }
    assert_eq!(
        relays.load(Ordering::SeqCst),
        1,
        "relaying not retried at once"
    );
    assert_eq!(a.metrics.relay_failovers.get(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hung_relay_delays_only_its_own_process() {
    let transport = MemoryTransport::new();
    let (_stop_tx, stop) = watch::channel(false);
    let (a, _, _serving_a) = process_over(&transport, 1, 9300, &stop);
    let (b, addrs_b, _serving_b) = process_over(&transport, 2, 9310, &stop);
    let (c, addrs_c, _serving_c) = process_over(&transport, 2, 9320, &stop);
    let a = &a[0];
    let ids: Vec<String> = b.iter().map(|n| n.id.clone()).collect();
    let first = &Replicator::relay_order(&a.id, &ids)[0];
    let hung = b.iter().position(|n| &n.id == first).unwrap();
    transport.set_fault(&addrs_b[hung], Some(Fault::Hang));
    for (n, addr) in b.iter().zip(&addrs_b).chain(c.iter().zip(&addrs_c)) {
        a.replicator.add_peer(&n.id, addr.clone());
    }
    let started = Instant::now();
    let out = a
        .put("k1".into(), Bytes::from_static(b"v"), 60)
        .await
        .unwrap();
    // c acknowledged (quorum of 5 nodes: 3) while b's relay hangs.
    assert!(out.acks >= 3 && out.durable(), "{out:?}");
    assert!(
        started.elapsed() < BATCH_TIMEOUT,
        "the write waited for the hung relay"
    );
    assert_eq!(a.metrics.relay_failovers.get(), 0);
    assert!(c.iter().all(|n| n.store.get("k1").is_some()));
    // After the relay's timeout, the batch goes to b's other node, which hands it on.
    wait_until(4 * BATCH_TIMEOUT, "b got the write", || {
        b.iter().all(|n| n.store.get("k1").is_some())
    })
    .await;
    assert!(started.elapsed() >= BATCH_TIMEOUT);
    assert_eq!(a.metrics.relay_failovers.get(), 1);
}
