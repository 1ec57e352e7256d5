//! The public API under abuse, against the real binary (issue 18): spoofed
//! `X-Forwarded-For` from a non-loopback client, a listed proxy's clients, the rate
//! budget across the ports of a process, 200 concurrent 10 MB uploads with the
//! process's RSS sampled, and whole-body clients over the value limit.
//!
//! The address tests run the binary and its clients inside a network namespace made
//! here (`abuse…`), whose `lo` holds 198.51.100.1-4: they need root and `ip`. Without
//! them the test says so and passes, except under `CI=true`, where it fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;

const MIB: u64 = 1 << 20;

fn clients_script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/abuse_clients.py")
        .display()
        .to_string()
}

/// JSON printed by `cmd` (a run of tests/abuse_clients.py).
fn run_json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("run the client script");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{cmd:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn count(statuses: &serde_json::Value, want: u64) -> usize {
    statuses
        .as_array()
        .map_or(0, |a| a.iter().filter(|s| s.as_u64() == Some(want)).count())
}

// ---------------------------------------------------------------------------------------
// Client addresses.

/// A network namespace of our own, deleted on drop.
struct Namespace {
    name: String,
}

impl Namespace {
    /// A namespace with `lo` up and holding `addrs`; `None` (after saying why) when this
    /// machine cannot make one and we are not in CI.
    fn create(addrs: &[&str]) -> Option<Namespace> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let ip = Command::new("ip").arg("-V").output().is_ok();
        let python = Command::new("python3").arg("--version").output().is_ok();
        if !(root && ip && python) {
            let why = format!("needs root ({root}), ip ({ip}) and python3 ({python})");
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: this test {why}"
            );
            eprintln!("SKIPPED outside CI: this test {why}");
            return None;
        }
        let name = format!("abuse{}x{}", std::process::id(), rand::random::<u16>());
        let ns = Namespace { name };
        ns.ip(&["netns", "add", &ns.name]);
        ns.ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        for a in addrs {
            ns.ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{a}/32"),
                "dev",
                "lo",
            ]);
        }
        Some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").args(args).status().expect("run ip");
        assert!(status.success(), "ip {args:?} failed");
    }

    /// `program` run inside the namespace.
    fn exec(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// `n` GETs of /health from `src`, spread over `ports`, with `xff` ("-" for none;
    /// "{i}" becomes the request number): the answers and how long they took.
    fn burst(&self, src: &str, ports: &[u16], xff: &str, n: usize) -> (serde_json::Value, f64) {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut cmd = self.exec("python3");
        cmd.args([
            clients_script(),
            "burst".into(),
            src.into(),
            ports.join(","),
            xff.into(),
            n.to_string(),
        ]);
        let out = run_json(&mut cmd);
        let elapsed = out["elapsed"].as_f64().unwrap_or(f64::MAX);
        (out["statuses"].clone(), elapsed)
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The most requests one client may get through in `elapsed` seconds at 1 per second
/// with a burst of 2 (plus one for a refill landing at the edge).
fn allowed_at_one_per_second(elapsed: f64) -> usize {
    2 + elapsed.ceil() as usize + 1
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_listed_proxies_and_budgets_are_per_process() {
    // .1, .2, .4: direct clients; .3: the listed proxy.
    let Some(ns) = Namespace::create(&[
        "198.51.100.1",
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
    ]) else {
        return;
    };
    let cmd = ns.exec(env!("CARGO_BIN_EXE_repram-flux"));
    let mut env = env_for(8081, 3, 3);
    env.retain(|(k, _)| *k != "BIND_ADDR");
    env.push(("BIND_ADDR", "0.0.0.0".into()));
    env.push(("REPRAM_RATE_LIMIT", "1".into()));
    env.push(("REPRAM_TRUSTED_PROXIES", "198.51.100.3".into()));
    let process = Process::start_with(cmd, &env);
    let ports = process.claimed_ports(3).await;
    let mut failures = Vec::new();
    let check = |failures: &mut Vec<String>, what: &str, statuses: &serde_json::Value, allowed| {
        let ok = count(statuses, 200);
        let refused = count(statuses, 429);
        eprintln!("{what}: {ok} answered 200, {refused} refused 429 (at most {allowed} may pass): {statuses}");
        if ok > allowed {
            failures.push(format!("{what}: {ok} passed, at most {allowed} may"));
        }
    };

    // A direct client rotating fake addresses is limited by its real one.
    let (s, t) = ns.burst("198.51.100.1", &ports[..1], "203.0.113.{i}", 30);
    check(
        &mut failures,
        "direct client, rotating X-Forwarded-For",
        &s,
        allowed_at_one_per_second(t),
    );
    // Claiming to be loopback does not exempt it.
    let (s, t) = ns.burst("198.51.100.2", &ports[..1], "127.0.0.1", 30);
    check(
        &mut failures,
        "direct client claiming X-Forwarded-For: 127.0.0.1",
        &s,
        allowed_at_one_per_second(t),
    );
    // Through the listed proxy: the last entry is the client; earlier ones are ignored.
    let (s, t) = ns.burst("198.51.100.3", &ports[..1], "127.0.0.1, 203.0.113.50", 30);
    check(
        &mut failures,
        "proxied client 203.0.113.50 (spoofed first entry)",
        &s,
        allowed_at_one_per_second(t),
    );
    // Another client behind the same proxy has a budget of its own.
    let (s, _) = ns.burst("198.51.100.3", &ports[..1], "203.0.113.51", 2);
    eprintln!("proxied client 203.0.113.51 right after: {s}");
    if count(&s, 200) != 2 {
        failures.push(format!(
            "a second client of the proxy was refused along with the first: {s}"
        ));
    }
    // A proxy forwarding a loopback address: still limited.
    let (s, t) = ns.burst("198.51.100.3", &ports[..1], "127.0.0.1", 30);
    check(
        &mut failures,
        "proxied client 127.0.0.1",
        &s,
        allowed_at_one_per_second(t),
    );
    // One budget per process: three ports do not triple it.
    let (s, t) = ns.burst("198.51.100.4", &ports, "-", 30);
    check(
        &mut failures,
        "direct client spread over the 3 ports",
        &s,
        allowed_at_one_per_second(t),
    );
    drop(process);
    assert!(failures.is_empty(), "{failures:#?}");
}

// ---------------------------------------------------------------------------------------
// Uploads.

/// Resident set size of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// PUT `body` raw on a new connection and return the status (0 when no answer came).
async fn raw_put(port: u16, key: String, body: Arc<Vec<u8>>) -> u16 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)).await else {
        return 0;
    };
    let head = format!(
        "PUT /data/{key}?ttl=600 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // A server that answers early may close before all is sent: read the answer anyway.
    let _ = async {
        s.write_all(head.as_bytes()).await?;
        s.write_all(&body).await
    }
    .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(60), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_hundred_concurrent_10_mb_uploads_stay_within_the_budgets() {
    const BUDGET: u64 = 209_715_200;
    let base = free_range(3);
    let mut env = env_for(base, 3, 3);
    env.push(("REPRAM_MAX_STORAGE_BYTES", BUDGET.to_string()));
    let process = Process::start(&env);
    let ports = process.claimed_ports(3).await;
    wait_until(Duration::from_secs(20), "full mesh", || full_mesh(&ports)).await;
    let pid = process.pid();
    // The idle baseline: the least RSS over a second of quiet.
    let mut baseline = u64::MAX;
    for _ in 0..20 {
        baseline = baseline.min(rss(pid));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn({
        let (peak, done) = (peak.clone(), done.clone());
        async move {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let body = Arc::new(vec![b'v'; 10_000_000]);
    let started = Instant::now();
    let uploads: Vec<_> = (0..200)
        .map(|i| tokio::spawn(raw_put(ports[i % 3], format!("big-{i}"), body.clone())))
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for u in uploads {
        *statuses.entry(u.await.unwrap_or(0)).or_default() += 1;
    }
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let peak = peak.load(Ordering::Relaxed);

    // What the nodes hold: every value once (replicas of a value share its memory within
    // the process), and a value may be on one node only (stored there, refused by the
    // others as full: a 202).
    let mut keys = std::collections::BTreeSet::new();
    let mut most_on_a_node = 0u64;
    for &p in &ports {
        let listed = get(&format!("http://127.0.0.1:{p}/keys?limit=1000"))
            .await
            .expect("keys")
            .json();
        for k in listed["keys"].as_array().into_iter().flatten() {
            keys.insert(k.as_str().unwrap_or_default().to_string());
        }
        let status = get(&format!("http://127.0.0.1:{p}/status"))
            .await
            .expect("status");
        most_on_a_node = most_on_a_node.max(status.json()["bytes"].as_u64().unwrap_or(0));
    }
    let stored: u64 = keys.iter().map(|k| k.len() as u64 + 10_000_000).sum();
    let target = (stored + baseline) as f64 * 1.2;
    // A few seconds after the burst, and for a few seconds (background work such as
    // anti-entropy must not keep taking memory back either): the most RSS seen.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut settled = 0;
    for _ in 0..30 {
        settled = settled.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mib = |b: u64| b as f64 / MIB as f64;
    eprintln!(
        "200 x 10 MB PUTs in {took:?}: {statuses:?}; RSS idle {:.0} MiB, peak {:.0} MiB, \
         at most {:.0} MiB 3-6 s later ({} values stored, {:.0} MiB; target <= {:.0} MiB)",
        mib(baseline),
        mib(peak),
        mib(settled),
        keys.len(),
        mib(stored),
        target / MIB as f64
    );
    let answered: usize = [201, 202, 503, 507]
        .iter()
        .map(|s| statuses.get(s).copied().unwrap_or(0))
        .sum();
    assert_eq!(answered, 200, "every upload gets an answer: {statuses:?}");
    assert!(
        most_on_a_node <= BUDGET,
        "a node stores {most_on_a_node}, over its budget"
    );
    // Bound: the idle process, the storage budget, the receive cap (256 MiB) and 96 MiB
    // for connection buffers and the like.
    let bound = baseline + BUDGET + 256 * MIB + 96 * MIB;
    assert!(
        peak <= bound,
        "peak RSS {:.0} MiB over the bound {:.0} MiB",
        mib(peak),
        mib(bound)
    );
    assert!(
        settled as f64 <= target,
        "RSS {:.0} MiB 3-6 s after the burst, more than 20 % over stored + idle ({:.0} MiB)",
        mib(settled),
        mib(stored + baseline)
    );
}

#[tokio::test]
async fn whole_body_clients_over_the_limit_read_their_413() {
    let base = free_range(1);
    let mut env = env_for(base, 1, 1);
    env.push(("REPRAM_MAX_VALUE_BYTES", MIB.to_string()));
    let process = Process::start(&env);
    let port = process.claimed_ports(1).await[0];
    let mut failures = Vec::new();
    for size in [3_000_000, 10_000_000] {
        let mut cmd = Command::new("python3");
        cmd.args([
            clients_script(),
            "whole_body".into(),
            port.to_string(),
            size.to_string(),
            "30".into(),
        ]);
        let statuses = run_json(&mut cmd)["statuses"].clone();
        let got = count(&statuses, 413);
        eprintln!("{size}-byte body, 1 MiB limit: {got} of 30 read 413: {statuses}");
        if got != 30 {
            failures.push(format!("{size} bytes: {got} of 30 read 413: {statuses}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
