//! Catch-up against the real binary: a process that starts late, restarts one after
//! another, a paused process. No client ever sees 404 for a key the cluster holds, and
//! no acknowledged write is lost.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use hyper::Method;

/// `n` keys written over `ports` (each answered 201): their names.
async fn write_keys(ports: &[u16], prefix: &str, n: usize) -> Vec<String> {
    let keys: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    let results: Vec<u16> = futures::stream::iter(keys.iter().enumerate())
        .map(|(i, k)| {
            let url = format!(
                "http://127.0.0.1:{}/data/{k}?ttl=600",
                ports[i % ports.len()]
            );
            async move {
                request(Method::PUT, &url, Bytes::from(format!("v-{k}")), &[])
                    .await
                    .map_or(0, |r| r.status)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let created = results.iter().filter(|&&s| s == 201).count();
    assert_eq!(created, n, "every write acknowledged: {created} of {n}");
    keys
}

/// Number of keys the node on `port` holds.
async fn key_count(port: u16) -> u64 {
    get(&format!("http://127.0.0.1:{port}/status"))
        .await
        .and_then(|r| r.json()["keys"].as_u64())
        .unwrap_or(0)
}

async fn is_ready(port: u16) -> bool {
    get(&format!("http://127.0.0.1:{port}/ready"))
        .await
        .is_some_and(|r| r.status == 200)
}

async fn all_ready(ports: &[u16]) -> bool {
    for &p in ports {
        if !is_ready(p).await {
            return false;
        }
    }
    true
}

/// Wait until no node of `ports` has replication batches queued.
async fn queues_drained(ports: &[u16]) {
    wait_until(
        Duration::from_secs(30),
        "replication queues empty",
        || async {
            for &p in ports {
                if metric(p, "repram_replication_queue").await != 0.0 {
                    return false;
                }
            }
            true
        },
    )
    .await;
}

/// Read every key once on every node of `ports` (a key that gets no answer at all, as
/// before the node listens, is asked again): the (port, key, status) of every answer
/// other than 200.
async fn first_answers(ports: &[u16], keys: &[String]) -> Vec<(u16, String, u16)> {
    let asks = ports
        .iter()
        .flat_map(|&p| keys.iter().map(move |k| (p, k.clone())));
    futures::stream::iter(asks)
        .map(|(port, key)| async move {
            let url = format!("http://127.0.0.1:{port}/data/{key}");
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(r) = get(&url).await {
                    return (port, key, r.status);
                }
                assert!(std::time::Instant::now() < deadline, "no answer from {url}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .buffer_unordered(24)
        .filter(|(_, _, status)| std::future::ready(*status != 200))
        .collect()
        .await
}

fn summary(bad: &[(u16, String, u16)]) -> String {
    let not_found = bad.iter().filter(|b| b.2 == 404).count();
    format!(
        "{} answers other than 200 ({not_found} of them 404); first: {:?}",
        bad.len(),
        bad.iter().take(5).collect::<Vec<_>>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_process_serves_every_existing_key_from_its_first_answer() {
    const N: usize = 2_000;
    let base = free_range(6);
    let a = Process::start(&env_for(base, 6, 3));
    let pa = a.claimed_ports(3).await;
    wait_until(Duration::from_secs(20), "first process meshed", || {
        full_mesh(&pa)
    })
    .await;
    let keys = write_keys(&pa, "late", N).await;
    wait_until(
        Duration::from_secs(30),
        "first process holds every key",
        || async {
            for &p in &pa {
                if key_count(p).await != N as u64 {
                    return false;
                }
            }
            true
        },
    )
    .await;

    // A key whose metadata the late process must give as the origin set it.
    let put = request(
        Method::PUT,
        &format!("http://127.0.0.1:{}/data/ttl-probe?ttl=600", pa[0]),
        Bytes::from_static(b"t"),
        &[],
    )
    .await
    .expect("put");
    assert_eq!(put.status, 201);
    let origin = get(&format!("http://127.0.0.1:{}/data/ttl-probe", pa[1]))
        .await
        .expect("answer");
    assert_eq!(origin.status, 200);

    let b = Process::start(&env_for(base, 6, 3));
    let pb = b.claimed_ports(3).await;
    let probe = format!("http://127.0.0.1:{}/data/ttl-probe", pb[2]);
    let first = loop {
        if let Some(r) = get(&probe).await {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        first.status, 200,
        "first read of ttl-probe on the late process"
    );
    for h in ["x-created-at", "x-original-ttl"] {
        assert_eq!(first.header(h), origin.header(h), "{h}");
    }
    let remaining = |r: &Reply| -> u64 {
        r.header("x-remaining-ttl")
            .and_then(|v| v.parse().ok())
            .expect("X-Remaining-TTL")
    };
    assert!(remaining(&first) <= remaining(&origin));
    let bad = first_answers(&pb, &keys).await;
    let mut read_through = 0.0;
    for &p in &pb {
        read_through += metric(p, "repram_read_throughs_total").await;
    }
    eprintln!("reads answered through a peer during catch-up: {read_through}");
    assert!(
        bad.is_empty(),
        "reads of existing keys on the late process: {}",
        summary(&bad)
    );
    wait_until(Duration::from_secs(20), "late process ready", || {
        all_ready(&pb)
    })
    .await;
    for &p in &pb {
        assert_eq!(
            key_count(p).await,
            N as u64 + 1,
            "keys held on port {p} once ready (with ttl-probe)"
        );
    }
    drop(a);
}

/// A writer PUTting unique keys to the ports in `targets` until `stop`: the keys
/// acknowledged with 201.
fn writer(
    targets: Arc<Mutex<Vec<u16>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut i = 0u64;
        while !stop.load(Ordering::Acquire) {
            let ports = targets.lock().unwrap().clone();
            if ports.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            let key = format!("w-{i}");
            let port = ports[i as usize % ports.len()];
            i += 1;
            let url = format!("http://127.0.0.1:{port}/data/{key}?ttl=600");
            if let Some(r) = request(Method::PUT, &url, Bytes::from_static(b"v"), &[]).await {
                if r.status == 201 {
                    acked.push(key);
                }
            }
        }
        acked
    })
}

/// Three processes of two nodes each on one range of six ports, meshed.
async fn three_processes(base: u16) -> (Vec<Process>, Vec<Vec<u16>>) {
    let mut procs = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..3 {
        let p = Process::start(&env_for(base, 6, 2));
        ports.push(p.claimed_ports(2).await);
        procs.push(p);
    }
    let all: Vec<u16> = ports.iter().flatten().copied().collect();
    wait_until(Duration::from_secs(30), "6-node mesh", || full_mesh(&all)).await;
    wait_until(Duration::from_secs(30), "every node ready", || {
        all_ready(&all)
    })
    .await;
    (procs, ports)
}

/// Every key of `acked` on every node of `ports`, at the first read.
async fn assert_all_readable(ports: &[u16], acked: &[String], what: &str) {
    queues_drained(ports).await;
    let bad = first_answers(ports, acked).await;
    let misses: HashSet<&String> = bad.iter().map(|b| &b.1).collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} acknowledged writes not readable everywhere; {}",
        misses.len(),
        acked.len(),
        summary(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_under_a_writer_loses_no_acknowledged_write() {
    let base = free_range(6);
    let (mut procs, mut ports) = three_processes(base).await;
    let targets = Arc::new(Mutex::new(ports.iter().flatten().copied().collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(targets.clone(), stop.clone());
    // Some data before the first restart.
    wait_until(Duration::from_secs(30), "writes flowing", || async {
        metric(ports[0][0], "repram_keys").await >= 200.0
    })
    .await;
    for i in 0..3 {
        let old: Vec<u16> = ports[i].clone();
        targets.lock().unwrap().retain(|p| !old.contains(p));
        procs[i].signal("TERM");
        assert_eq!(procs[i].wait_exit(Duration::from_secs(10)), Some(0));
        let fresh = Process::start(&env_for(base, 6, 2));
        let fresh_ports = fresh.claimed_ports(2).await;
        wait_until(Duration::from_secs(30), "replacement ready", || {
            all_ready(&fresh_ports)
        })
        .await;
        procs[i] = fresh;
        ports[i] = fresh_ports.clone();
        targets.lock().unwrap().extend(fresh_ports);
    }
    stop.store(true, Ordering::Release);
    let acked = w.await.expect("writer");
    assert!(
        acked.len() >= 200,
        "only {} writes acknowledged",
        acked.len()
    );
    let all: Vec<u16> = ports.iter().flatten().copied().collect();
    assert_all_readable(&all, &acked, "after a rolling restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_process_catches_up_before_it_is_ready_again() {
    let base = free_range(6);
    let (procs, ports) = three_processes(base).await;
    let others: Vec<u16> = [&ports[0], &ports[2]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    let targets = Arc::new(Mutex::new(others.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(targets.clone(), stop.clone());
    procs[1].signal("STOP");
    // Until the others have declared it dead, and then some writes more.
    wait_until(
        Duration::from_secs(60),
        "paused nodes declared dead",
        || async {
            peer_ports(ports[0][0])
                .await
                .is_some_and(|seen| !seen.contains(&ports[1][0]) && !seen.contains(&ports[1][1]))
        },
    )
    .await;
    let before = metric(ports[0][0], "repram_keys").await;
    wait_until(Duration::from_secs(30), "writes while paused", || async {
        metric(ports[0][0], "repram_keys").await >= before + 200.0
    })
    .await;
    procs[1].signal("CONT");
    // Not ready on its first answer after the pause, ready once caught up.
    wait_until(
        Duration::from_secs(30),
        "paused process ready again",
        || all_ready(&ports[1]),
    )
    .await;
    stop.store(true, Ordering::Release);
    let acked = w.await.expect("writer");
    let all: Vec<u16> = ports.iter().flatten().copied().collect();
    assert_all_readable(&all, &acked, "after a pause").await;
}
