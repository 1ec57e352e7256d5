//! Replication with real binaries: catch-up of a late process, durability across a
//! SIGKILL, convergence of concurrent writes, one relayed HTTP stream per process.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use hyper::Method;

use common::*;

async fn status_keys(port: u16) -> Option<u64> {
    get(&format!("http://127.0.0.1:{port}/status"))
        .await?
        .json()["keys"]
        .as_u64()
}

#[tokio::test]
async fn a_process_started_after_10k_writes_holds_all_of_them() {
    let base = free_range(4);
    let a = Process::start(&env_for(base, 4, 1));
    let pa = a.claimed_ports(1).await[0];
    wait_until(Duration::from_secs(10), "first node ready", || async move {
        get(&format!("http://127.0.0.1:{pa}/ready"))
            .await
            .is_some_and(|r| r.status == 200)
    })
    .await;
    let statuses = futures::stream::iter(0..10_000)
        .map(|i| async move {
            let url = format!("http://127.0.0.1:{pa}/data/key-{i:05}?ttl=600");
            request(Method::PUT, &url, Bytes::from(format!("value-{i}")), &[])
                .await
                .map(|r| r.status)
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert!(
        statuses.iter().all(|s| *s == Some(201)),
        "some writes failed"
    );

    let b = Process::start(&env_for(base, 4, 2));
    let pb = b.claimed_ports(2).await;
    for &p in &pb {
        wait_until(
            Duration::from_secs(20),
            "late node holds all 10k keys",
            || async move { status_keys(p).await == Some(10_000) },
        )
        .await;
        let r = get(&format!("http://127.0.0.1:{p}/data/key-04242"))
            .await
            .unwrap();
        assert_eq!(r.text(), "value-4242");
        assert_eq!(r.header("x-original-ttl"), Some("600"));
    }
    // Logged once the node declares itself caught up, which may come after it holds the
    // keys (a last pull once every peer knows it).
    wait_until(Duration::from_secs(20), "catch-up logged", || async {
        b.log_text().contains("caught up from peer")
    })
    .await;
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_when_a_process_is_killed_mid_load() {
    let base = free_range(6);
    let (mut a, _b, pa, pb) = two_meshed_processes(base, Duration::from_secs(10)).await;

    // Writers hit the doomed process only; every 201 is recorded.
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let acked = acked.clone();
            let port = pa[w % 3];
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let key = format!("w{w}-{i}");
                    let url = format!("http://127.0.0.1:{port}/data/{key}?ttl=600");
                    match request(Method::PUT, &url, Bytes::from_static(b"v"), &[]).await {
                        Some(r) if r.status == 201 => acked.lock().unwrap().push(key),
                        Some(_) => {}
                        None => return, // the process is gone
                    }
                }
            })
        })
        .collect();
    wait_until(Duration::from_secs(30), "some writes acknowledged", || {
        let acked = acked.clone();
        async move { acked.lock().unwrap().len() >= 300 }
    })
    .await;
    a.signal("KILL");
    let killed_at = std::time::Instant::now();
    a.wait_exit(Duration::from_secs(5));
    for w in writers {
        w.await.expect("writer task");
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 300);

    // Every acknowledged write is on every survivor (replication and anti-entropy).
    for &p in &pb {
        let missing = Arc::new(Mutex::new(HashSet::new()));
        wait_until(
            Duration::from_secs(15),
            "survivor holds every acknowledged write",
            || {
                let (acked, missing) = (acked.clone(), missing.clone());
                async move {
                    let results = futures::stream::iter(acked)
                        .map(|k| async move {
                            let ok = get(&format!("http://127.0.0.1:{p}/data/{k}"))
                                .await
                                .is_some_and(|r| r.status == 200);
                            (k, ok)
                        })
                        .buffer_unordered(32)
                        .collect::<Vec<_>>()
                        .await;
                    let mut m = missing.lock().unwrap();
                    m.clear();
                    m.extend(results.into_iter().filter(|(_, ok)| !ok).map(|(k, _)| k));
                    m.is_empty()
                }
            },
        )
        .await;
    }
    eprintln!(
        "replication: all {} writes acknowledged (201) by the killed process are on all 3 \
         survivors, checked {:?} after the kill",
        acked.len(),
        killed_at.elapsed()
    );
}

#[tokio::test]
async fn concurrent_writes_to_one_key_converge_everywhere() {
    let base = free_range(4);
    let proc = Process::start(&env_for(base, 4, 4));
    let ports = proc.claimed_ports(4).await;
    wait_until(Duration::from_secs(10), "mesh", || full_mesh(&ports)).await;
    for round in 0..20 {
        let writes = ports.iter().map(|&p| async move {
            let url = format!("http://127.0.0.1:{p}/data/contested?ttl=60");
            request(
                Method::PUT,
                &url,
                Bytes::from(format!("from-{p}-{round}")),
                &[],
            )
            .await
        });
        futures::future::join_all(writes).await;
    }
    wait_until(Duration::from_secs(10), "one value everywhere", || {
        let ports = ports.clone();
        async move {
            let mut values = HashSet::new();
            for p in ports {
                match get(&format!("http://127.0.0.1:{p}/data/contested")).await {
                    Some(r) if r.status == 200 => values.insert(r.text()),
                    _ => return false,
                };
            }
            values.len() == 1 && values.iter().all(|v| v.ends_with("-19"))
        }
    })
    .await;
}

#[tokio::test]
async fn another_process_gets_each_batch_once_over_http_and_relays_it_in_memory() {
    let base = free_range(6);
    let (_a, _b, pa, pb) = two_meshed_processes(base, Duration::from_secs(10)).await;
    const WRITES: u64 = 20;
    for i in 0..WRITES {
        let url = format!("http://127.0.0.1:{}/data/relayed-{i}?ttl=600", pa[0]);
        let r = put(&url, b"v").await.expect("put");
        assert_eq!(r.status, 201, "{}", r.text());
        // The answer of B's relay counts B's three nodes at once.
        let acks = r.json()["acks"].as_u64().unwrap_or(0);
        assert!(acks >= 4, "{acks} acks");
    }
    for i in 0..WRITES {
        wait_for_value(&pb, &format!("relayed-{i}"), "v").await;
    }
    let sum = |ports: Vec<u16>, name: &'static str| async move {
        let mut total = 0.0;
        for p in ports {
            total += metric(p, name).await;
        }
        total as u64
    };
    let http = r#"repram_replication_received_batches_total{via="Http"}"#;
    let memory = r#"repram_replication_received_batches_total{via="Memory"}"#;
    let (b_http, b_memory) = (sum(pb.clone(), http).await, sum(pb.clone(), memory).await);
    let b_relayed = sum(pb.clone(), "repram_relay_batches_total").await;
    eprintln!(
        "relay: {WRITES} writes on one node of A; B received {b_http} HTTP batches \
         ({:.2} per write) and {b_memory} in memory",
        b_http as f64 / WRITES as f64
    );
    // Each batch crossed once to one node of B, which handed it to the two others.
    assert!((1..=WRITES).contains(&b_http), "{b_http}");
    assert_eq!(b_relayed, b_http);
    assert_eq!(b_memory, 2 * b_http);
    assert_eq!(
        sum(pa.clone(), http).await,
        0,
        "nothing came back over HTTP"
    );
    assert_eq!(sum(pa, "repram_relay_failovers_total").await, 0);
}
