//! Tests that run the real `repram-flux` binary on free high ports.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

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
        (
            &[("REPRAM_TRUST_PROXY", "true")],
            "REPRAM_TRUST_PROXY is retired: list your reverse proxies' addresses in \
             REPRAM_TRUSTED_PROXIES instead",
        ),
        (
            &[("REPRAM_TRUST_PROXY", "false")],
            "REPRAM_TRUST_PROXY is retired",
        ),
        (
            &[("REPRAM_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/129")],
            "(bad item: 2001:db8::/129)",
        ),
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
async fn sigterm_leaves_the_mesh_and_exits_0() {
    let base = free_range(6);
    let (a, mut b, pa, _pb) = two_meshed_processes(base, Duration::from_secs(5)).await;

    b.signal("TERM");
    let code = b.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "exit status; log:\n{}", b.log_text());
    wait_until(
        Duration::from_secs(30),
        "survivors see only each other",
        || full_mesh(&pa),
    )
    .await;
    assert!(b.log_text().contains("left the mesh"));
    // The survivors dropped the leavers because they said goodbye, not by failure
    // detection: every drop is a "peer left", none a "peer declared dead".
    let log = a.log_text();
    let left = log.lines().filter(|l| l.contains("peer left")).count();
    assert!(left >= 9, "3 survivors x 3 leavers; log:\n{log}");
    assert!(!log.contains("peer declared dead"), "{log}");
}

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base = free_range(1);
    let mut proc = Process::start(&env_for(base, 1, 1));
    let port = proc.claimed_ports(1).await[0];
    wait_until(Duration::from_secs(10), "node ready", || async move {
        get(&format!("http://127.0.0.1:{port}/ready"))
            .await
            .is_some_and(|r| r.status == 200)
    })
    .await;
    // A write under way: the handler is reading its body (100 Continue says so).
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    conn.write_all(
        b"PUT /data/inflight?ttl=60 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .expect("head");
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
        .await
        .expect("100 Continue in time")
        .expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 100 Continue"));
    conn.write_all(b"ab").await.expect("part of the body");

    // SIGTERM, and wait until the node is shutting down before the body is finished.
    proc.signal("TERM");
    wait_until(Duration::from_secs(10), "shutdown under way", || {
        let started = proc.log_text().contains("shutting down");
        async move { started }
    })
    .await;
    conn.write_all(b"cde").await.expect("rest of the body");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight was not finished: {answer:?}; log:\n{}",
        proc.log_text()
    );
    assert_eq!(proc.wait_exit(Duration::from_secs(30)), Some(0));
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
async fn a_killed_process_is_evicted_and_rejoins_after_restart() {
    let base = free_range(6);
    let (a, mut b, pa, _pb) = two_meshed_processes(base, Duration::from_secs(5)).await;

    b.signal("KILL");
    assert!(b.wait_exit(Duration::from_secs(5)).is_some());
    // How fast is the benchmark's business (scripts/bench.sh); here: that it happens.
    wait_until(
        Duration::from_secs(30),
        "survivors drop the killed nodes",
        || full_mesh(&pa),
    )
    .await;
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

/// The JSON log lines of `proc` (panics on a line that is not one JSON object).
fn json_lines(proc: &Process) -> Vec<serde_json::Value> {
    proc.log
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v.is_object(), "not an object: {l}");
            for field in ["timestamp", "level", "message"] {
                assert!(v[field].is_string(), "no {field}: {l}");
            }
            v
        })
        .collect()
}

#[tokio::test]
async fn json_logs_carry_node_port_and_event_for_each_membership_change() {
    // A (2 nodes, JSON logs) watches B join and leave (SIGTERM) and C join, fall silent
    // (SIGSTOP) and die; B logs text, so its banner is checked as people read it.
    let base = free_range(6); // two spare ports, in case one is taken meanwhile
    let mut env = env_for(base, 6, 2);
    env.push(("REPRAM_LOG_FORMAT", "json".into()));
    let a = Process::start(&env);
    let claimed = |lines: &[serde_json::Value]| -> Vec<u16> {
        lines
            .iter()
            .filter(|l| l["message"] == "claimed port")
            .filter_map(|l| l["port"].as_u64().map(|p| p as u16))
            .collect()
    };
    wait_until(Duration::from_secs(20), "A claims 2 ports", || {
        let n = claimed(&json_lines(&a)).len();
        async move { n == 2 }
    })
    .await;
    let pa = claimed(&json_lines(&a));
    let mut b = Process::start(&env_for(base, 6, 1));
    let pb = b.claimed_ports(1).await[0];
    let c = Process::start(&env_for(base, 6, 1));
    let pc = c.claimed_ports(1).await[0];
    let all = [pa[0], pa[1], pb, pc];
    wait_until(Duration::from_secs(5), "4-node mesh", || full_mesh(&all)).await;
    let id = |port: u16| async move {
        get(&format!("http://127.0.0.1:{port}/health"))
            .await
            .expect("/health")
            .json()["node_id"]
            .as_str()
            .expect("node_id")
            .to_string()
    };
    let (id_b, id_c) = (id(pb).await, id(pc).await);

    b.signal("TERM");
    assert_eq!(b.wait_exit(Duration::from_secs(5)), Some(0));
    // Stopped, not killed: its port stays open but silent, so A suspects it before
    // declaring it dead (a refused connection is death at once, with no suspicion).
    c.signal("STOP");
    wait_until(Duration::from_secs(10), "A's nodes drop C", || {
        full_mesh(&pa)
    })
    .await;

    let lines = json_lines(&a);
    // The banner: every claimed port and the URL of every dashboard.
    let banner = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cluster starting"))
        })
        .expect("a cluster starting line");
    let message = banner["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("dashboard: http://127.0.0.1:{}/", pa[0])),
        "{banner}"
    );
    assert_eq!(banner["nodes"], 2, "{banner}");
    for p in &pa {
        let ports = banner["ports"].as_str().expect("ports");
        assert!(ports.contains(&p.to_string()), "{banner}");
        let urls = banner["dashboards"].as_str().expect("dashboards");
        assert!(urls.contains(&format!("http://127.0.0.1:{p}/")), "{banner}");
    }
    // Each membership change, seen by a node of A, with that node's id and port.
    let a_ids: Vec<String> = [id(pa[0]).await, id(pa[1]).await].into();
    for (event, peer) in [
        ("joined", &id_b),
        ("left", &id_b),
        ("joined", &id_c),
        ("suspected", &id_c),
        ("dead", &id_c),
    ] {
        let line = lines
            .iter()
            .find(|l| l["event"] == event && l["peer"] == peer.as_str())
            .unwrap_or_else(|| panic!("no {event} line for {peer}:\n{}", a.log_text()));
        let node = line["node"].as_str().expect("node");
        let port = line["port"].as_u64().expect("port") as u16;
        let at = a_ids.iter().position(|x| x == node).expect("a node of A");
        assert_eq!(port, pa[at], "{line}");
        assert!(line["addr"]
            .as_str()
            .is_some_and(|s| s.starts_with("127.0.0.1:")));
    }
    // Text logs: the same banner, one line, readable.
    let text = b.log_text();
    let banner = text
        .lines()
        .find(|l| l.contains("cluster starting"))
        .expect("text banner");
    assert!(
        banner.contains(&format!("dashboard: http://127.0.0.1:{pb}/")),
        "{banner}"
    );
    assert!(banner.contains(&format!("try: curl http://127.0.0.1:{pb}/health")));
}

/// The environment the process with pid `pid` was started with, one item per line.
fn environ_of(pid: u32) -> String {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    String::from_utf8_lossy(&environ).replace('\0', "\n")
}

/// The tunables of `GLIBC_TUNABLES` in `environ` ([`environ_of`]). glibc up to 2.38
/// parses the variable in place, ending each tunable with a NUL: a list then shows as its
/// first tunable followed by one line per other tunable.
fn tunables_in(environ: &str) -> Vec<String> {
    let mut lines = environ.lines();
    let Some(first) = lines.find_map(|l| l.strip_prefix("GLIBC_TUNABLES=")) else {
        return Vec::new();
    };
    let rest = lines.take_while(|l| l.starts_with("glibc."));
    std::iter::once(first)
        .chain(rest)
        .flat_map(|l| l.split(':'))
        .map(str::to_owned)
        .collect()
}

/// The process restarts itself once, in place (same pid, same name), with glibc's thread
/// caches limited (issue 22: they kept freed memory resident after expiries), keeps
/// other tunables it was given, leaves an operator's own thread-cache setting alone, and
/// never restarts a second time.
#[tokio::test]
async fn the_process_limits_glibc_thread_caches_unless_the_operator_set_them() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        return;
    }
    let limit = "glibc.malloc.tcache_count=1";
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Env, &[&str]); 4] = [
        (&[], &[limit]),
        (
            &[("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")],
            &["glibc.malloc.arena_max=4", limit],
        ),
        (
            &[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")],
            &["glibc.malloc.tcache_count=7"],
        ),
        // As if glibc had dropped the variable on the first restart (secure mode).
        (&[("REPRAM_FLUX_RESTARTED", "1")], &[]),
    ];
    let binary_name = std::path::Path::new(env!("CARGO_BIN_EXE_repram-flux"))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (given, want) in cases {
        let base = free_range(1);
        let mut env = env_for(base, 1, 1);
        env.extend(given.iter().map(|&(k, v)| (k, v.to_owned())));
        let proc = Process::start(&env);
        let ports = proc.claimed_ports(1).await;
        assert_eq!(ports, [base]);
        let health = get(&format!("http://127.0.0.1:{base}/health")).await;
        assert_eq!(health.map(|r| r.status), Some(200));
        let environ = environ_of(proc.pid());
        assert_eq!(tunables_in(&environ), want, "{given:?}");
        // The kernel names a process after the file it executes (15 bytes at most).
        let comm =
            std::fs::read_to_string(format!("/proc/{}/comm", proc.pid())).unwrap_or_default();
        assert!(
            binary_name.starts_with(comm.trim()) && !comm.trim().is_empty(),
            "{comm:?}"
        );
        // Restarted at most once: one start-up line.
        let starts = proc.log_text().matches("cluster starting").count();
        assert_eq!(starts, 1, "{}", proc.log_text());
    }
}
