//! Abuse limits of one in-process node: idle and slow connections, the connection cap,
//! oversized chunked bodies, CORS and the security headers.

mod common;

use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use repram_flux::{Config, Tuning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use common::*;

fn one_node_config(max_connections: usize) -> Config {
    Config {
        base_port: free_range(1),
        max_ports: 1,
        node_count: 1,
        max_connections,
        max_value_bytes: 1024,
        ..Config::for_test()
    }
}

/// Raise the open-file limit so this process can hold `wanted` connections (both ends
/// of each, plus room for the rest of the test); fail rather than test fewer.
fn connection_budget(wanted: usize) -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0) as usize;
    assert!(
        limit >= 2 * wanted + 200,
        "open-file limit {limit} (hard limit reached) is too low for {wanted} connections: \
         raise it (ulimit -Hn) to at least {}",
        2 * wanted + 200
    );
    wanted
}

/// Open `n` connections: even ones stay silent, odd ones send half a request head.
async fn attackers(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        if i % 2 == 1 {
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .await
                .expect("partial head");
        }
        held.push(s);
    }
    held
}

/// True when the server closed `s` (EOF or reset) within `wait`.
async fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // e.g. a 408 before the close
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn a_thousand_idle_or_slow_connections_do_not_stop_service_to_others() {
    let tuning = Tuning {
        header_timeout: Duration::from_secs(3),
        ..Tuning::default()
    };
    let (cluster, port) = start_ready(one_node_config(1024), tuning).await;
    let n = connection_budget(1000);
    let mut held = attackers(port, n).await;

    // Other clients are served while all of those are open.
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let started = Instant::now();
        let r = get(&format!("http://127.0.0.1:{port}/health"))
            .await
            .unwrap_or_else(|| panic!("request {i} failed with {n} idle connections open"));
        assert_eq!(r.status, 200);
        slowest = slowest.max(started.elapsed());
    }
    // No speed bound here (debug builds share the machine): served while every one of
    // them is still open is what matters.
    eprintln!("{n} idle/slow connections open; slowest of 20 requests: {slowest:?}");
    assert!(metric(port, "repram_connections").await >= n as f64);

    // The header timeout closes every one of them, silent or slow.
    let deadline = Duration::from_secs(8);
    for s in held.iter_mut() {
        assert!(
            closed_by_server(s, deadline).await,
            "a connection outlived the header timeout"
        );
    }
    wait_until(Duration::from_secs(5), "connections released", || async {
        metric(port, "repram_connections").await <= 1.0
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn at_the_cap_idle_connections_make_room_and_busy_ones_get_503() {
    const CAP: usize = 8;
    let tuning = Tuning {
        body_timeout: Duration::from_secs(2),
        ..Tuning::default()
    };
    let (cluster, port) = start_ready(one_node_config(CAP), tuning).await;
    let url = format!("http://127.0.0.1:{port}");

    // 3×CAP idle connections: each newcomer evicts the longest-idle one, and a real client
    // still gets through.
    let mut idle = attackers(port, 3 * CAP).await;
    let r = get(&format!("{url}/health"))
        .await
        .expect("served at the cap");
    assert_eq!(r.status, 200);
    assert!(metric(port, "repram_connections_evicted_total").await >= (2 * CAP) as f64);
    // The first ones were closed by the server.
    assert!(closed_by_server(&mut idle[0], Duration::from_secs(3)).await);
    drop(idle);

    // CAP connections busy in a request (a PUT whose body never comes): no room left.
    let mut busy = Vec::new();
    for i in 0..CAP {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        // `Expect: 100-continue`: the server says "100 Continue" when the handler starts
        // reading the body, which proves the request is under way (the connection busy).
        let head = format!(
            "PUT /data/slow{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("head");
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        while !seen.ends_with(b"\r\n\r\n") {
            let got = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("100 Continue in time")
                .expect("read 100 Continue");
            assert!(got > 0, "closed before 100 Continue");
            seen.extend_from_slice(&buf[..got]);
        }
        assert!(
            seen.starts_with(b"HTTP/1.1 100 Continue"),
            "{}",
            String::from_utf8_lossy(&seen)
        );
        s.write_all(b"ab").await.expect("part of the body");
        busy.push(s);
    }
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut answer))
        .await
        .expect("refusal in time")
        .expect("read refusal");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");

    // The body timeout frees them (408), nothing was stored, and service is back.
    for s in busy.iter_mut() {
        let mut text = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut text))
            .await
            .expect("answered within the body timeout")
            .expect("read");
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    wait_until(Duration::from_secs(5), "service back", || async {
        get(&format!("{url}/health"))
            .await
            .is_some_and(|r| r.status == 200)
    })
    .await;
    let evicted = metric(port, "repram_connections_evicted_total").await;
    let refused = metric(port, "repram_connections_refused_total").await;
    eprintln!("cap {CAP}: {evicted} idle connections evicted, {refused} refused with 503");
    assert!(refused >= 1.0);
    let keys = get(&format!("{url}/keys")).await.expect("keys").json();
    assert_eq!(keys["keys"].as_array().map(Vec::len), Some(0), "{keys}");
    cluster.shutdown().await;
}

/// Send `raw` on a new connection and return the whole answer (the server closes).
async fn raw_exchange(port: u16, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(raw).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn oversized_bodies_are_refused_chunked_or_not_and_change_nothing() {
    let (cluster, port) = start_ready(one_node_config(64), Tuning::default()).await;

    // Declared too large: refused before any body byte is sent.
    let answer = raw_exchange(
        port,
        b"PUT /data/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Chunked: cut once the chunks pass the limit of 1024 bytes.
    let mut raw = b"PUT /data/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..4 {
        raw.extend_from_slice(b"200\r\n");
        raw.extend_from_slice(&[b'x'; 0x200]);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_exchange(port, &raw).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A chunked body under the limit is fine.
    let answer = raw_exchange(
        port,
        b"PUT /data/small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        get(&format!("{url}/data/big")).await.map(|r| r.status),
        Some(404)
    );
    let small = get(&format!("{url}/data/small")).await.expect("small");
    assert_eq!((small.status, small.text().as_str()), (200, "hello"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn browsers_from_allowed_origins_may_call_the_api() {
    let config = Config {
        cors_origins: vec!["https://fade.repram.io".to_string()],
        ..one_node_config(64)
    };
    let (cluster, port) = start_ready(config, Tuning::default()).await;
    let url = format!("http://127.0.0.1:{port}");
    let fade = [("origin", "https://fade.repram.io")];

    let pre = request(
        Method::OPTIONS,
        &format!("{url}/data/note"),
        Bytes::new(),
        &[
            ("origin", "https://fade.repram.io"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type, x-ttl"),
        ],
    )
    .await
    .expect("preflight");
    assert_eq!(pre.status, 204);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://fade.repram.io")
    );
    assert_eq!(
        pre.header("access-control-allow-methods"),
        Some("GET, HEAD, PUT")
    );

    let evil = request(
        Method::OPTIONS,
        &format!("{url}/data/note"),
        Bytes::new(),
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await
    .expect("preflight");
    assert_eq!(evil.status, 403);
    assert!(evil.json()["error"]
        .as_str()
        .is_some_and(|e| e.contains("origin")));
    assert_eq!(evil.header("access-control-allow-origin"), None);

    let put = request(
        Method::PUT,
        &format!("{url}/data/note?ttl=60"),
        Bytes::from_static(b"hi"),
        &fade,
    )
    .await
    .expect("put");
    assert_eq!(put.status, 201);
    assert_eq!(
        put.header("access-control-allow-origin"),
        Some("https://fade.repram.io")
    );
    let got = request(
        Method::GET,
        &format!("{url}/data/note"),
        Bytes::new(),
        &fade,
    )
    .await
    .expect("get");
    assert_eq!(got.text(), "hi");
    assert!(got
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("X-Remaining-TTL")));
    assert_eq!(got.header("vary"), Some("Origin"));

    // Plain OPTIONS (no preflight headers) is not a route: 405 as before.
    let plain = request(Method::OPTIONS, &format!("{url}/health"), Bytes::new(), &[])
        .await
        .expect("options");
    assert_eq!(plain.status, 405);
    cluster.shutdown().await;
}

#[tokio::test]
async fn every_public_answer_carries_the_security_headers() {
    let (cluster, port) = start_ready(one_node_config(64), Tuning::default()).await;
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(
        put(&format!("{url}/data/k?ttl=60"), b"v")
            .await
            .map(|r| r.status),
        Some(201)
    );
    let cases = [
        (Method::GET, "/health"),
        (Method::GET, "/data/k"),
        (Method::HEAD, "/data/k"),
        (Method::GET, "/data/missing"),
        (Method::DELETE, "/data/k"),
        (Method::GET, "/keys"),
        (Method::GET, "/metrics"),
        (Method::GET, "/"),
        (Method::GET, "/no/such/route"),
        (Method::PUT, "/data/%00"),
    ];
    for (method, path) in cases {
        let r = request(method.clone(), &format!("{url}{path}"), Bytes::new(), &[])
            .await
            .unwrap_or_else(|| panic!("{method} {path}"));
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{method} {path}"
        );
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{method} {path}"
        );
        if path == "/" {
            // The HTML page also refuses framing and referrers.
            assert_eq!(r.header("x-frame-options"), Some("DENY"));
            assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
        }
        // No CORS configured: browsers keep their same-origin rule.
        assert_eq!(
            r.header("access-control-allow-origin"),
            None,
            "{method} {path}"
        );
    }
    cluster.shutdown().await;
}
