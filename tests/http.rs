//! The HTTP API of in-process nodes: every route, every error status.

mod common;

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Response};
use repram_flux::wire::{Gossip, Message, NodeInfo};
use repram_flux::Config;

use common::*;

fn config(base: u16, max_ports: u16, nodes: u16) -> Config {
    Config {
        base_port: base,
        max_ports,
        node_count: nodes,
        ..Config::for_test()
    }
}

#[tokio::test]
async fn read_only_routes_answer_json_and_v1_aliases_match() {
    let base = free_range(2);
    let (cluster, url) = one_node(config(base, 2, 1)).await;
    let node_id = cluster.nodes()[0].id.clone();

    let h = get(&format!("{url}/health")).await.unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), Some("application/json"));
    let j = h.json();
    assert_eq!(j["status"], "healthy");
    assert_eq!(j["node_id"], node_id.as_str());
    assert_eq!(j["port"], base);
    assert_eq!(j["peers"], 0);
    assert!(j["uptime_s"].is_u64());

    let p = get(&format!("{url}/peers")).await.unwrap().json();
    assert_eq!(p["node_id"], node_id.as_str());
    assert_eq!(p["peers"], serde_json::json!([]));

    let s = get(&format!("{url}/status")).await.unwrap().json();
    assert_eq!(s["node_id"], node_id.as_str());
    assert_eq!(s["keys"], 0);
    assert_eq!(s["quorum"], 1);
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(s["config"]["BASE_PORT"], base);

    for route in ["health", "peers", "status", "ready", "keys"] {
        let plain = get(&format!("{url}/{route}")).await.unwrap();
        let v1 = get(&format!("{url}/v1/{route}")).await.unwrap();
        assert_eq!(plain.status, v1.status, "{route}");
        assert_eq!(plain.json()["node_id"], v1.json()["node_id"], "{route}");
    }

    let m = get(&format!("{url}/metrics")).await.unwrap();
    assert_eq!(m.status, 200);
    assert!(
        m.text().contains("repram_http_requests_total"),
        "{}",
        m.text()
    );
    assert!(m.text().contains("repram_keys 0"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn data_round_trip_headers_ttl_policy_and_head() {
    let base = free_range(1);
    let cfg = Config {
        min_ttl: 10,
        max_ttl: 100,
        default_ttl: 50,
        ..config(base, 1, 1)
    };
    let (cluster, url) = one_node(cfg).await;

    let r = put(&format!("{url}/data/k1?ttl=60"), b"v1").await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["ttl"], 60);
    let g = get(&format!("{url}/data/k1")).await.unwrap();
    assert_eq!((g.status, g.text().as_str()), (200, "v1"));
    assert_eq!(g.header("x-original-ttl"), Some("60"));
    assert_eq!(g.header("content-type"), Some("application/octet-stream"));

    // Clamped into [min, max]; X-TTL header when no query; default otherwise.
    let r = put(&format!("{url}/data/low?ttl=1"), b"x").await.unwrap();
    assert_eq!(r.json()["ttl"], 10);
    let r = put(
        &format!("{url}/data/high?ttl=99999999999999999999999"),
        b"x",
    )
    .await
    .unwrap();
    assert_eq!(r.json()["ttl"], 100);
    let r = request(
        Method::PUT,
        &format!("{url}/data/hdr"),
        Bytes::from_static(b"x"),
        &[("x-ttl", "20")],
    )
    .await
    .unwrap();
    assert_eq!(r.json()["ttl"], 20);
    let r = request(
        Method::PUT,
        &format!("{url}/data/both?ttl=30"),
        Bytes::from_static(b"x"),
        &[("x-ttl", "20")],
    )
    .await
    .unwrap();
    assert_eq!(r.json()["ttl"], 30, "?ttl= wins over X-TTL");
    let r = put(&format!("{url}/data/dflt"), b"x").await.unwrap();
    assert_eq!(r.json()["ttl"], 50);

    // HEAD: same headers, no body; v1 alias reads the same data; percent-encoded keys.
    let h = request(Method::HEAD, &format!("{url}/data/k1"), Bytes::new(), &[])
        .await
        .unwrap();
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert_eq!(h.header("x-original-ttl"), Some("60"));
    assert_eq!(
        get(&format!("{url}/v1/data/k1")).await.unwrap().text(),
        "v1"
    );
    assert_eq!(
        put(&format!("{url}/v1/data/hello%20world"), b"sp")
            .await
            .unwrap()
            .status,
        201
    );
    let keys = get(&format!("{url}/keys?prefix=hello"))
        .await
        .unwrap()
        .json();
    assert_eq!(keys["keys"], serde_json::json!(["hello world"]));

    // Binary values survive unchanged; empty values are allowed.
    let bin: &'static [u8] = &[0, 159, 146, 150, 255];
    put(&format!("{url}/data/bin"), bin).await.unwrap();
    assert_eq!(
        get(&format!("{url}/data/bin")).await.unwrap().body.as_ref(),
        bin
    );
    assert_eq!(
        put(&format!("{url}/data/empty"), b"").await.unwrap().status,
        201
    );
    assert_eq!(get(&format!("{url}/data/empty")).await.unwrap().status, 200);
    cluster.shutdown().await;
}

#[tokio::test]
async fn keys_paginates_in_order() {
    let base = free_range(1);
    let (cluster, url) = one_node(config(base, 1, 1)).await;
    for i in 0..25 {
        let r = request(
            Method::PUT,
            &format!("{url}/data/item-{i:02}"),
            Bytes::from_static(b"x"),
            &[],
        )
        .await
        .unwrap();
        assert_eq!(r.status, 201);
    }
    put(&format!("{url}/data/other"), b"x").await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = get(&format!("{url}/keys?prefix=item-&limit=10&cursor={cursor}"))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let j = r.json();
        seen.extend(
            j["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_string()),
        );
        match j["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let want: Vec<String> = (0..25).map(|i| format!("item-{i:02}")).collect();
    assert_eq!(seen, want);
    cluster.shutdown().await;
}

/// Method, URL, body, headers, expected status.
type Case = (
    Method,
    String,
    &'static [u8],
    &'static [(&'static str, &'static str)],
    u16,
);

#[tokio::test]
async fn bad_requests_get_the_right_status_and_change_nothing() {
    let base = free_range(1);
    let cfg = Config {
        max_value_bytes: 16,
        max_storage_bytes: 64,
        ..config(base, 1, 1)
    };
    let (cluster, url) = one_node(cfg).await;
    let long_key = "k".repeat(251);
    let cases: Vec<Case> = vec![
        (Method::PUT, format!("{url}/data/k?ttl=abc"), b"v", &[], 400),
        (Method::PUT, format!("{url}/data/k?ttl=0"), b"v", &[], 400),
        (Method::PUT, format!("{url}/data/k?ttl=-5"), b"v", &[], 400),
        (
            Method::PUT,
            format!("{url}/data/k"),
            b"v",
            &[("x-ttl", "soon")],
            400,
        ),
        // A bad X-TTL is refused even when `?ttl=` (which wins) is good.
        (
            Method::PUT,
            format!("{url}/data/k?ttl=5"),
            b"v",
            &[("x-ttl", "{}")],
            400,
        ),
        (
            Method::PUT,
            format!("{url}/data/{long_key}"),
            b"v",
            &[],
            400,
        ),
        (Method::PUT, format!("{url}/data/a%2Fb"), b"v", &[], 400),
        (Method::PUT, format!("{url}/data/a%0Ab"), b"v", &[], 400),
        (Method::PUT, format!("{url}/data/%FF"), b"v", &[], 400),
        (Method::PUT, format!("{url}/data/"), b"v", &[], 400),
        (Method::GET, format!("{url}/data/"), b"", &[], 400),
        (
            Method::PUT,
            format!("{url}/data/big"),
            b"0123456789abcdefX",
            &[],
            413,
        ),
        (Method::GET, format!("{url}/data/missing"), b"", &[], 404),
        (Method::GET, format!("{url}/nope"), b"", &[], 404),
        (Method::GET, format!("{url}/v1/nope"), b"", &[], 404),
        (Method::GET, format!("{url}/keys?limit=0"), b"", &[], 400),
        (Method::GET, format!("{url}/keys?limit=5000"), b"", &[], 400),
        (Method::GET, format!("{url}/keys?limit=x"), b"", &[], 400),
        // Digits only: U+0085 (white space to Rust's trim) and a sign are refused.
        (
            Method::GET,
            format!("{url}/keys?limit=%C2%857"),
            b"",
            &[],
            400,
        ),
        (Method::GET, format!("{url}/keys?limit=%2B7"), b"", &[], 400),
        (
            Method::PUT,
            format!("{url}/data/k?ttl=%C2%857"),
            b"v",
            &[],
            400,
        ),
        (
            Method::POST,
            format!("{url}/internal/v1/gossip"),
            b"garbage",
            &[],
            400,
        ),
        (
            Method::POST,
            format!("{url}/internal/v1/nope"),
            b"",
            &[],
            404,
        ),
    ];
    for (method, u, body, headers, want) in cases {
        let r = request(method.clone(), &u, Bytes::from_static(body), headers)
            .await
            .unwrap();
        assert_eq!(r.status, want, "{method} {u}: {}", r.text());
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{method} {u}"
        );
        assert!(r.json()["error"].is_string(), "{method} {u}");
    }
    // Wrong methods: 405 with Allow.
    for (method, path, allow) in [
        (Method::DELETE, "/data/k", "GET, HEAD, PUT"),
        (Method::POST, "/data/k", "GET, HEAD, PUT"),
        (Method::POST, "/health", "GET, HEAD"),
        (Method::PUT, "/v1/status", "GET, HEAD"),
        (Method::GET, "/internal/v1/gossip", "POST"),
    ] {
        let r = request(method.clone(), &format!("{url}{path}"), Bytes::new(), &[])
            .await
            .unwrap();
        assert_eq!(r.status, 405, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    // Nothing was stored by any of that.
    let keys = get(&format!("{url}/keys")).await.unwrap().json();
    assert_eq!(keys["keys"], serde_json::json!([]));

    // 507 when the memory budget is used up; a smaller write still fits afterwards.
    assert_eq!(
        put(&format!("{url}/data/a"), b"0123456789abcde")
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        put(&format!("{url}/data/b"), b"0123456789abcde")
            .await
            .unwrap()
            .status,
        201
    );
    assert_eq!(
        put(&format!("{url}/data/c"), b"0123456789abcde")
            .await
            .unwrap()
            .status,
        201
    );
    // 3 × (1 + 15) = 48 bytes used; 1 + 16 more would make 65 > 64.
    let full = put(&format!("{url}/data/d"), b"0123456789abcdef")
        .await
        .unwrap();
    assert_eq!(full.status, 507, "{}", full.text());
    assert_eq!(get(&format!("{url}/data/d")).await.unwrap().status, 404);
    assert_eq!(
        put(&format!("{url}/data/e"), b"").await.unwrap().status,
        201
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn three_nodes_in_process_replicate_with_quorum_201() {
    let base = free_range(3);
    let (cluster, ports) = start_meshed(config(base, 3, 3)).await;
    let r = put(
        &format!("http://127.0.0.1:{}/data/q?ttl=60", ports[2]),
        b"v",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["quorum"], 2);
    assert!(r.json()["acks"].as_u64().unwrap() >= 2);
    wait_for_value(&ports, "q", "v").await;
    // Nodes of one process hand batches over in memory: no replication request at all.
    for node in &cluster.nodes()[..2] {
        assert_eq!(node.metrics.replication_received_http.get(), 0);
        assert!(node.metrics.replication_received_memory.get() >= 1);
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_restarted_node_gets_writes_in_memory_under_its_new_id_only() {
    let base = free_range(3);
    let (cluster, ports) = start_meshed(config(base, 3, 3)).await;
    let victim = cluster.nodes()[1].clone();
    assert!(cluster.registry().lookup(&victim.id).is_some());
    quiet_injected_panics();
    victim.inject_fault();
    let new_id = format!("{}-r1", victim.id);
    wait_until(Duration::from_secs(5), "restarted node in the mesh", || {
        let (ports, new_id) = (ports.clone(), new_id.clone());
        async move {
            let Some(h) = get(&format!("http://127.0.0.1:{}/health", ports[1])).await else {
                return false;
            };
            if h.json()["node_id"] != new_id.as_str() || !full_mesh(&ports).await {
                return false;
            }
            // The others know it under its new id (proven by its answer to a probe of
            // theirs, one round trip after it contacts them).
            for p in [ports[0], ports[2]] {
                let Some(r) = get(&format!("http://127.0.0.1:{p}/peers")).await else {
                    return false;
                };
                let listed = r.json()["peers"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|x| x["node_id"] == new_id.as_str()));
                if !listed {
                    return false;
                }
            }
            true
        }
    })
    .await;
    // The failed incarnation left the registry when its task died.
    assert!(cluster.registry().lookup(&victim.id).is_none());
    assert!(!victim.accepts_replication());
    let restarted = cluster.nodes()[1].clone();
    assert_eq!(restarted.id, new_id);
    assert!(cluster.registry().lookup(&new_id).is_some());
    let handed_to_victim = victim.metrics.replication_received_memory.get();
    let r = put(
        &format!("http://127.0.0.1:{}/data/after?ttl=60", ports[0]),
        b"v",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for_value(&ports, "after", "v").await;
    assert!(restarted.metrics.replication_received_memory.get() >= 1);
    assert_eq!(restarted.metrics.replication_received_http.get(), 0);
    assert_eq!(
        victim.metrics.replication_received_memory.get(),
        handed_to_victim,
        "the dead incarnation was handed the write"
    );
    cluster.shutdown().await;
}

/// A hung peer: it answers membership probes, so it stays a live member, but every other
/// request (replication batches) is accepted, read and never answered.
async fn spawn_deaf_peer(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_string();
                        let _ = req.into_body().collect().await;
                        if path != "/internal/v1/gossip" {
                            std::future::pending::<()>().await;
                        }
                        let resp = if path == "/internal/v1/gossip" {
                            let g = Message::Gossip(Gossip {
                                from: NodeInfo {
                                    id: format!("deaf-{port}"),
                                    host: String::new(),
                                    port,
                                },
                                ..Gossip::default()
                            });
                            Response::new(Full::new(g.encode()))
                        } else {
                            Response::builder()
                                .status(500)
                                .body(Full::new(Bytes::new()))
                                .unwrap()
                        };
                        Ok::<_, Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

#[tokio::test]
async fn a_write_without_quorum_answers_202_after_the_write_timeout_and_is_kept() {
    let base = free_range(3);
    let deaf1 = spawn_deaf_peer(base + 1).await;
    let deaf2 = spawn_deaf_peer(base + 2).await;
    let cfg = config(base, 3, 1);
    let write_timeout = cfg.write_timeout;
    // Not `one_node`: it waits for `/ready`, which waits for catch-up, and a peer that
    // never answers holds catch-up for its round timeouts. The write path needs members.
    let cluster = repram_flux::start(cfg, repram_flux::Tuning::default()).expect("start");
    let url = format!("http://127.0.0.1:{}", cluster.ports()[0]);
    wait_until(Duration::from_secs(5), "two deaf peers joined", || async {
        peer_ports(base).await == Some(vec![base + 1, base + 2])
    })
    .await;
    let t0 = std::time::Instant::now();
    let r = put(&format!("{url}/data/lonely?ttl=60"), b"v")
        .await
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["quorum"], 2);
    assert_eq!(r.json()["acks"], 1);
    // The peers hold the batches unanswered: the writer waited out its write timeout.
    assert!(
        t0.elapsed() >= write_timeout,
        "202 after {:?}, before the write timeout {write_timeout:?}",
        t0.elapsed()
    );
    assert_eq!(
        get(&format!("{url}/data/lonely")).await.unwrap().text(),
        "v"
    );
    cluster.shutdown().await;
    deaf1.abort();
    deaf2.abort();
}

#[tokio::test]
async fn nodes_advertising_an_address_they_cannot_reach_replicate_over_the_local_one() {
    // As on Flux: the nodes advertise the host's public address (here 127.0.0.2, where
    // nothing listens), and reach each other at the address they listen on. Two clusters
    // on one host (as two processes would be), so that batches between them go over HTTP.
    let base = free_range(3);
    let cfg = |nodes| Config {
        advertise_host: Some("127.0.0.2".to_string()),
        ..config(base, 3, nodes)
    };
    let (a, pa) = start_meshed(cfg(2)).await;
    let b = repram_flux::start(cfg(1), repram_flux::Tuning::default()).expect("start");
    let pb = b.ports().to_vec();
    let ports: Vec<u16> = pa.iter().chain(&pb).copied().collect();
    wait_until(Duration::from_secs(5), "3-node mesh", || full_mesh(&ports)).await;
    // 201 needs an acknowledgement from the other cluster.
    let r = put(&format!("http://127.0.0.1:{}/data/adv?ttl=60", pb[0]), b"v")
        .await
        .expect("put");
    assert_eq!(r.status, 201, "{}", r.text());
    // Every replica has it at once: replication, not anti-entropy (which leaves writes
    // younger than 2 s alone).
    for &p in &pa {
        let url = format!("http://127.0.0.1:{p}/data/adv");
        wait_until(
            Duration::from_secs(1),
            "replicated over the local address",
            || {
                let url = url.clone();
                async move { get(&url).await.is_some_and(|r| r.status == 200) }
            },
        )
        .await;
    }
    // One node of `a` got the batch over HTTP (at the local address) and relayed it.
    let nodes = a.nodes();
    let http =
        |n: &std::sync::Arc<repram_flux::node::Node>| n.metrics.replication_received_http.get();
    assert_eq!(nodes.iter().map(http).sum::<u64>(), 1);
    assert_eq!(
        nodes
            .iter()
            .map(|n| n.metrics.relay_batches.get())
            .sum::<u64>(),
        1
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// Print injected faults as one line. The default hook symbolizes a backtrace when
/// RUST_BACKTRACE is set, which takes most of a second in a debug build and would be
/// measured as restart time. Other panics still get the default hook.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with("fault injected"));
        if injected {
            eprintln!("{info}");
        } else {
            default(info);
        }
    }));
}

#[tokio::test]
async fn a_node_that_panics_is_back_serving_and_in_the_mesh() {
    let base = free_range(3);
    let (cluster, ports) = start_meshed(config(base, 3, 3)).await;
    let victim = cluster.nodes()[1].clone();
    let old_id = victim.id.clone();
    let port = victim.port;
    quiet_injected_panics();
    victim.inject_fault();
    wait_until(
        Duration::from_secs(30),
        "restarted node in the mesh",
        || {
            let (ports, old_id) = (ports.clone(), old_id.clone());
            async move {
                let Some(h) = get(&format!("http://127.0.0.1:{port}/health")).await else {
                    return false;
                };
                let new_id = h.json()["node_id"].as_str().unwrap_or("").to_string();
                if new_id == old_id || new_id.is_empty() || !full_mesh(&ports).await {
                    return false;
                }
                // Every other node knows the new identity and has forgotten the old one.
                for &p in ports.iter().filter(|&&p| p != port) {
                    let body = get(&format!("http://127.0.0.1:{p}/peers"))
                        .await
                        .unwrap()
                        .text();
                    if !body.contains(&new_id) || body.contains(&format!("\"{old_id}\"")) {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    let restarted = &cluster.nodes()[1];
    assert_eq!(restarted.id, format!("{old_id}-r1"));
    assert_eq!(restarted.port, port, "kept its port");
    cluster.shutdown().await;
}

/// Send `GET /health` on an open keep-alive connection: the node id in the answer, or
/// `None` when the server closed the connection.
async fn health_on(conn: &mut tokio::net::TcpStream) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    conn.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    let body = text.split_once("\r\n\r\n")?.1;
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    json["node_id"].as_str().map(str::to_string)
}

#[tokio::test]
async fn connections_to_a_node_that_failed_do_not_outlive_it() {
    let base = free_range(2);
    let (cluster, _ports) = start_meshed(config(base, 2, 2)).await;
    let victim = cluster.nodes()[0].clone();
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", victim.port))
        .await
        .expect("connect");
    assert_eq!(
        health_on(&mut conn).await.as_deref(),
        Some(victim.id.as_str())
    );
    quiet_injected_panics();
    victim.inject_fault();
    let health = format!("http://127.0.0.1:{}/health", victim.port);
    wait_until(Duration::from_secs(5), "restarted", || {
        let health = health.clone();
        let old = victim.id.clone();
        async move {
            get(&health)
                .await
                .is_some_and(|r| r.json()["node_id"].as_str().is_some_and(|id| id != old))
        }
    })
    .await;
    // The connection opened before the failure must not answer for the dead node.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = health_on(&mut conn).await;
    assert_ne!(
        answer.as_deref(),
        Some(victim.id.as_str()),
        "a zombie connection"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn clients_over_the_rate_limit_get_429_with_retry_after() {
    let base = free_range(1);
    // One request per second, burst 2: slow enough that refills cannot blur the test.
    let cfg = Config {
        rate_limit: 1,
        trusted_proxies: vec![repram_flux::cidr::Cidr::parse("127.0.0.0/8").expect("a network")],
        ..config(base, 1, 1)
    };
    let (cluster, url) = one_node(cfg).await;
    let health = format!("{url}/health");
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = request(Method::GET, &health, Bytes::new(), &from("203.0.113.7"))
            .await
            .unwrap();
        statuses.push(r.status);
        if r.status == 429 {
            assert_eq!(r.header("retry-after"), Some("1"));
            assert!(r.json()["error"].as_str().unwrap().contains("rate limit"));
        }
    }
    // Burst of 2 × 1 requests, then refused (a refill may let one more through).
    assert!(statuses[..2].iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    // A refused write changes nothing.
    let w = request(
        Method::PUT,
        &format!("{url}/data/x"),
        Bytes::from_static(b"v"),
        &from("203.0.113.7"),
    )
    .await
    .unwrap();
    assert_eq!(w.status, 429);
    assert_eq!(get(&format!("{url}/data/x")).await.unwrap().status, 404);
    // Another client is unaffected; so are local clients without a forwarded address.
    let other = request(Method::GET, &health, Bytes::new(), &from("203.0.113.8"))
        .await
        .unwrap();
    assert_eq!(other.status, 200);
    for _ in 0..30 {
        assert_eq!(get(&health).await.unwrap().status, 200);
    }
    cluster.shutdown().await;
}
