//! Tests that run the real `repram-flux` binary on free high ports.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;

fn run_with_env(env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut cmd = binary();
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_variable_and_version_prints_the_version() {
    let (code, out, _) = run_with_env(&[], &["--help"]);
    assert_eq!(code, 0);
    for var in [
        "DISCOVERY_DOMAIN",
        "BASE_PORT",
        "MAX_PORTS",
        "NODE_COUNT",
        "REPLICATION_FACTOR",
        "BIND_ADDR",
        "DISCOVERY_PEERS",
        "ADVERTISE_HOST",
        "REPRAM_CLEANUP_INTERVAL",
        "REPRAM_RATE_LIMIT",
        "REPRAM_MIN_TTL",
        "REPRAM_MAX_TTL",
        "REPRAM_DEFAULT_TTL",
        "REPRAM_MAX_VALUE_BYTES",
        "REPRAM_MAX_STORAGE_BYTES",
        "REPRAM_WRITE_TIMEOUT_MS",
        "REPRAM_CLUSTER_SECRET",
        "REPRAM_LOG",
    ] {
        assert!(out.contains(var), "--help lacks {var}:\n{out}");
    }
    assert!(out.contains("8081"), "defaults shown");
    let (code, out, _) = run_with_env(&[], &["-V"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!("repram-flux {}", env!("CARGO_PKG_VERSION"))
    );
    let (code, _, err) = run_with_env(&[], &["--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("--bogus"));
}

#[test]
fn bad_configuration_exits_2_with_one_clear_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("NODE_COUNT", "abc")],
            "NODE_COUNT=abc: expected a whole number",
        ),
        (&[("NODE_COUNT", "0")], "NODE_COUNT=0: must be at least 1"),
        (&[("NODE_COUNT", "-3")], "NODE_COUNT=-3"),
        (
            &[("NODE_COUNT", "11")],
            "NODE_COUNT=11 exceeds MAX_PORTS=10",
        ),
        (
            &[("BASE_PORT", "65531")],
            "BASE_PORT+MAX_PORTS-1 = 65540 exceeds 65535",
        ),
        (&[("REPLICATION_FACTOR", "0")], "REPLICATION_FACTOR=0"),
        (
            &[("REPRAM_MIN_TTL", "600"), ("REPRAM_MAX_TTL", "300")],
            "REPRAM_MIN_TTL=600 exceeds REPRAM_MAX_TTL=300",
        ),
        (&[("BIND_ADDR", "nope")], "BIND_ADDR=nope"),
    ];
    for (env, expected) in cases {
        let (code, out, err) = run_with_env(env, &[]);
        assert_eq!(code, 2, "{env:?}: stderr {err}");
        assert!(out.is_empty());
        assert!(
            err.contains(expected),
            "{env:?}: expected {expected:?} in {err:?}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn a_three_node_cluster_replicates_and_expires_everywhere() {
    let base = free_range(5);
    let proc = Process::start(&env_for(base, 5, 3));
    let ports = proc.claimed_ports(3).await;
    for &p in &ports {
        wait_until(Duration::from_secs(10), "health", || async move {
            get(&format!("http://127.0.0.1:{p}/health"))
                .await
                .is_some_and(|r| r.status == 200 && r.json()["status"] == "healthy")
        })
        .await;
    }
    wait_until(Duration::from_secs(5), "full mesh", || full_mesh(&ports)).await;

    // A write on node 1 is on every node with the TTL headers.
    let r = put(
        &format!("http://127.0.0.1:{}/data/greeting?ttl=600", ports[0]),
        b"hello",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    wait_for_value(&ports[1..], "greeting", "hello").await;
    for &p in &ports[1..] {
        let url = format!("http://127.0.0.1:{p}/data/greeting");
        let r = get(&url).await.unwrap();
        assert_eq!(r.text(), "hello");
        assert_eq!(r.header("x-original-ttl"), Some("600"));
        let remaining: u64 = r.header("x-remaining-ttl").unwrap().parse().unwrap();
        assert!((598..=600).contains(&remaining), "{remaining}");
        assert!(r.header("x-created-at").is_some());
    }

    // A 1-second value is gone from every node once it expires.
    let r = put(
        &format!("http://127.0.0.1:{}/data/short?ttl=1", ports[1]),
        b"x",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    for &p in &ports {
        let r = get(&format!("http://127.0.0.1:{p}/data/short"))
            .await
            .unwrap();
        assert_eq!(r.status, 404, "node {p} still serves an expired key");
    }
}

#[tokio::test]
async fn sigterm_leaves_the_mesh_and_exits_0_within_5_seconds() {
    let base = free_range(6);
    let (_a, mut b, pa, _pb) = two_meshed_processes(base, Duration::from_secs(5)).await;

    let t0 = Instant::now();
    b.signal("TERM");
    let code = b.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0), "exit status; log:\n{}", b.log_text());
    assert!(t0.elapsed() < Duration::from_secs(5));
    // The survivors dropped the leavers at once (no failure timeout involved).
    wait_until(
        Duration::from_millis(500),
        "survivors see only each other",
        || full_mesh(&pa),
    )
    .await;
    assert!(b.log_text().contains("left the mesh"));
}

#[tokio::test]
async fn a_busy_port_is_skipped() {
    let base = free_range(4);
    let _squatter = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, base + 1))).unwrap();
    let proc = Process::start(&env_for(base, 4, 3));
    let mut ports = proc.claimed_ports(3).await;
    ports.sort();
    assert_eq!(ports, vec![base, base + 2, base + 3]);
    wait_until(Duration::from_secs(5), "mesh around the squatter", || {
        full_mesh(&ports)
    })
    .await;
}

#[tokio::test]
async fn two_processes_started_together_get_distinct_ports_and_one_mesh() {
    let base = free_range(6);
    let a = Process::start(&env_for(base, 6, 3));
    let b = Process::start(&env_for(base, 6, 3));
    let (pa, pb) = (a.claimed_ports(3).await, b.claimed_ports(3).await);
    let mut all: Vec<u16> = pa.iter().chain(&pb).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "ports overlap: {pa:?} {pb:?}");
    wait_until(Duration::from_secs(5), "6-node mesh", || full_mesh(&all)).await;
    // A write in one process reaches the other.
    let r = put(
        &format!("http://127.0.0.1:{}/data/cross?ttl=60", pa[0]),
        b"both",
    )
    .await
    .unwrap();
    assert_eq!(r.status, 201);
    wait_for_value(&pb[2..], "cross", "both").await;
}

#[tokio::test]
async fn a_full_range_is_a_clear_error() {
    let base = free_range(2);
    let _a = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, base))).unwrap();
    let _b = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, base + 1))).unwrap();
    let mut proc = Process::start(&env_for(base, 2, 1));
    let code = proc.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(1), "log:\n{}", proc.log_text());
    let log = proc.log_text();
    assert!(log.contains("no node could start"), "{log}");
    assert!(log.contains("in use"), "{log}");
    assert!(!log.contains("panicked"));
}

#[tokio::test]
async fn a_killed_process_is_evicted_within_3_seconds_and_rejoins_after_restart() {
    let base = free_range(6);
    let (a, mut b, pa, _pb) = two_meshed_processes(base, Duration::from_secs(5)).await;

    b.signal("KILL");
    assert!(b.wait_exit(Duration::from_secs(5)).is_some());
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(3),
        "survivors drop the killed nodes",
        || full_mesh(&pa),
    )
    .await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "eviction took {took:?}");
    assert!(a.log_text().contains("peer declared dead"));

    // The restarted process (fresh ids, same ports if free) joins at once.
    let c = Process::start(&env_for(base, 6, 3));
    let pc = c.claimed_ports(3).await;
    let all: Vec<u16> = pa.iter().chain(&pc).copied().collect();
    wait_until(
        Duration::from_secs(5),
        "mesh with the restarted process",
        || full_mesh(&all),
    )
    .await;
}
