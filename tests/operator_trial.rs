//! Findings of an operator's trial (issue 19, item 4), against the real binary: ports
//! freed later are claimed, the healthcheck counts one process's nodes, empty ports do
//! not count as probe failures, `/status` gives a reachable address.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

async fn healthy(port: u16) -> bool {
    get(&format!("http://127.0.0.1:{port}/health"))
        .await
        .is_some_and(|r| r.status == 200)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_without_a_port_claims_one_freed_later() {
    let base = free_range(2);
    let held = std::net::TcpListener::bind(("127.0.0.1", base + 1)).expect("hold a port");
    let p = Process::start(&env_for(base, 2, 2));
    p.claimed_ports(1).await;
    wait_until(
        Duration::from_secs(20),
        "the node without a port logged",
        || async { p.log_text().contains("node not started") },
    )
    .await;
    drop(held);
    wait_until(
        Duration::from_secs(30),
        "the second node serving on the freed port",
        || healthy(base + 1),
    )
    .await;
    assert!(p.log_text().contains("claimed port (freed since start)"));
}

fn healthcheck(env: &[(&str, String)]) -> String {
    let mut cmd = binary();
    cmd.arg("healthcheck")
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run healthcheck");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_healthcheck_counts_the_nodes_of_one_process() {
    let base = free_range(6);
    let env = env_for(base, 6, 3);
    let (_a, _b, pa, pb) = two_meshed_processes(base, Duration::from_secs(30)).await;
    for p in pa.iter().chain(&pb) {
        wait_until(Duration::from_secs(10), "healthy", || healthy(*p)).await;
    }
    let out = tokio::task::spawn_blocking(move || healthcheck(&env))
        .await
        .expect("healthcheck");
    assert!(out.starts_with("healthy: 3 of 3 nodes healthy"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_ports_of_the_range_are_not_probe_failures() {
    let base = free_range(8);
    let p = Process::start(&env_for(base, 8, 2));
    let ports = p.claimed_ports(2).await;
    wait_until(Duration::from_secs(20), "meshed", || full_mesh(&ports)).await;
    let failures = metric(ports[0], "repram_probe_failures_total").await;
    let misses = metric(ports[0], "repram_discovery_misses_total").await;
    wait_until(
        Duration::from_secs(60),
        "empty ports probed again",
        || async { metric(ports[0], "repram_discovery_misses_total").await >= misses + 12.0 },
    )
    .await;
    let after = metric(ports[0], "repram_probe_failures_total").await;
    // A member may miss a probe on a loaded machine, but not one per empty-port probe.
    assert!(
        after - failures <= 2.0,
        "probe failures rose from {failures} to {after} on an idle healthy cluster"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_gives_a_reachable_address() {
    let base = free_range(1);
    let mut env = env_for(base, 1, 1);
    env.retain(|(k, _)| *k != "BIND_ADDR");
    env.push(("BIND_ADDR", "0.0.0.0".into()));
    let p = Process::start(&env);
    let port = p.claimed_ports(1).await[0];
    wait_until(Duration::from_secs(10), "healthy", || healthy(port)).await;
    let status = get(&format!("http://127.0.0.1:{port}/status"))
        .await
        .expect("status")
        .json();
    let address = status["address"].as_str().unwrap_or_default().to_string();
    assert!(
        !address.starts_with("0.0.0.0") && address.ends_with(&format!(":{port}")),
        "/status address {address:?}"
    );
}
