//! Acknowledgement counting, and the replicator's links and relaying over the in-memory
//! transport on paused time, with stand-in peers.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::metrics::Metrics;
use crate::transport::memory::{Handler, Scripted};
use crate::transport::MemoryTransport;
use crate::transport::PeerClient;
use crate::wire::{Entry, Message};
use bytes::Bytes;

#[tokio::test]
async fn a_token_for_several_peers_counts_at_most_its_peers() {
    let acks = Acks::new();
    let far = Instant::now() + Duration::from_secs(5);
    acks.tokens(3).ack_some(5, true);
    assert_eq!(acks.wait(10, true, far).await, 3);
    let acks = Acks::new();
    acks.tokens(3).ack_some(0, true);
    assert_eq!(acks.wait(1, false, far).await, 0, "done, nothing counted");
    let acks = Acks::new();
    acks.tokens(2).ack_some(1, false);
    acks.token().ack(true);
    assert_eq!(acks.wait(10, true, far).await, 2);
}

/// Hand out `sent.len()` tokens plus `silent` more, acknowledge with the first ones
/// (true: from another domain), drop all, and wait for `needed`.
async fn acks(sent: &[bool], needed: usize, other: bool) -> usize {
    let acks = Acks::new();
    let tokens: Vec<_> = sent.iter().map(|s| (acks.token(), *s)).collect();
    let silent = acks.token();
    let wait = acks.wait(needed, other, Instant::now() + Duration::from_secs(1));
    tokio::pin!(wait);
    // Nothing yet, one peer may still answer: the wait goes on.
    assert!(futures::poll!(wait.as_mut()).is_pending());
    for (token, remote) in tokens {
        token.ack(remote);
    }
    drop(silent);
    wait.await
}

#[tokio::test]
async fn quorum_counts_acks_and_stops_when_every_peer_is_done() {
    assert_eq!(acks(&[false], 1, false).await, 1);
    assert_eq!(acks(&[false, false, false], 2, false).await, 3);
    assert_eq!(acks(&[], 1, false).await, 0);
    assert_eq!(acks(&[false], 2, false).await, 1);
}

#[tokio::test]
async fn a_quorum_inside_one_process_is_not_enough_when_others_are_alive() {
    // Two local acks but none from another process: reported as short of quorum.
    assert_eq!(acks(&[false, false], 1, true).await, 0);
    assert_eq!(acks(&[false, false, true], 1, true).await, 3);
    assert_eq!(acks(&[true], 1, true).await, 1);
}

#[tokio::test]
async fn the_wait_ends_at_the_quorum_while_other_peers_are_still_pending() {
    let acks = Acks::new();
    let (a, _b, _c) = (acks.token(), acks.token(), acks.token());
    let acker = tokio::spawn(async move { a.ack(false) });
    let got = tokio::time::timeout(
        Duration::from_secs(5),
        acks.wait(1, false, Instant::now() + Duration::from_secs(5)),
    )
    .await
    .expect("returns at the quorum, not at the deadline");
    assert_eq!(got, 1);
    acker.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_the_wait() {
    let acks = Acks::new();
    let token = acks.token();
    let got = acks
        .wait(1, false, Instant::now() + Duration::from_millis(50))
        .await;
    assert_eq!(got, 0);
    drop(token);
}

/// The ids of `n` nodes of one new process (failure domain).
fn process_ids(n: usize) -> Vec<String> {
    let tag = crate::ids::new_process_tag();
    (1..=n).map(|i| crate::ids::node_id(i, &tag, 0)).collect()
}

/// The replicator of a node alone in a new process, calling peers through `transport`.
fn replicator(transport: &Arc<MemoryTransport>) -> Replicator {
    let id = process_ids(1).remove(0);
    let client = PeerClient::over(transport.clone());
    let nobody_here: LocalReplicas = Arc::new(|_: &str| None);
    let store = crate::store::Store::new(1 << 20);
    Replicator::new(&id, client, Arc::new(Metrics::new()), nobody_here, store)
}

/// Put `peer` at `addr` in `transport`.
fn place(transport: &MemoryTransport, addr: &str, peer: &Arc<impl Handler + 'static>) {
    let peer: Arc<dyn Handler> = peer.clone();
    transport.add(addr, Arc::downgrade(&peer));
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

#[test]
fn writers_spread_the_relaying_over_the_nodes_of_a_process() {
    let b = process_ids(3);
    // Over many writers, every node of b is somebody's first relay.
    let mut firsts = HashSet::new();
    for _ in 0..16 {
        let writer = process_ids(1).remove(0);
        let order = Replicator::relay_order(&writer, &b);
        assert_eq!(order, Replicator::relay_order(&writer, &b), "stable");
        assert_eq!(order.len(), 3);
        firsts.insert(order[0].clone());
    }
    assert!(firsts.len() >= 2, "{firsts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_relay_answer_never_counts_more_than_the_known_nodes_it_names() {
    let transport = MemoryTransport::new();
    let a = replicator(&transport);
    let b = process_ids(3);
    // Names b1 three times, b2 once, and nodes a does not know: counted as 2.
    let named = vec![
        b[0].clone(),
        b[0].clone(),
        b[0].clone(),
        b[1].clone(),
        "flux-node-9-zzzzzz".to_string(),
        a.id.clone(),
    ];
    let liar = Scripted::new(move |_: &str, _| Ok(Message::Holders(named.clone())));
    place(&transport, "127.0.0.1:9501", &liar);
    for id in &b {
        a.add_peer(id, "127.0.0.1:9501".into());
    }
    let acks = Acks::new();
    let entry = test_entry();
    let fanout = a.broadcast(entry.clone(), Some(&acks));
    assert_eq!(fanout.peers, 3);
    let far = Instant::now() + Duration::from_secs(5);
    assert_eq!(acks.wait(3, true, far).await, 2, "b1 and b2, once each");

    // An answer naming no known node counts as a failed relay, then as a failed batch.
    let a2 = replicator(&transport);
    let stranger =
        Scripted::new(|_: &str, _| Ok(Message::Holders(vec!["flux-node-9-zzzzzz".into()])));
    place(&transport, "127.0.0.1:9502", &stranger);
    for id in &b {
        a2.add_peer(id, "127.0.0.1:9502".into());
    }
    let acks = Acks::new();
    a2.broadcast(entry.clone(), Some(&acks));
    assert_eq!(acks.wait(1, true, far).await, 0);
    assert_eq!(a2.metrics.relay_failovers.get(), 2, "every node tried");
    assert_eq!(a2.metrics.replication_failures.get(), 1);
    assert_eq!(transport.calls_to("127.0.0.1:9502"), 3);

    // A plain acknowledgement is no answer to a relay request.
    let a3 = replicator(&transport);
    let old = Scripted::new(|_: &str, _| Ok(Message::Ack(1)));
    place(&transport, "127.0.0.1:9503", &old);
    a3.add_peer(&b[0], "127.0.0.1:9503".into());
    let acks = Acks::new();
    a3.broadcast(entry, Some(&acks));
    assert_eq!(acks.wait(1, true, far).await, 0);
    assert_eq!(a3.metrics.replication_failures.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_nodes_of_a_process_share_one_link_that_follows_membership() {
    // Nobody is at any address: the batches fail, which this test does not look at.
    let transport = MemoryTransport::new();
    let a = replicator(&transport);
    let (b, c) = (process_ids(2), process_ids(1));
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
    for (i, id) in b.iter().chain(&c).enumerate() {
        a.add_peer(id, format!("127.0.0.1:{}", 9600 + i));
    }
    a.add_peer(&b[0], "127.0.0.1:9600".into()); // again: still one node
    assert_eq!(links(&a), (0, 2));
    assert_eq!(a.broadcast(entry.clone(), None), fanout(3, 3, true));
    a.remove_peer(&b[0]);
    assert_eq!(links(&a), (0, 2));
    assert_eq!(a.broadcast(entry.clone(), None), fanout(2, 2, true));
    // The last node of a process takes its link along.
    a.remove_peer(&b[1]);
    a.remove_peer(&b[1]);
    assert_eq!(links(&a), (0, 1));
    a.remove_peer(&c[0]);
    assert_eq!(links(&a), (0, 0));
    assert!(!a.has_peers());
    assert_eq!(a.broadcast(entry, None), Fanout::default());
}
