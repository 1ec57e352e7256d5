//! Replication between nodes of this process and over HTTP, with real nodes and servers
//! (here because they compose node and HTTP server, as the supervisor does).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use tokio::time::Instant;

use crate::config::Config;
use crate::http::Server;
use crate::local::Registration;
use crate::metrics::Metrics;
use crate::node::{Node, ProcessWide, Tuning};
use crate::replication::{Acks, Fanout, Replicator};
use crate::runtime::Dispatch;
use crate::wire::{Entry, Message};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// An address where nothing listens: any HTTP batch sent there fails.
fn closed_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    format!("127.0.0.1:{port}")
}

/// `n` nodes of one process (not serving HTTP, not registered).
fn process(n: usize, stop: &watch::Receiver<bool>) -> Vec<Arc<Node>> {
    let config = Arc::new(Config::for_test());
    let tag = crate::ids::new_process_tag();
    let process = ProcessWide::new(&config);
    (1..=n)
        .map(|index| {
            Node::serving_on(
                process.clone(),
                crate::ids::node_id(index, &tag, 0),
                index,
                0,
                config.clone(),
                Tuning::default(),
                stop.clone(),
            )
        })
        .collect()
}

/// Two nodes of one process (not serving HTTP); `a` replicates to `b`.
fn pair(stop: &watch::Receiver<bool>) -> (Arc<Node>, Arc<Node>) {
    let mut nodes = process(2, stop);
    let b = nodes.pop().unwrap();
    (nodes.pop().unwrap(), b)
}

/// Serve `node`'s HTTP routes on a fresh loopback port until the test ends: its address.
async fn serve(node: &Arc<Node>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (server, node) = (Server::new(&node.config, Dispatch::default()), node.clone());
    tokio::spawn(async move { server.serve(node, listener, async {}).await });
    addr
}

/// Register every node as serving in this process and serve its HTTP routes: the
/// registrations and the nodes' addresses.
async fn serve_all(nodes: &[Arc<Node>]) -> (Vec<Registration<Node>>, Vec<String>) {
    let mut regs = Vec::new();
    let mut addrs = Vec::new();
    for n in nodes {
        regs.push(n.registry().register(n));
        addrs.push(serve(n).await);
    }
    (regs, addrs)
}

/// A stand-in node that answers each request with `answer` of its message, or with
/// 400 when that is `None` (as a node of another version does): its address.
async fn fake_node<F>(answer: F) -> String
where
    F: Fn(Message) -> Option<Message> + Send + Sync + 'static,
{
    use http_body_util::{BodyExt, Full};
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = answer.clone();
            let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let answer = answer.clone();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let reply = Message::decode(body).ok().and_then(|m| answer(m));
                    let status = match reply {
                        Some(_) => StatusCode::OK,
                        None => StatusCode::BAD_REQUEST,
                    };
                    let body = reply.map(|m| m.encode()).unwrap_or_default();
                    let mut resp = hyper::Response::new(Full::new(body));
                    *resp.status_mut() = status;
                    Ok::<_, hyper::Error>(resp)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    addr
}

/// A stand-in relay that answers every request with `reply`: its address.
async fn fake_relay(reply: Message) -> String {
    fake_node(move |_| Some(reply.clone())).await
}

/// An address that accepts connections and then holds them without answering (`hang`)
/// or closes them at once: a relay that hangs or breaks.
async fn broken_relay(hang: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if hang {
                tokio::spawn(async move {
                    let _held = stream;
                    std::future::pending::<()>().await
                });
            }
        }
    });
    addr
}

/// The nodes of `others` in the order `writer` tries them as relays.
fn relay_order_of(writer: &Node, others: &[Arc<Node>]) -> Vec<String> {
    let ids: Vec<String> = others.iter().map(|n| n.id.clone()).collect();
    Replicator::relay_order(&writer.id, &ids)
}

fn test_entry() -> Arc<Entry> {
    Arc::new(Entry {
        key: "k".into(),
        value: Bytes::from_static(b"v"),
        created_ms: 1,
        expires_ms: u64::MAX,
        version: crate::clock::Version { hlc: 1, origin: 1 },
    })
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

#[tokio::test]
async fn a_peer_of_this_process_gets_writes_in_memory_without_http() {
    let (_stop_tx, stop) = watch::channel(false);
    let (a, b) = pair(&stop);
    let _serving = b.registry().register(&b);
    // Nothing listens at the address: only the in-memory path can deliver.
    a.replicator.add_peer(&b.id, closed_addr());
    let value = Bytes::from_static(b"shared value");
    let out = a.put("k1".into(), value.clone(), 60).await.unwrap();
    assert_eq!((out.acks, out.quorum), (2, 2), "b acknowledged");
    let held = b.store.get("k1").expect("b holds the write");
    assert_eq!(held.value, value);
    assert_eq!(
        held.value.as_ptr(),
        value.as_ptr(),
        "the value is shared, not copied"
    );
    assert_eq!(b.metrics.replication_received_memory.get(), 1);
    assert_eq!(b.metrics.replication_received_http.get(), 0);
    assert_eq!(b.metrics.entries_applied.get(), 1);
    assert_eq!(a.metrics.replication_entries.get(), 1);
    assert_eq!(a.metrics.replication_failures.get(), 0);
}

#[tokio::test]
async fn the_peers_of_this_process_share_one_queue_and_each_acknowledges_what_it_holds() {
    let (_stop_tx, stop) = watch::channel(false);
    let nodes = process(4, &stop);
    let (a, peers) = (&nodes[0], &nodes[1..]);
    let mut serving: Vec<_> = peers.iter().map(|p| p.registry().register(p)).collect();
    for p in peers {
        a.replicator.add_peer(&p.id, closed_addr());
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
#[tokio::test]
async fn each_writing_thread_delivers_to_this_process_on_its_own_runtime() {
    let (_stop_tx, stop) = watch::channel(false);
    let (a, b) = pair(&stop);
    let _serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, closed_addr());
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

#[tokio::test]
async fn a_peer_that_stopped_serving_does_not_acknowledge() {
    let (_stop_tx, stop) = watch::channel(false);
    let (a, b) = pair(&stop);
    let serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, closed_addr());
    drop(serving);
    assert!(b.registry().lookup(&b.id).is_none(), "unregistered");
    write_is_not_acknowledged(&a, &b).await;
    assert_eq!(b.metrics.replication_received_memory.get(), 0);
}

#[tokio::test]
async fn a_peer_that_is_shutting_down_does_not_acknowledge() {
    let (stop_tx, stop) = watch::channel(false);
    let (a, b) = pair(&stop);
    let _serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, closed_addr());
    stop_tx.send(true).unwrap();
    write_is_not_acknowledged(&a, &b).await;
}

#[tokio::test]
async fn a_node_of_another_cluster_in_this_process_is_sent_http() {
    let (_stop_tx, stop) = watch::channel(false);
    let (a, _) = pair(&stop);
    let (b, _) = pair(&stop);
    assert_ne!(
        crate::ids::failure_domain(&a.id),
        crate::ids::failure_domain(&b.id)
    );
    let _serving = b.registry().register(&b);
    a.replicator.add_peer(&b.id, closed_addr());
    write_is_not_acknowledged(&a, &b).await;
}

#[tokio::test]
async fn a_peer_not_serving_in_this_process_is_sent_http() {
    let (_stop_tx, stop) = watch::channel(false);
    let (a, b) = pair(&stop);
    // Not registered: the batch goes over HTTP, to an address where nothing listens.
    a.replicator.add_peer(&b.id, closed_addr());
    let _serving = b.registry().register(&b);
    write_is_not_acknowledged(&a, &b).await;
}

#[tokio::test]
async fn a_write_reaches_every_node_of_another_process_through_one_http_request() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    let b = process(3, &stop);
    let (_serving, addrs) = serve_all(&b).await;
    for (n, addr) in b.iter().zip(&addrs) {
        a.replicator.add_peer(&n.id, addr.clone());
    }
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
        // One HTTP request per write for the whole process, the rest in memory.
        let http = |m: &Metrics| m.replication_received_http.get();
        let memory = |m: &Metrics| m.replication_received_memory.get();
        assert_eq!(sum(&b, http), i);
        assert_eq!(sum(&b, memory), 2 * i);
        assert_eq!(sum(&b, |m| m.relay_batches.get()), i);
        assert_eq!(sum(&b, |m| m.relay_entries.get()), i);
    }
    // Always the same relay: the first of a's order.
    let relay = &relay_order_of(&a, &b)[0];
    for n in &b {
        let expected = if &n.id == relay { 5 } else { 0 };
        assert_eq!(
            n.metrics.replication_received_http.get(),
            expected,
            "{}",
            n.id
        );
    }
    assert_eq!(a.metrics.replication_batches.get(), 5);
    assert_eq!(a.metrics.relay_failovers.get(), 0);
    assert_eq!(a.metrics.replication_failures.get(), 0);
}

#[tokio::test]
async fn writers_spread_the_relaying_over_the_nodes_of_a_process() {
    let (_stop_tx, stop) = watch::channel(false);
    let b = process(3, &stop);
    // Over many writers, every node of b is somebody's first relay.
    let mut firsts = HashSet::new();
    for _ in 0..16 {
        let writer = process(1, &stop).pop().unwrap();
        let order = relay_order_of(&writer, &b);
        assert_eq!(order, relay_order_of(&writer, &b), "stable");
        assert_eq!(order.len(), 3);
        firsts.insert(order[0].clone());
    }
    assert!(firsts.len() >= 2, "{firsts:?}");
}

#[tokio::test]
async fn a_relay_that_is_down_or_broken_makes_the_batch_go_to_the_next_node() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    let b = process(3, &stop);
    let (_serving, addrs) = serve_all(&b).await;
    let order = relay_order_of(&a, &b);
    // The first relay is unreachable, the second breaks the connection, the third works.
    let broken = broken_relay(false).await;
    for n in &b {
        let addr = if n.id == order[0] {
            closed_addr()
        } else if n.id == order[1] {
            broken.clone()
        } else {
            addrs[n.index - 1].clone()
        };
        a.replicator.add_peer(&n.id, addr);
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
}

#[tokio::test]
async fn an_acknowledgement_counts_only_known_nodes_that_hold_the_write() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    // b1 and b4 serve; b2 is registered but no longer takes batches (as while it shuts
    // down); b3 never served. a does not know b4 yet.
    let b = process(4, &stop);
    let _serving = [&b[0], &b[1], &b[3]].map(|n| n.registry().register(n));
    b[1].set_serving(false);
    let relay = serve(&b[0]).await;
    a.replicator.add_peer(&b[0].id, relay);
    for n in &b[1..3] {
        a.replicator.add_peer(&n.id, closed_addr());
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

#[tokio::test]
async fn a_relay_answer_never_counts_more_than_the_known_nodes_it_names() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    let b = process(3, &stop);
    let known = |i: usize| b[i].id.clone();
    // Names b1 three times, b2 once, and nodes a does not know: counted as 2.
    let liar = fake_relay(Message::Holders(vec![
        known(0),
        known(0),
        known(0),
        known(1),
        "flux-node-9-zzzzzz".into(),
        a.id.clone(),
    ]))
    .await;
    for n in &b {
        a.replicator.add_peer(&n.id, liar.clone());
    }
    let acks = Acks::new();
    let entry = test_entry();
    let fanout = a.replicator.broadcast(entry.clone(), Some(&acks));
    assert_eq!(fanout.peers, 3);
    let far = Instant::now() + Duration::from_secs(5);
    assert_eq!(acks.wait(3, true, far).await, 2, "b1 and b2, once each");

    // An answer naming no known node counts as a failed relay, then as a failed batch.
    let a2 = process(1, &stop).pop().unwrap();
    let stranger = fake_relay(Message::Holders(vec!["flux-node-9-zzzzzz".into()])).await;
    for n in &b {
        a2.replicator.add_peer(&n.id, stranger.clone());
    }
    let acks = Acks::new();
    a2.replicator.broadcast(entry.clone(), Some(&acks));
    assert_eq!(acks.wait(1, true, far).await, 0);
    assert_eq!(a2.metrics.relay_failovers.get(), 2, "every node tried");
    assert_eq!(a2.metrics.replication_failures.get(), 1);

    // A plain acknowledgement is no answer to a relay request.
    let a3 = process(1, &stop).pop().unwrap();
    let old = fake_relay(Message::Ack(1)).await;
    a3.replicator.add_peer(&b[0].id, old);
    let acks = Acks::new();
    a3.replicator.broadcast(entry, Some(&acks));
    assert_eq!(acks.wait(1, true, far).await, 0);
    assert_eq!(a3.metrics.replication_failures.get(), 1);
}

#[tokio::test]
async fn a_process_of_an_older_version_gets_plain_batches_on_every_node() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    let b = process(2, &stop);
    let relays = Arc::new(AtomicUsize::new(0));
    let plain = Arc::new(AtomicUsize::new(0));
    for n in &b {
        let (relays, plain) = (relays.clone(), plain.clone());
        // Knows plain batches only, and refuses the unknown kind with 400.
        let old = fake_node(move |m| match m {
            Message::Replicate(es) => {
                plain.fetch_add(1, Ordering::SeqCst);
                Some(Message::Ack(es.len() as u32))
            }
            _ => {
                relays.fetch_add(1, Ordering::SeqCst);
                None
            }
        })
        .await;
        a.replicator.add_peer(&n.id, old);
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

#[tokio::test]
async fn the_nodes_of_a_process_share_one_link_that_follows_membership() {
    let (_stop_tx, stop) = watch::channel(false);
    let a = process(1, &stop).pop().unwrap();
    let (b, c) = (process(2, &stop), process(1, &stop));
    let entry = test_entry();
    let fanout = |peers, queued, other_domain| Fanout {
        peers,
        queued,
        other_domain,
    };
    let links = |r: &Replicator| {
        let (_, peers, processes) = r.link_counts();
        (peers, processes)
    };
    for n in b.iter().chain(&c) {
        a.replicator.add_peer(&n.id, closed_addr());
    }
    a.replicator.add_peer(&b[0].id, closed_addr()); // again: still one node
    assert_eq!(links(&a.replicator), (0, 2));
    assert_eq!(
        a.replicator.broadcast(entry.clone(), None),
        fanout(3, 3, true)
    );
    a.replicator.remove_peer(&b[0].id);
    assert_eq!(links(&a.replicator), (0, 2));
    assert_eq!(
        a.replicator.broadcast(entry.clone(), None),
        fanout(2, 2, true)
    );
    // The last node of a process takes its link along.
    a.replicator.remove_peer(&b[1].id);
    a.replicator.remove_peer(&b[1].id);
    assert_eq!(links(&a.replicator), (0, 1));
    a.replicator.remove_peer(&c[0].id);
    assert_eq!(links(&a.replicator), (0, 0));
    assert!(!a.replicator.has_peers());
    assert_eq!(a.replicator.broadcast(entry, None), Fanout::default());
}
