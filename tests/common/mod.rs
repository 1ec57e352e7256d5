//! Shared test helpers: a tiny HTTP client, polling with a deadline, free port ranges,
//! and a guard around the real `repram-flux` binary.
#![allow(dead_code)]

pub mod forge;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Send one request; `None` when the connection failed.
pub async fn request(
    method: Method,
    url: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Option<Reply> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body)).expect("valid request");
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(Reply {
        status,
        headers,
        body,
    })
}

pub async fn get(url: &str) -> Option<Reply> {
    request(Method::GET, url, Bytes::new(), &[]).await
}

pub async fn put(url: &str, body: &'static [u8]) -> Option<Reply> {
    request(Method::PUT, url, Bytes::from_static(body), &[]).await
}

/// Poll `cond` until it returns true or `timeout` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Start an in-process cluster and wait (at most 5 s) until its first node is ready:
/// the cluster and that node's port.
pub async fn start_ready(
    config: repram_flux::Config,
    tuning: repram_flux::Tuning,
) -> (repram_flux::Cluster, u16) {
    let cluster = repram_flux::start(config, tuning).expect("start");
    let port = cluster.ports()[0];
    let ready = format!("http://127.0.0.1:{port}/ready");
    wait_until(Duration::from_secs(5), "ready", || {
        let ready = ready.clone();
        async move { get(&ready).await.is_some_and(|r| r.status == 200) }
    })
    .await;
    (cluster, port)
}

/// [`start_ready`] with the default tuning: the cluster and its first node's base URL.
pub async fn one_node(config: repram_flux::Config) -> (repram_flux::Cluster, String) {
    let (cluster, port) = start_ready(config, repram_flux::Tuning::default()).await;
    (cluster, format!("http://127.0.0.1:{port}"))
}

/// Start an in-process cluster and wait (at most 5 s) until its nodes form a full mesh.
pub async fn start_meshed(config: repram_flux::Config) -> (repram_flux::Cluster, Vec<u16>) {
    let cluster = repram_flux::start(config, repram_flux::Tuning::default()).expect("start");
    let ports = cluster.ports().to_vec();
    wait_until(Duration::from_secs(5), "full mesh", || full_mesh(&ports)).await;
    (cluster, ports)
}

/// Two processes of 3 nodes each on `base..base+6`, once they form one 6-node mesh
/// (waiting at most `timeout`): the processes and their claimed ports.
pub async fn two_meshed_processes(
    base: u16,
    timeout: Duration,
) -> (Process, Process, Vec<u16>, Vec<u16>) {
    let a = Process::start(&env_for(base, 6, 3));
    let b = Process::start(&env_for(base, 6, 3));
    let (pa, pb) = (a.claimed_ports(3).await, b.claimed_ports(3).await);
    let all: Vec<u16> = pa.iter().chain(&pb).copied().collect();
    wait_until(timeout, "6-node mesh", || full_mesh(&all)).await;
    (a, b, pa, pb)
}

/// The value of a metric of the node on `port`: `name` is the whole series name, labels
/// included (`repram_replication_received_batches_total{via="Http"}`).
pub async fn metric(port: u16, name: &str) -> f64 {
    let text = get(&format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// Wait until the node on each of `ports` serves `value` under `key`.
pub async fn wait_for_value(ports: &[u16], key: &str, value: &str) {
    for &p in ports {
        let url = format!("http://127.0.0.1:{p}/data/{key}");
        let what = format!("{key} = {value:?} on port {p}");
        wait_until(Duration::from_secs(5), &what, || {
            let url = url.clone();
            async move {
                get(&url)
                    .await
                    .is_some_and(|r| r.status == 200 && r.text() == value)
            }
        })
        .await;
    }
}

/// A base port whose `width` ports are all free right now, in 20000-32767: below Linux's
/// ephemeral range (32768 and up), so no client socket of a test running alongside takes
/// one of them meanwhile. Tests still cope with a port being taken later: nodes skip busy
/// ports.
pub fn free_range(width: u16) -> u16 {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    for _ in 0..200 {
        let base: u16 = rng.gen_range(20_000..32_768 - width);
        let all_free = (base..base + width)
            .all(|p| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, p))).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range of width {width}")
}

/// Ports of the nodes of a cluster as seen by `/peers` of the node on `port`.
pub async fn peer_ports(port: u16) -> Option<Vec<u16>> {
    let r = get(&format!("http://127.0.0.1:{port}/peers")).await?;
    let mut ports: Vec<u16> = r.json()["peers"]
        .as_array()?
        .iter()
        .filter_map(|p| p["address"].as_str()?.rsplit_once(':')?.1.parse().ok())
        .collect();
    ports.sort();
    Some(ports)
}

/// True when every node in `ports` sees exactly all the others.
pub async fn full_mesh(ports: &[u16]) -> bool {
    for &p in ports {
        let mut want: Vec<u16> = ports.iter().copied().filter(|&q| q != p).collect();
        want.sort();
        if peer_ports(p).await != Some(want) {
            return false;
        }
    }
    true
}

/// The real binary, killed on drop; its stderr is echoed (so test capture shows it) and
/// kept for assertions.
pub struct Process {
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_repram-flux"))
}

impl Process {
    /// Start the binary with exactly `env` (plus PATH) as its environment.
    pub fn start(env: &[(&str, String)]) -> Process {
        let mut cmd = binary();
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPRAM_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start repram-flux");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = log.clone();
        let pid = child.id();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[repram-flux {pid}] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Process {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Ports from the "claimed port" log lines, waiting until `n` are known.
    pub async fn claimed_ports(&self, n: usize) -> Vec<u16> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ports: Vec<u16> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("claimed port"))
                .filter_map(|l| {
                    let rest = l.split("port=").nth(1)?;
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .collect();
            if ports.len() >= n {
                return ports;
            }
            assert!(
                Instant::now() < deadline,
                "the process did not claim {n} ports; log: {:?}",
                self.log.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Send a signal by name (TERM, KILL, STOP, CONT).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Wait for exit up to `timeout`; the exit code, or None if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Environment for a process on `base..base+max_ports-1` of 127.0.0.1.
pub fn env_for(base: u16, max_ports: u16, nodes: u16) -> Vec<(&'static str, String)> {
    vec![
        ("DISCOVERY_DOMAIN", "127.0.0.1".into()),
        ("BIND_ADDR", "127.0.0.1".into()),
        ("BASE_PORT", base.to_string()),
        ("MAX_PORTS", max_ports.to_string()),
        ("NODE_COUNT", nodes.to_string()),
        ("REPRAM_MIN_TTL", "1".into()),
    ]
}
