//! The dashboard routes of in-process nodes: `GET /` (the page) and `GET /cluster` (its
//! JSON), including a node that leaves the mesh.

mod common;

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use repram_flux::{Config, Tuning};
use serde_json::Value;

use common::*;

fn config(base: u16, max_ports: u16, nodes: u16) -> Config {
    Config {
        base_port: base,
        max_ports,
        node_count: nodes,
        ..Config::for_test()
    }
}

async fn cluster_json(url: &str) -> Value {
    let r = get(url).await.expect("/cluster answers");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    r.json()
}

/// Poll `/cluster` at `url` until `pred` holds for the answer; panics with `what` after 5 s.
async fn poll_cluster(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let v = cluster_json(url).await;
        if pred(&v) {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}; last answer: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(node id, state)` of every node of a `/cluster` answer.
fn states(v: &Value) -> Vec<(String, String)> {
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            (
                n["node_id"].as_str().unwrap_or("").to_string(),
                n["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_page_is_html_with_a_strict_csp_on_every_node() {
    let base = free_range(2);
    let cluster = repram_flux::start(config(base, 2, 1), Tuning::default()).expect("start");
    let url = format!("http://127.0.0.1:{}", cluster.ports()[0]);
    let page_url = format!("{url}/");
    wait_until(Duration::from_secs(5), "page", || {
        let page_url = page_url.clone();
        async move { get(&page_url).await.is_some_and(|r| r.status == 200) }
    })
    .await;

    let r = get(&page_url).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csp = r
        .header("content-security-policy")
        .expect("CSP")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("nonce in CSP");
    let html = r.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(!html.contains("{{NONCE}}"));
    // Self-contained: no other origin is named, and the page polls its own node.
    for other_origin in [
        "src=\"http",
        "href=\"http",
        "https://",
        "//cdn",
        "fetch(\"http",
    ] {
        assert!(!html.contains(other_origin), "page names {other_origin}");
    }
    assert!(html.contains("\"cluster\""));

    // The REPRAM v2 alias, HEAD, and the method check.
    let v1 = get(&format!("{url}/v1/")).await.unwrap();
    assert_eq!(v1.status, 200);
    assert_eq!(v1.header("content-type"), Some("text/html; charset=utf-8"));
    let head = request(Method::HEAD, &page_url, Bytes::new(), &[])
        .await
        .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = request(Method::POST, &page_url, Bytes::from_static(b"x"), &[])
        .await
        .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn cluster_json_shows_every_node_its_links_stats_and_a_key() {
    let base = free_range(3);
    let (cluster, ports) = start_meshed(config(base, 3, 3)).await;
    let r = put(
        &format!("http://127.0.0.1:{}/data/hello%20there?ttl=60", ports[0]),
        b"v",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);

    let url = format!("http://127.0.0.1:{}/cluster?key=hello%20there", ports[1]);
    let v = poll_cluster(&url, "key on every node", |v| v["summary"]["holders"] == 3).await;
    let own_id = cluster.nodes()[1].id.clone();
    assert_eq!(v["node_id"], own_id.as_str());
    assert_eq!(v["key"], "hello there");
    assert!(v["generated_ms"].as_u64().unwrap() > 0);
    assert_eq!(v["summary"]["nodes"], 3);
    assert_eq!(v["summary"]["states"]["alive"], 3);
    assert_eq!(v["summary"]["complete"], true);
    let nodes = v["nodes"].as_array().unwrap();
    let mut seen_ports: Vec<u64> = nodes.iter().map(|n| n["port"].as_u64().unwrap()).collect();
    seen_ports.sort();
    let mut want: Vec<u64> = ports.iter().map(|&p| u64::from(p)).collect();
    want.sort();
    assert_eq!(seen_ports, want);
    for (i, n) in nodes.iter().enumerate() {
        assert_eq!(n["state"], "alive");
        assert_eq!(n["reachable"], true);
        assert_eq!(n["error"], Value::Null);
        assert_eq!(n["has_key"], true);
        assert_eq!(n["keys"], 1);
        assert!(n["bytes"].as_u64().unwrap() > 0);
        assert!(n["uptime_s"].is_u64());
        assert_eq!(n["peer_count"], 2);
        assert_eq!(n["self"], n["node_id"] == own_id.as_str());
        let sees: Vec<u64> = n["sees"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let others: Vec<u64> = (0..3u64).filter(|&j| j != i as u64).collect();
        assert_eq!(sees, others);
        assert!(n["address"].as_str().unwrap().starts_with("127.0.0.1:"));
        for c in [
            "writes",
            "applied",
            "repl_batches",
            "repl_seconds_count",
            "lag_seconds_count",
            "queue",
            "repairs",
        ] {
            assert!(n["counters"][c].is_u64(), "counter {c} in {n}");
        }
    }
    // The node that took the PUT counted it.
    let writer = nodes.iter().find(|n| n["port"] == ports[0]).unwrap();
    assert_eq!(writer["counters"]["writes"], 1);
    let joined = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "joined")
        .count();
    assert_eq!(joined, 2, "{}", v["events"]);

    // Without a key: no key fields; an absent key is on no node.
    let plain = cluster_json(&format!("http://127.0.0.1:{}/v1/cluster", ports[2])).await;
    assert_eq!(plain["key"], Value::Null);
    assert_eq!(plain["summary"]["holders"], Value::Null);
    assert_eq!(plain["nodes"][0]["has_key"], Value::Null);
    let absent = cluster_json(&format!("http://127.0.0.1:{}/cluster?key=nope", ports[2])).await;
    assert_eq!(absent["summary"]["holders"], 0);
    assert_eq!(absent["nodes"][1]["has_key"], false);

    // One node's own report.
    let own = cluster_json(&format!(
        "http://127.0.0.1:{}/cluster?scope=node&key=hello%20there",
        ports[2]
    ))
    .await;
    assert_eq!(own["port"], ports[2]);
    assert_eq!(own["has_key"], true);
    assert_eq!(own["peers"].as_array().unwrap().len(), 2);
    assert_eq!(own["peers"][0]["state"], "alive");
    cluster.shutdown().await;
}

#[tokio::test]
async fn cluster_refuses_bad_input_with_json_errors() {
    let base = free_range(2);
    let cluster = repram_flux::start(config(base, 2, 1), Tuning::default()).unwrap();
    let url = format!("http://127.0.0.1:{}", cluster.ports()[0]);
    let ready = format!("{url}/ready");
    wait_until(Duration::from_secs(5), "ready", || {
        let ready = ready.clone();
        async move { get(&ready).await.is_some_and(|r| r.status == 200) }
    })
    .await;
    for q in ["key=a%2Fb", "key=%FF", "scope=everything", "key=%01"] {
        let r = get(&format!("{url}/cluster?{q}")).await.unwrap();
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.json()["error"].is_string());
    }
    let long = "k".repeat(251);
    let r = get(&format!("{url}/cluster?key={long}")).await.unwrap();
    assert_eq!(r.status, 400);
    let r = request(Method::PUT, &format!("{url}/cluster"), Bytes::new(), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // An empty key means "no key".
    let v = cluster_json(&format!("{url}/cluster?key=")).await;
    assert_eq!(v["key"], Value::Null);
    assert_eq!(v["summary"]["nodes"], 1);
    assert_eq!(v["summary"]["complete"], true);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_node_that_leaves_stays_on_the_picture_as_left() {
    let base = free_range(3);
    let a = repram_flux::start(config(base, 3, 2), Tuning::default()).unwrap();
    let b = repram_flux::start(config(base, 3, 1), Tuning::default()).unwrap();
    let mut ports = a.ports().to_vec();
    ports.extend(b.ports());
    wait_until(Duration::from_secs(5), "full mesh", || full_mesh(&ports)).await;
    let leaver = b.nodes()[0].id.clone();
    let url = format!("http://127.0.0.1:{}/cluster", ports[0]);
    let v = cluster_json(&url).await;
    assert_eq!(v["summary"]["states"]["alive"], 3, "{v}");

    b.shutdown().await;
    let v = poll_cluster(&url, "the leaver shown as left", |v| {
        states(v).contains(&(leaver.clone(), "left".to_string()))
    })
    .await;
    assert_eq!(v["summary"]["states"]["alive"], 2, "{v}");
    assert_eq!(v["summary"]["states"]["left"], 1, "{v}");
    // Only live nodes count for completeness.
    assert_eq!(v["summary"]["complete"], true, "{v}");
    let gone = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node_id"] == leaver.as_str())
        .unwrap();
    assert_eq!(gone["reachable"], false);
    assert!(gone["since_ms"].as_u64().unwrap() > 0);
    assert_eq!(gone["sees"], Value::Null);
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "left" && e["peer"] == leaver.as_str()));
    a.shutdown().await;
}

#[tokio::test]
async fn with_a_cluster_secret_the_fan_out_works_and_shows_no_secret() {
    // `/cluster?scope=node` is a public route like `/status`: peers answer the fan-out
    // unsigned, and nothing in a report or the view derives from the secret.
    const SECRET: &str = "dashboard-test-secret-0123456789";
    let base = free_range(3);
    let (cluster, ports) = start_meshed(Config {
        cluster_secret: Some(SECRET.into()),
        ..config(base, 3, 3)
    })
    .await;
    let url = format!("http://127.0.0.1:{}/cluster", ports[0]);
    let v = poll_cluster(&url, "every peer reported", |v| {
        v["summary"]["complete"] == true
    })
    .await;
    assert_eq!(v["summary"]["states"]["alive"], 3, "{v}");
    for n in v["nodes"].as_array().unwrap() {
        assert_eq!(n["reachable"], true, "{n}");
        assert_eq!(n["peer_count"], 2, "{n}");
    }
    for u in [
        url.clone(),
        format!("http://127.0.0.1:{}/cluster?scope=node", ports[1]),
    ] {
        let body = get(&u).await.unwrap().text();
        assert!(!body.contains(SECRET), "{u} shows the secret");
        assert!(!body.to_lowercase().contains("secret"), "{u}: {body}");
    }
    cluster.shutdown().await;
}
