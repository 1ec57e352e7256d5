//! Faults with real binaries: a process frozen with SIGSTOP (a stalled container, a long
//! GC-like pause) is evicted, the survivors keep accepting writes, and after SIGCONT the
//! frozen nodes rejoin the mesh and catch up on every write they missed.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use hyper::Method;

use common::*;

/// How long process B stays stopped.
const STOP: Duration = Duration::from_secs(10);
/// Keys written before the stop.
const BEFORE: usize = 200;

/// `(key, value)` answers 200 with exactly `value` on the node on `port`.
async fn holds(port: u16, key: &str, value: &str) -> bool {
    get(&format!("http://127.0.0.1:{port}/data/{key}"))
        .await
        .is_some_and(|r| r.status == 200 && r.text() == value)
}

/// The `(key, value)` pairs of `pairs` that some node of `ports` does not serve.
async fn missing_on(ports: &[u16], pairs: &[(String, String)]) -> Vec<(u16, String)> {
    let checks = ports
        .iter()
        .flat_map(|&p| pairs.iter().map(move |(k, v)| (p, k.clone(), v.clone())));
    futures::stream::iter(checks)
        .map(|(p, k, v)| async move { (!holds(p, &k, &v).await).then_some((p, k)) })
        .buffer_unordered(32)
        .filter_map(|m| async move { m })
        .collect()
        .await
}

async fn put_status(port: u16, key: &str, value: &str) -> Option<u16> {
    put(port, key, value).await.map(|a| a.status)
}

/// A PUT's answer: its status, the node that answered it, and when (wall clock, as
/// the nodes' log lines are stamped).
#[derive(Debug)]
struct Answer {
    status: u16,
    node: String,
    at: SystemTime,
}

async fn put(port: u16, key: &str, value: &str) -> Option<Answer> {
    let url = format!("http://127.0.0.1:{port}/data/{key}?ttl=600");
    let r = request(Method::PUT, &url, Bytes::from(value.to_string()), &[]).await?;
    let at = SystemTime::now();
    let node = match r.status {
        201 | 202 => r.json()["node_id"].as_str().unwrap_or_default().to_string(),
        _ => String::new(),
    };
    Some(Answer {
        status: r.status,
        node,
        at,
    })
}

/// Whether `node` counted `peer` for its quorum at `at`, from the membership lines of
/// `log` (text format: time first, then the message and its fields): a peer is counted
/// from "peer joined" or "suspected peer is alive" until "peer suspected", "peer
/// declared dead" or "peer left" (those take it out of the writes' quorum), and counted
/// when no line names it yet (it was in the mesh before). Returns the last such line.
fn counted_at(log: &str, node: &str, peer: &str, at: SystemTime) -> (bool, Option<String>) {
    let (node_field, peer_field) = (format!(" node={node} "), format!(" peer={peer} "));
    let mut last = (true, None);
    for line in log.lines() {
        if !line.contains(&node_field) || !line.contains(&peer_field) {
            continue;
        }
        let counted = if line.contains("peer joined") || line.contains("suspected peer is alive") {
            true
        } else if line.contains("peer suspected")
            || line.contains("peer declared dead")
            || line.contains("peer left")
        {
            false
        } else {
            continue;
        };
        let stamp = line.split_whitespace().next().unwrap_or_default();
        let when = humantime::parse_rfc3339(stamp)
            .unwrap_or_else(|e| panic!("log line without a time ({e}): {line}"));
        if when > at {
            break;
        }
        last = (counted, Some(line.to_string()));
    }
    last
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; the time it took, or a
/// panic naming `what`.
async fn time_until<F, Fut>(limit: Duration, what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    loop {
        if cond().await {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < limit, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stopped_process_is_evicted_then_rejoins_and_catches_up() {
    let base = free_range(6);
    let (a, mut b, pa, pb) = two_meshed_processes(base, Duration::from_secs(10)).await;
    let all: Vec<u16> = pa.iter().chain(&pb).copied().collect();

    // Data on every node before the fault.
    let before: Vec<(String, String)> = (0..BEFORE)
        .map(|i| (format!("before-{i}"), format!("b{i}")))
        .collect();
    for (i, (k, v)) in before.iter().enumerate() {
        let status = put_status(pa[i % 3], k, v).await;
        assert_eq!(status, Some(201), "PUT {k} before the stop");
    }
    let m = missing_on(&all, &before).await;
    assert!(m.is_empty(), "201 writes not yet everywhere: {m:?}");

    let mut b_ids = Vec::new();
    for &p in &pb {
        let status = get(&format!("http://127.0.0.1:{p}/status"))
            .await
            .expect("B's /status");
        b_ids.push(
            status.json()["node_id"]
                .as_str()
                .expect("node_id")
                .to_string(),
        );
    }

    // Freeze B. A's nodes must evict all of B's nodes while B is stopped.
    b.signal("STOP");
    let stopped_at = Instant::now();

    // Writes to A during the whole stop, one every 50 ms round robin over A's nodes, each
    // in its own task (a write short of its quorum waits for the write timeout); every
    // answer is kept with the time the write was sent.
    let writer = {
        let pa = pa.clone();
        tokio::spawn(async move {
            let mut writes = Vec::new();
            for i in 0..1_000usize {
                let sent = stopped_at.elapsed();
                if sent >= STOP - Duration::from_millis(500) {
                    break;
                }
                let (k, v, port) = (format!("during-{i}"), format!("d{i}"), pa[i % 3]);
                writes.push(tokio::spawn(async move {
                    let answer = put(port, &k, &v).await;
                    (sent, k, v, answer)
                }));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let mut done = Vec::new();
            for w in writes {
                done.push(w.await.expect("write task"));
            }
            done
        })
    };

    let evicted = time_until(
        STOP - Duration::from_millis(500),
        "A's nodes evict every node of the stopped process B",
        || full_mesh(&pa),
    )
    .await;
    eprintln!("faults: B's 3 nodes evicted by all of A's nodes {evicted:?} after SIGSTOP");

    let written = writer.await.expect("writer task");
    let status = |a: &Option<Answer>| a.as_ref().map(|a| a.status);
    let refused: Vec<_> = written
        .iter()
        .filter(|(_, _, _, a)| !matches!(status(a), Some(201) | Some(202)))
        .collect();
    assert!(
        refused.is_empty(),
        "writes to A refused during the stop: {refused:?}"
    );
    let late_202: Vec<_> = written
        .iter()
        .filter(|(sent, _, _, a)| *sent > evicted && status(a) != Some(201))
        .collect();
    assert!(
        late_202.is_empty(),
        "writes after the eviction must reach their quorum (201): {late_202:?}"
    );
    // Before the eviction, a write needs a copy in B (the other failure domain) while
    // the node it was sent to counts any of B's nodes, and B, frozen, never answers: 202.
    // A 201 is right only from a node that had already taken every node of B out of its
    // quorum (suspected or dead, as its log says before the answer), e.g. one that
    // suspected B under load just before the stop.
    let log = a.log_text();
    for (sent, key, _, answer) in &written {
        let Some(answer) = answer
            .as_ref()
            .filter(|a| a.status == 201 && *sent < evicted)
        else {
            continue;
        };
        for b in &b_ids {
            if let (true, line) = counted_at(&log, &answer.node, b, answer.at) {
                panic!(
                    "{key}, sent {sent:?} after SIGSTOP, was answered 201 by {} while it still \
                     counted B's node {b} (its last line on it before the answer: {line:?})",
                    answer.node
                );
            }
        }
    }
    // The 202 path must have been taken, not merely allowed.
    let waited = written
        .iter()
        .filter(|(sent, _, _, a)| *sent < evicted && status(a) == Some(202))
        .count();
    assert!(
        waited > 0,
        "no write sent before the eviction ({evicted:?}) was answered 202: {:?}",
        &written[..written.len().min(5)]
    );
    let created = written.iter().filter(|w| status(&w.3) == Some(201)).count();
    eprintln!(
        "faults: {} writes to A during the stop: {created} answered 201, {} answered 202 \
         (sent before the eviction, waiting for B)",
        written.len(),
        written.len() - created
    );
    assert!(written.len() >= 100, "too few writes during the stop");
    let during: Vec<(String, String)> = written.into_iter().map(|(_, k, v, _)| (k, v)).collect();
    let m = missing_on(&pa, &during).await;
    assert!(m.is_empty(), "writes during the stop missing on A: {m:?}");

    // Keep B stopped for the whole STOP, then thaw it.
    if let Some(rest) = STOP.checked_sub(stopped_at.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    b.signal("CONT");
    let thawed = Instant::now();

    let rejoin = time_until(
        Duration::from_secs(20),
        "every node of A and B sees the full 6-node mesh again after SIGCONT",
        || full_mesh(&all),
    )
    .await;
    eprintln!("faults: full 6-node mesh again {rejoin:?} after SIGCONT");

    let last_missing = Arc::new(Mutex::new(Vec::new()));
    let caught_up = {
        let (pb, during, last) = (pb.clone(), during.clone(), last_missing.clone());
        tokio::time::timeout(Duration::from_secs(20), async move {
            loop {
                let m = missing_on(&pb, &during).await;
                let done = m.is_empty();
                *last.lock().unwrap() = m;
                if done {
                    return thawed.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    };
    let Ok(caught_up) = caught_up else {
        let m = last_missing.lock().unwrap();
        panic!(
            "B's nodes did not catch up within 20 s after SIGCONT; {} (node, key) pairs \
             missing, e.g. {:?}",
            m.len(),
            m.iter().take(5).collect::<Vec<_>>()
        );
    };
    eprintln!(
        "faults: every one of the {} keys written during the stop readable on all of B's \
         nodes {caught_up:?} after SIGCONT",
        during.len()
    );
    let m = missing_on(&all, &before).await;
    assert!(m.is_empty(), "keys written before the stop lost: {m:?}");
    // A stopped process still completes TCP handshakes (the kernel does), so B was
    // evicted through timeouts and suspicion, not through refused connections.
    assert!(
        a.log_text().contains("peer suspected") && a.log_text().contains("peer declared dead"),
        "A's log shows no suspicion and death of B's nodes"
    );
    assert_eq!(b.wait_exit(Duration::ZERO), None, "B exited");
}
