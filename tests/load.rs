//! Failure detection under load: two processes (three nodes each) under a PUT/GET load
//! that saturates the machine must not declare any live node dead.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use common::*;

/// How long the load runs, and the most requests it sends.
const LOAD_TIME: Duration = Duration::from_secs(12);
const MAX_REQUESTS: u64 = 400_000;
/// Concurrent client loops: far more than 2 cores can serve without queueing.
const CLIENTS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_live_node_is_declared_dead_under_a_saturating_load() {
    let base = free_range(6);
    let (a, b, pa, pb) = two_meshed_processes(base, Duration::from_secs(15)).await;
    let all: Vec<u16> = pa.iter().chain(&pb).copied().collect();

    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let loops: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, sent, answered, all) =
                (client.clone(), sent.clone(), answered.clone(), all.clone());
            tokio::spawn(async move {
                let mut i = 0usize;
                while started.elapsed() < LOAD_TIME
                    && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
                {
                    let port = all[(c + i) % all.len()];
                    let key = format!("load-{c}-{}", i % 50);
                    let (method, body) = if i % 2 == 0 {
                        (Method::PUT, Bytes::from(vec![b'x'; 256]))
                    } else {
                        (Method::GET, Bytes::new())
                    };
                    let req = Request::builder()
                        .method(method)
                        .uri(format!("http://127.0.0.1:{port}/data/{key}?ttl=30"))
                        .body(Full::new(body))
                        .expect("request");
                    let done = tokio::time::timeout(Duration::from_secs(5), async {
                        let resp = client.request(req).await.ok()?;
                        resp.into_body().collect().await.ok()
                    })
                    .await;
                    if matches!(done, Ok(Some(_))) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    for l in loops {
        l.await.expect("client loop");
    }
    let elapsed = started.elapsed();
    let answered = answered.load(Ordering::Relaxed);
    eprintln!(
        "load: {answered} requests answered in {elapsed:?} ({:.0}/s) by 6 nodes in 2 processes",
        answered as f64 / elapsed.as_secs_f64()
    );
    assert!(answered > 1000, "the load did not run: {answered} answers");

    let mut deaths = 0;
    let mut suspicions = 0;
    for &p in &all {
        // `metric` fails the test when a series is missing: absent is not zero.
        deaths += metric(p, "repram_peer_deaths_total").await as u64;
        suspicions += metric(p, "repram_peer_suspicions_total").await as u64;
    }
    eprintln!("after the load: {deaths} deaths, {suspicions} suspicions (all refuted)");
    assert_eq!(deaths, 0, "live nodes were declared dead under load");
    assert!(full_mesh(&all).await, "the mesh is no longer complete");
    for p in [&a, &b] {
        assert!(
            !p.log_text().contains("declared dead"),
            "a process logged a death"
        );
    }
}
