//! The OpenAPI description (`openapi.yaml`, served as `/openapi.json`) against the server:
//! every documented operation answers on a live node with a documented status, the methods
//! of every path are exactly those its `Allow` header names, and every public route of the
//! router is documented.

mod common;

use std::collections::BTreeSet;

use bytes::Bytes;
use hyper::Method;
use repram_flux::Config;
use serde_json::Value;

use common::*;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One ready node on a free port of 127.0.0.1.
async fn node() -> (repram_flux::Cluster, String) {
    let cfg = Config {
        base_port: free_range(2),
        max_ports: 2,
        node_count: 1,
        ..Config::for_test()
    };
    one_node(cfg).await
}

/// `(path, method, documented status codes)` of every documented operation.
fn operations(spec: &Value) -> Vec<(String, String, BTreeSet<String>)> {
    let paths = spec["paths"].as_object().expect("paths is an object");
    let mut ops = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (method, op) in item {
            if !METHODS.contains(&method.as_str()) {
                continue; // `parameters`, `summary`, ...
            }
            let codes = op["responses"]
                .as_object()
                .expect("an operation has responses")
                .keys()
                .cloned()
                .collect();
            ops.push((path.clone(), method.to_uppercase(), codes));
        }
    }
    ops
}

#[tokio::test]
async fn serves_its_description_as_json() {
    let (cluster, url) = node().await;
    let r = get(&format!("{url}/openapi.json")).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let spec = r.json();
    assert_eq!(spec["openapi"], "3.0.3");
    assert_eq!(
        spec["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "openapi.yaml info.version must follow Cargo.toml"
    );
    let embedded: Value = serde_json::from_str(repram_flux::http::openapi::SPEC_JSON).unwrap();
    assert_eq!(spec, embedded);
    // The same under /v1, and HEAD answers without a body.
    let v1 = get(&format!("{url}/v1/openapi.json")).await.unwrap();
    assert_eq!(v1.status, 200);
    assert_eq!(v1.json(), spec);
    let head = request(
        Method::HEAD,
        &format!("{url}/openapi.json"),
        Bytes::new(),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // Every `$ref` points at something that exists.
    let mut refs = Vec::new();
    collect_refs(&spec, &mut refs);
    assert!(refs.len() > 20, "{refs:?}");
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(spec.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    cluster.shutdown().await;
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn documented_operations_are_the_routes_the_server_answers() {
    let (cluster, url) = node().await;
    let spec: Value = serde_json::from_str(repram_flux::http::openapi::SPEC_JSON).unwrap();
    let ops = operations(&spec);
    assert!(ops.len() >= 20, "{ops:?}");
    let key = "documented-key";
    let stored = put(&format!("{url}/data/{key}?ttl=600"), b"value")
        .await
        .unwrap();
    assert_eq!(stored.status, 201, "{}", stored.text());

    // Every documented operation answers, at the root and under /v1, with a status its
    // description lists (and so not 404/405 unless documented).
    for (path, method, codes) in &ops {
        let concrete = path.replace("{key}", key);
        for prefix in ["", "/v1"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let body = if method == Method::PUT {
                Bytes::from_static(b"value")
            } else {
                Bytes::new()
            };
            let u = format!("{url}{prefix}{concrete}");
            let r = request(method.clone(), &u, body, &[]).await.unwrap();
            assert!(
                codes.contains(&r.status.to_string()),
                "{method} {u} answered {} ({}), documented: {codes:?}",
                r.status,
                r.text()
            );
            assert!(
                (200..300).contains(&r.status),
                "{method} {u} answered {}",
                r.status
            );
        }
    }

    // The methods of every documented path are exactly those the server allows there.
    let paths: BTreeSet<String> = ops.iter().map(|(p, _, _)| p.clone()).collect();
    for path in &paths {
        let documented: BTreeSet<String> = ops
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, m, _)| m.clone())
            .collect();
        assert!(!documented.contains("DELETE"), "{path}: there is no DELETE");
        let u = format!("{url}{}", path.replace("{key}", key));
        let r = request(Method::DELETE, &u, Bytes::new(), &[])
            .await
            .unwrap();
        assert_eq!(r.status, 405, "DELETE {u}");
        let allowed: BTreeSet<String> = r
            .header("allow")
            .unwrap_or_else(|| panic!("405 without Allow on {u}"))
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        assert_eq!(allowed, documented, "{path}: Allow vs openapi.yaml");
    }

    // An undocumented path is not served.
    let r = get(&format!("{url}/not-documented")).await.unwrap();
    assert_eq!(r.status, 404);

    // Every public route of the router is documented, and nothing else is.
    assert_eq!(
        router_paths(),
        paths,
        "routes in src/http/routes/mod.rs vs openapi.yaml"
    );
    cluster.shutdown().await;
}

/// The public paths the router matches, read from the `route` function of
/// `src/http/routes/mod.rs`: its `"/path" =>` arms and its `/data/` prefix; and the
/// seed-era routes of `seed_data`.
fn router_paths() -> BTreeSet<String> {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/http/routes/mod.rs"
    ))
    .unwrap();
    let start = source
        .find("async fn route(")
        .expect("src/http/routes/mod.rs has `async fn route(`");
    let body = &source[start..];
    let end = body[1..]
        .find("\nfn ")
        .or_else(|| body[1..].find("\nasync fn "))
        .map_or(body.len(), |i| i + 1);
    let body = &body[..end];
    let mut paths = BTreeSet::new();
    for line in body.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("\"/") {
            if let Some((path, tail)) = rest.split_once('"') {
                if tail.trim_start().starts_with("=>") {
                    paths.insert(format!("/{path}"));
                }
            }
        }
        if line.contains("strip_prefix(\"/data/\")") {
            paths.insert("/data/{key}".to_string());
        }
    }
    // The seed-era key routes, answered by `seed_data` in `src/http/routes/data.rs`.
    let data = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/http/routes/data.rs"
    ))
    .unwrap();
    for seed in ["/cluster/put/", "/cluster/get/"] {
        if data.contains(&format!("strip_prefix(\"{seed}\")")) {
            paths.insert(format!("{seed}{{key}}"));
        }
    }
    assert!(
        paths.len() >= 8,
        "found only {paths:?} in route(); has the router changed shape? update router_paths()"
    );
    paths
}
