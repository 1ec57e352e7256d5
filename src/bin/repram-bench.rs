//! `repram-bench`: the measurements behind `scripts/bench.sh`.
//!
//! `repram-bench all --server target/release/repram-flux [--quick] ...` starts the server
//! binary as separate processes on free loopback port ranges and measures, in one run:
//! GET and replicated-PUT throughput with `wrk` (side by side with an nginx that
//! `scripts/bench.sh` started), mesh formation time, write-to-visible-everywhere latency,
//! memory per key, catch-up time of a late node, and GET latency while clients page
//! through all keys (`listing.rs`). It prints a table and writes a JSON
//! report. Every loop is bounded in count and time; every child process is killed when
//! the run ends, fails, or receives SIGINT/SIGTERM.
//!
//! `repram-bench free-port [--from N]` prints a free loopback TCP port (used for nginx).
//!
//! `repram-bench soak --server PATH [--seconds 60]` runs the bounded soak of
//! `scripts/soak.sh` (see `soak.rs`).

#[path = "repram-bench/listing.rs"]
mod listing;
#[path = "repram-bench/soak.rs"]
mod soak;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Size of every benchmark value, as issue 6 asks.
const VALUE_BYTES: usize = 100;
/// First port tried for the servers' ranges (below the usual ephemeral range 32768+).
const FIRST_PORT: u16 = 20_000;
/// Last port a range may use.
const LAST_PORT: u16 = 32_000;

/// Pids of every child process alive, so a signal can kill them all.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn register_child(pid: u32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
}

fn unregister_child(pid: u32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|p| *p != pid);
}

fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn kill_all_children() {
    let pids: Vec<u32> = CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in pids {
        send_signal(pid, "-KILL");
    }
}

// ---------------------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone)]
struct Args {
    server: PathBuf,
    out: PathBuf,
    tmp: PathBuf,
    lua_dir: PathBuf,
    wrk: Option<PathBuf>,
    nginx_port: Option<u16>,
    nginx_bin: Option<PathBuf>,
    quick: bool,
    profile: String,
    only: Option<BTreeSet<String>>,
    build_s: Option<f64>,
}

const USAGE: &str = "usage:
  repram-bench all --server PATH [--out FILE] [--tmp DIR] [--lua-dir DIR] [--wrk PATH]
                   [--nginx-port PORT] [--nginx-bin PATH] [--quick] [--profile NAME]
                   [--only get,put,mesh,visible,memory,catchup,listing,evict] [--build-seconds S]
  repram-bench free-port [--from PORT]
  repram-bench table [FILE]      print the table of a saved report (bench/results.json)
  repram-bench soak --server PATH [--seconds 60] [--nodes 3] [--tmp DIR] [--out FILE]
                                 bounded soak: expiring keys, RSS back to baseline
Run scripts/bench.sh rather than this binary directly: it builds the server, installs wrk
and nginx-light and starts the reference nginx.";

impl Default for Args {
    fn default() -> Self {
        Args {
            server: PathBuf::new(),
            out: PathBuf::from("bench/results.json"),
            tmp: PathBuf::from("bench/tmp"),
            lua_dir: PathBuf::from("bench"),
            wrk: None,
            nginx_port: None,
            nginx_bin: None,
            quick: false,
            profile: "release".into(),
            only: None,
            build_s: None,
        }
    }
}

fn parse_args(mut argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args::default();
    argv.reverse();
    while let Some(flag) = argv.pop() {
        let mut value = |name: &str| argv.pop().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value("--server")?.into(),
            "--out" => args.out = value("--out")?.into(),
            "--tmp" => args.tmp = value("--tmp")?.into(),
            "--lua-dir" => args.lua_dir = value("--lua-dir")?.into(),
            "--wrk" => args.wrk = Some(value("--wrk")?.into()),
            "--nginx-bin" => args.nginx_bin = Some(value("--nginx-bin")?.into()),
            "--nginx-port" => {
                let v = value("--nginx-port")?;
                args.nginx_port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?);
            }
            "--profile" => args.profile = value("--profile")?,
            "--build-seconds" => {
                let v = value("--build-seconds")?;
                args.build_s = v.parse().ok();
            }
            "--only" => {
                let v = value("--only")?;
                args.only = Some(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            "--quick" => args.quick = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.server.as_os_str().is_empty() {
        return Err("--server PATH is required".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let cmd = argv.remove(0);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repram-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd.as_str() {
        "free-port" => {
            let mut from = 19_000u16;
            if argv.len() == 2 && argv[0] == "--from" {
                from = argv[1].parse().unwrap_or(from);
            }
            match (from..LAST_PORT).find(|p| port_is_free(*p)) {
                Some(p) => {
                    println!("{p}");
                    ExitCode::SUCCESS
                }
                None => {
                    eprintln!("repram-bench: no free port from {from}");
                    ExitCode::FAILURE
                }
            }
        }
        "table" => {
            let path = argv.first().map_or("bench/results.json", String::as_str);
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            {
                Ok(report) => {
                    println!("{}", render_table(&report));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("repram-bench: {path}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        "all" => {
            let args = match parse_args(argv) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("repram-bench: {e}\n{USAGE}");
                    return ExitCode::from(2);
                }
            };
            guarded(&runtime, run_all(args))
        }
        "soak" => {
            let args = match soak::parse(argv) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("repram-bench: {e}");
                    return ExitCode::from(2);
                }
            };
            guarded(&runtime, soak::run(args))
        }
        other => {
            eprintln!("repram-bench: unknown command {other:?}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Runs `run` to its end; on SIGINT/SIGTERM, and after it ends, kills every child process.
fn guarded(
    runtime: &tokio::runtime::Runtime,
    run: impl std::future::Future<Output = ExitCode>,
) -> ExitCode {
    let code = runtime.block_on(async move {
        tokio::spawn(async {
            wait_for_signal().await;
            eprintln!("repram-bench: interrupted; killing child processes");
            kill_all_children();
            std::process::exit(130);
        });
        run.await
    });
    kill_all_children();
    code
}

async fn wait_for_signal() {
    repram_flux::shutdown_signal().await
}

// ---------------------------------------------------------------------------------------
// HTTP client

/// A pooled keep-alive HTTP/1.1 client (hyper-util), loopback only.
#[derive(Clone)]
struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(500)));
        let client = Client::builder(TokioExecutor::new())
            // Below the server's 10 s header timeout, which also closes idle keep-alive
            // connections: a pooled connection the server already closed fails the request.
            .pool_idle_timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(256)
            .build(connector);
        Http { client }
    }

    async fn request(
        &self,
        method: Method,
        port: u16,
        path: &str,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        let req = Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1:{port}{path}"))
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let fut = async {
            let resp = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| "timed out".to_string())?
    }

    async fn get(&self, port: u16, path: &str) -> Result<(StatusCode, Bytes), String> {
        self.request(
            Method::GET,
            port,
            path,
            Bytes::new(),
            Duration::from_secs(5),
        )
        .await
    }

    async fn json_timeout(
        &self,
        port: u16,
        path: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let (status, body) = self
            .request(Method::GET, port, path, Bytes::new(), timeout)
            .await?;
        if status != StatusCode::OK {
            return Err(format!("GET {path} on {port}: {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {path} on {port}: {e}"))
    }

    async fn put(&self, port: u16, path: &str, body: Bytes) -> Result<StatusCode, String> {
        self.request(Method::PUT, port, path, body, Duration::from_secs(10))
            .await
            .map(|(s, _)| s)
    }

    async fn json(&self, port: u16, path: &str) -> Result<Value, String> {
        self.json_timeout(port, path, Duration::from_secs(5)).await
    }
}

// ---------------------------------------------------------------------------------------
// Processes

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A server process (`repram-flux`) started for one measurement.
struct Server {
    child: Child,
    pid: u32,
    started: Instant,
    base: u16,
    nodes: u16,
    log: PathBuf,
    done: bool,
}

impl Server {
    /// Node `i` (1-based) normally claims `BASE_PORT+i-1`: the range was checked free.
    fn ports(&self) -> Vec<u16> {
        (0..self.nodes).map(|i| self.base + i).collect()
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    /// `Err` with the exit status and the end of the log if the process has exited.
    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.done = true;
                unregister_child(self.pid);
                Err(format!(
                    "server process exited unexpectedly ({status}); log {}:\n{}",
                    self.log.display(),
                    tail(&self.log, 15)
                ))
            }
            Err(e) => Err(format!("cannot check the server process: {e}")),
        }
    }

    /// SIGTERM, wait up to 6 s (the contract says 5), then SIGKILL. Returns the shutdown
    /// time, the exit status, and whether it had to be killed.
    async fn stop(&mut self) -> Value {
        if self.done {
            return json!({ "already_exited": true });
        }
        let t0 = Instant::now();
        send_signal(self.pid, "-TERM");
        let mut killed = false;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break s.code(),
                Ok(None) if t0.elapsed() > Duration::from_secs(6) => {
                    let _ = self.child.kill();
                    let s = self.child.wait().ok().and_then(|s| s.code());
                    killed = true;
                    break s;
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => break None,
            }
        };
        self.done = true;
        unregister_child(self.pid);
        json!({
            "shutdown_s": round3(t0.elapsed().as_secs_f64()),
            "exit_code": status,
            "killed_after_6s": killed,
            "log": log_summary(&self.log),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
            unregister_child(self.pid);
        }
    }
}

/// What `wait_mesh` saw of one node, in seconds since the process started.
#[derive(Clone, Default)]
struct NodeView {
    first_answer: Option<f64>,
    full_at: Option<f64>,
    largest: usize,
}

/// Distinct peers other than itself in a `/peers` answer.
fn peer_count(v: &Value) -> usize {
    let own = v["node_id"].as_str().unwrap_or("");
    let ids: BTreeSet<&str> = v["peers"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["node_id"].as_str()).collect())
        .unwrap_or_default();
    ids.iter().filter(|id| **id != own).count()
}

/// Counts of notable lines in a server log (it runs with REPRAM_LOG=warn).
fn log_summary(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let count = |pat: &str| text.lines().filter(|l| l.contains(pat)).count();
    json!({
        "warn_lines": count(" WARN "),
        "error_lines": count(" ERROR "),
        "peer_declared_dead": count("declared dead"),
        "too_many_open_files": count("Too many open files"),
        "panics": count("panicked"),
    })
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Statistics

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// p50/p99/max/mean of durations, in milliseconds.
fn latency_summary(mut samples_ms: Vec<f64>) -> Value {
    samples_ms.sort_by(|a, b| a.total_cmp(b));
    let n = samples_ms.len();
    let mean = samples_ms.iter().sum::<f64>() / n.max(1) as f64;
    json!({
        "samples": n,
        "p50_ms": round3(percentile(&samples_ms, 50.0)),
        "p90_ms": round3(percentile(&samples_ms, 90.0)),
        "p99_ms": round3(percentile(&samples_ms, 99.0)),
        "max_ms": round3(samples_ms.last().copied().unwrap_or(f64::NAN)),
        "mean_ms": round3(mean),
    })
}

/// One figure from several wrk rounds of the same server: the throughput over all of
/// them, the median of each latency percentile, the errors summed, and every round's own.
fn combine_rounds(rounds: &[Value]) -> Value {
    let total = |k: &str| rounds.iter().filter_map(|r| r[k].as_f64()).sum::<f64>();
    let (requests, seconds) = (total("requests"), total("seconds"));
    let med = |k: &str| {
        let v: Vec<f64> = rounds.iter().filter_map(|r| r[k].as_f64()).collect();
        (!v.is_empty()).then(|| round3(median(v)))
    };
    json!({
        "requests_per_s": (seconds > 0.0).then(|| round1(requests / seconds)),
        "requests": requests,
        "seconds": round3(seconds),
        "p50_ms": med("p50_ms"),
        "p90_ms": med("p90_ms"),
        "p99_ms": med("p99_ms"),
        "max_ms": med("max_ms"),
        "errors": total("errors"),
        "rounds": rounds.iter().map(|r| r["requests_per_s"].clone()).collect::<Vec<_>>(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    percentile(&v, 50.0)
}

// ---------------------------------------------------------------------------------------
// The run

struct Bench {
    args: Args,
    http: Http,
    next_port: Cell<u16>,
    started: Instant,
    budget: Duration,
    errors: Vec<String>,
    value: Bytes,
    /// Extra environment for every server started (the soak's TTL policy).
    server_env: Vec<(&'static str, String)>,
}

impl Bench {
    fn new(args: Args, budget: Duration) -> Bench {
        Bench {
            args,
            http: Http::new(),
            next_port: Cell::new(FIRST_PORT),
            started: Instant::now(),
            budget,
            errors: Vec::new(),
            value: Bytes::from(vec![b'v'; VALUE_BYTES]),
            server_env: Vec::new(),
        }
    }

    fn settings(&self) -> Settings {
        if self.args.quick {
            Settings {
                wrk_seconds: 2,
                wrk_warmup_seconds: 0,
                get_rounds: 1,
                get_round_seconds: 2,
                mesh_reps: 1,
                // N=100 takes tens of seconds to start and stop; only the full run has it.
                mesh_sizes: vec![3, 10],
                mesh_timeout_small: 10,
                mesh_timeout_large: 10,
                visible_writes: 100,
                memory_keys: 2_000,
                catchup_keys: 2_000,
                catchup_timeout: 20,
                converge_timeout: 10,
                listing_keys: 5_000,
                listing_wrk_seconds: 2,
            }
        } else {
            Settings {
                wrk_seconds: 10,
                wrk_warmup_seconds: 2,
                get_rounds: 3,
                get_round_seconds: 4,
                mesh_reps: 3,
                mesh_sizes: vec![3, 10, 100],
                mesh_timeout_small: 10,
                mesh_timeout_large: 30,
                visible_writes: 1000,
                memory_keys: 100_000,
                catchup_keys: 100_000,
                catchup_timeout: 60,
                converge_timeout: 30,
                listing_keys: 200_000,
                listing_wrk_seconds: 8,
            }
        }
    }

    fn wants(&self, phase: &str) -> bool {
        match &self.args.only {
            Some(only) => only.contains(phase),
            None => true,
        }
    }

    fn over_budget(&self) -> bool {
        self.started.elapsed() > self.budget
    }

    /// A free range of `size` consecutive loopback ports; ranges are never reused in a run.
    fn free_range(&self, size: u16) -> Result<u16, String> {
        let mut base = self.next_port.get();
        while base.saturating_add(size) < LAST_PORT {
            match (base..base + size).find(|p| !port_is_free(*p)) {
                None => {
                    self.next_port.set(base + size);
                    return Ok(base);
                }
                Some(busy) => base = busy + 1,
            }
        }
        Err(format!(
            "no {size} consecutive free ports between {FIRST_PORT} and {LAST_PORT}"
        ))
    }

    fn spawn_server(
        &self,
        label: &str,
        nodes: u16,
        max_ports: u16,
        base: Option<u16>,
    ) -> Result<Server, String> {
        let base = match base {
            Some(b) => b,
            None => self.free_range(max_ports)?,
        };
        let logs = self.args.tmp.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
        let log = logs.join(format!("{label}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let file2 = file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&self.args.server);
        for var in [
            "RUST_LOG",
            "DISCOVERY_PEERS",
            "ADVERTISE_HOST",
            "FLUX_APP_NAME",
            "FLUX_NODE_HOST_IP",
            "REPRAM_CLUSTER_SECRET",
            "REPRAM_LOG_FORMAT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("REPRAM_LOG", "warn")
            .env("NODE_COUNT", nodes.to_string())
            .env("BASE_PORT", base.to_string())
            .env("MAX_PORTS", max_ports.to_string())
            .env("BIND_ADDR", "127.0.0.1")
            .env("DISCOVERY_DOMAIN", "127.0.0.1")
            .env("REPRAM_RATE_LIMIT", "0")
            .envs(self.server_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(file2);
        let started = Instant::now();
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.args.server.display()))?;
        let pid = child.id();
        register_child(pid);
        Ok(Server {
            child,
            pid,
            started,
            base,
            nodes,
            log,
            done: false,
        })
    }

    /// Poll every node's `/peers` (each node on its own, so a slow node does not hold up
    /// the others) until each lists all the others; a node that got there is not polled
    /// again. Then check once more that all of them do at the same moment.
    async fn wait_mesh(&self, server: &mut Server, timeout: Duration) -> Result<Value, String> {
        let ports = server.ports();
        let n = ports.len();
        let want = n - 1;
        let started = server.started;
        let deadline = started + timeout;
        let interval = if n > 20 {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(2)
        };
        let views: RefCell<Vec<NodeView>> = RefCell::new(vec![NodeView::default(); n]);
        let poll_node = |i: usize, port: u16| {
            let views = &views;
            async move {
                while Instant::now() < deadline {
                    // `/health` carries the live peer count in a few bytes; polling the
                    // full `/peers` list of every node would cost the servers (and this
                    // client) more CPU than the mesh being measured.
                    let r = self
                        .http
                        .json_timeout(port, "/health", Duration::from_secs(1))
                        .await;
                    let now = started.elapsed().as_secs_f64();
                    if let Some(seen) = r.ok().and_then(|v| v["peers"].as_u64()) {
                        let seen = usize::try_from(seen).unwrap_or(usize::MAX);
                        let mut views = views.borrow_mut();
                        let view = &mut views[i];
                        view.first_answer.get_or_insert(now);
                        view.largest = view.largest.max(seen);
                        if seen >= want {
                            view.full_at = Some(now);
                            return;
                        }
                    }
                    tokio::time::sleep(interval).await;
                }
            }
        };
        let all = join_all(ports.iter().enumerate().map(|(i, p)| poll_node(i, *p)));
        let watchdog = async {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Err(e) = server.check_alive() {
                    return e;
                }
            }
        };
        tokio::select! {
            _ = all => {}
            e = watchdog => return Err(e),
        }
        let views = views.into_inner();
        let first_answer = views.iter().filter_map(|v| v.first_answer).reduce(f64::min);
        let answering = views.iter().filter(|v| v.first_answer.is_some()).count();
        let full: Vec<f64> = views.iter().filter_map(|v| v.full_at).collect();
        if full.len() < n {
            let mut answered_views: Vec<usize> = views
                .iter()
                .filter(|v| v.first_answer.is_some())
                .map(|v| v.largest)
                .collect();
            answered_views.sort_unstable();
            return Ok(json!({
                "converged": false,
                "timeout_s": timeout.as_secs_f64(),
                "nodes_answering": answering,
                "nodes_with_full_view": full.len(),
                "views_of_answering_nodes": {
                    "min": answered_views.first(),
                    "median": answered_views.get(answered_views.len() / 2),
                    "max": answered_views.last(),
                },
                "first_answer_s": first_answer.map(round3),
            }));
        }
        let converged = full.iter().copied().fold(0.0, f64::max);
        let all_answering = views
            .iter()
            .filter_map(|v| v.first_answer)
            .fold(0.0, f64::max);
        let confirm = join_all(
            ports
                .iter()
                .map(|p| self.http.json_timeout(*p, "/peers", Duration::from_secs(2))),
        )
        .await;
        let stable = confirm
            .iter()
            .all(|v| v.as_ref().map(|v| peer_count(v) >= want).unwrap_or(false));
        Ok(json!({
            "converged": true,
            "seconds": round3(converged),
            "first_answer_s": first_answer.map(round3),
            "all_answering_s": round3(all_answering),
            "full_view_confirmed_after": stable,
        }))
    }

    /// Write `count` keys `{prefix}{i:07}` with 100-byte values, `concurrency` at a time,
    /// round-robin over `ports`.
    async fn write_keys(
        &self,
        ports: &[u16],
        prefix: &str,
        count: usize,
        ttl: u64,
        concurrency: usize,
    ) -> Value {
        let next = Cell::new(0usize);
        let (created, accepted, other, failed) = (
            Cell::new(0u64),
            Cell::new(0u64),
            Cell::new(0u64),
            Cell::new(0u64),
        );
        let first_error: std::cell::RefCell<Option<String>> = Default::default();
        let t0 = Instant::now();
        let deadline = t0 + Duration::from_secs(120);
        let worker = || async {
            loop {
                let i = next.get();
                if i >= count || Instant::now() > deadline {
                    break;
                }
                next.set(i + 1);
                let port = ports[i % ports.len()];
                let path = format!("/data/{prefix}{i:07}?ttl={ttl}");
                match self.http.put(port, &path, self.value.clone()).await {
                    Ok(StatusCode::CREATED) => created.set(created.get() + 1),
                    Ok(StatusCode::ACCEPTED) => accepted.set(accepted.get() + 1),
                    Ok(s) => {
                        other.set(other.get() + 1);
                        first_error
                            .borrow_mut()
                            .get_or_insert(format!("PUT answered {s}"));
                    }
                    Err(e) => {
                        failed.set(failed.get() + 1);
                        first_error.borrow_mut().get_or_insert(e);
                    }
                }
            }
        };
        join_all((0..concurrency).map(|_| worker())).await;
        let secs = t0.elapsed().as_secs_f64();
        let done = created.get() + accepted.get() + other.get() + failed.get();
        json!({
            "keys": count,
            "sent": done,
            "seconds": round3(secs),
            "writes_per_s": round1(done as f64 / secs),
            "created_201": created.get(),
            "accepted_202": accepted.get(),
            "other_status": other.get(),
            "failed": failed.get(),
            "first_error": first_error.into_inner(),
        })
    }

    /// Wait until every port's `/status` shows at least `keys` keys.
    async fn wait_keys(
        &self,
        server: &mut Server,
        ports: &[u16],
        keys: u64,
        timeout: Duration,
    ) -> Result<(bool, f64, Vec<u64>), String> {
        let t0 = Instant::now();
        loop {
            server.check_alive()?;
            let counts = self.key_counts(ports).await;
            if counts.iter().all(|c| *c >= keys) {
                return Ok((true, t0.elapsed().as_secs_f64(), counts));
            }
            if t0.elapsed() > timeout {
                return Ok((false, t0.elapsed().as_secs_f64(), counts));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn key_counts(&self, ports: &[u16]) -> Vec<u64> {
        join_all(ports.iter().map(|p| self.http.json(*p, "/status")))
            .await
            .into_iter()
            .map(|r| r.ok().and_then(|v| v["keys"].as_u64()).unwrap_or(0))
            .collect()
    }

    /// Counters of node `port`'s `/metrics` worth reporting after a load run.
    async fn node_metrics(&self, port: u16) -> Value {
        let Ok((_, body)) = self.http.get(port, "/metrics").await else {
            return Value::Null;
        };
        let text = String::from_utf8_lossy(&body);
        let mut statuses = serde_json::Map::new();
        let mut counters = serde_json::Map::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            if name.starts_with("repram_http_requests_total{")
                && name.to_ascii_lowercase().contains("route=\"data\"")
            {
                if let Some(s) = name.split("status=\"").nth(1) {
                    let code = s.split('"').next().unwrap_or("?").to_string();
                    statuses.insert(code, json!(value));
                }
            } else if let Some(short) = name.strip_prefix("repram_replication_") {
                if short.ends_with("_total") {
                    counters.insert(format!("replication_{short}"), json!(value));
                }
            }
        }
        json!({ "data_requests_by_status": statuses, "counters": counters })
    }

    // -- wrk ------------------------------------------------------------------------------

    async fn wrk(
        &self,
        url: &str,
        script: &str,
        script_args: &[&str],
        seconds: u64,
    ) -> Result<Value, String> {
        let wrk = self.args.wrk.clone().ok_or("wrk not available")?;
        let out = self.args.tmp.join("wrk.out");
        let file = std::fs::File::create(&out).map_err(|e| e.to_string())?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let script = self.args.lua_dir.join(script);
        let mut child = Command::new(wrk)
            .args(["-t2", "-c50", "--timeout", "5s"])
            .arg(format!("-d{seconds}s"))
            .arg("-s")
            .arg(&script)
            .arg(url)
            .arg("--")
            .args(script_args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start wrk: {e}"))?;
        register_child(child.id());
        let deadline = Instant::now() + Duration::from_secs(seconds + 20);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    unregister_child(child.id());
                    return Err("wrk did not finish in time".into());
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e.to_string()),
            }
        };
        unregister_child(child.id());
        let text = std::fs::read_to_string(&out).unwrap_or_default();
        if !status.success() {
            return Err(format!("wrk failed ({status}): {text}"));
        }
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("WRKJSON "))
            .ok_or_else(|| format!("no WRKJSON line in wrk output: {text}"))?;
        let raw: Value =
            serde_json::from_str(line).map_err(|e| format!("wrk json: {e}: {line}"))?;
        let secs = raw["duration_us"].as_f64().unwrap_or(1.0) / 1e6;
        let requests = raw["requests"].as_f64().unwrap_or(0.0);
        let us = |k: &str| raw[k].as_f64().map(|v| round3(v / 1000.0));
        let errors: f64 = [
            "errors_connect",
            "errors_read",
            "errors_write",
            "errors_status",
            "errors_timeout",
        ]
        .iter()
        .map(|k| raw[*k].as_f64().unwrap_or(0.0))
        .sum();
        // The smoke run gates CI: a run with failed requests or answers of 400 and up
        // measured something other than what it claims.
        if self.args.quick && errors > 0.0 {
            return Err(format!(
                "wrk saw {errors} errors (connect, read, write, status >= 400, timeout) on {url}: {line}"
            ));
        }
        Ok(json!({
            "requests_per_s": round1(requests / secs),
            "requests": requests,
            "seconds": round3(secs),
            "p50_ms": us("lat_p50_us"),
            "p90_ms": us("lat_p90_us"),
            "p99_ms": us("lat_p99_us"),
            "max_ms": us("lat_max_us"),
            "errors": errors,
            "raw": raw,
        }))
    }

    // -- phases ---------------------------------------------------------------------------

    /// GET throughput of node 1 of a 3-node cluster and of nginx, measured in alternating
    /// rounds (the order swapping every round) so that both see the same machine: on a
    /// shared host one 10 s run of each can land in different phases of its load.
    async fn phase_get(&mut self, s: &Settings) -> Result<Value, String> {
        let mut server = self.spawn_server("get-n3", 3, 10, None)?;
        let mesh = self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
        let port = server.ports()[0];
        let status = self
            .http
            .put(port, "/data/bench-get?ttl=86400", self.value.clone())
            .await?;
        if !status.is_success() {
            return Err(format!("PUT bench-get answered {status}"));
        }
        let repram_url = format!("http://127.0.0.1:{port}/data/bench-get");
        let nginx_url = self
            .args
            .nginx_port
            .map(|p| format!("http://127.0.0.1:{p}/data/bench-get"));
        let urls: Vec<&str> = nginx_url
            .iter()
            .map(String::as_str)
            .chain([repram_url.as_str()])
            .collect();
        if s.wrk_warmup_seconds > 0 {
            for url in &urls {
                self.wrk(url, "wrk-get.lua", &[], s.wrk_warmup_seconds)
                    .await?;
            }
        }
        let (mut nginx_rounds, mut repram_rounds) = (Vec::new(), Vec::new());
        for round in 0..s.get_rounds {
            let mut order = urls.clone();
            if round % 2 == 1 {
                order.reverse();
            }
            for url in order {
                let r = self
                    .wrk(url, "wrk-get.lua", &[], s.get_round_seconds)
                    .await?;
                if url == repram_url {
                    repram_rounds.push(r);
                } else {
                    nginx_rounds.push(r);
                }
            }
        }
        server.check_alive()?;
        let mut out = serde_json::Map::new();
        let mut repram = combine_rounds(&repram_rounds);
        repram["rss_kib_after"] = json!(server.rss_kib());
        repram["node_metrics"] = self.node_metrics(port).await;
        repram["server"] = json!({ "nodes": 3, "target": "node 1", "mesh": mesh });
        repram["stop"] = server.stop().await;
        if !nginx_rounds.is_empty() {
            let paired: Vec<f64> = repram_rounds
                .iter()
                .zip(&nginx_rounds)
                .filter_map(|(r, n)| {
                    ratio(r["requests_per_s"].as_f64(), n["requests_per_s"].as_f64())
                })
                .collect();
            out.insert("round_ratios".into(), json!(paired));
            if !paired.is_empty() {
                out.insert("ratio_median".into(), json!(round3(median(paired))));
            }
            out.insert("nginx".into(), combine_rounds(&nginx_rounds));
        }
        out.insert("repram".into(), repram);
        Ok(Value::Object(out))
    }

    async fn phase_put(&mut self, s: &Settings) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        if let Some(port) = self.args.nginx_port {
            let url = format!("http://127.0.0.1:{port}/");
            if s.wrk_warmup_seconds > 0 {
                self.wrk(&url, "wrk-put.lua", &["nginx-warm"], s.wrk_warmup_seconds)
                    .await?;
            }
            out.insert(
                "nginx".into(),
                self.wrk(&url, "wrk-put.lua", &["nginx"], s.wrk_seconds)
                    .await?,
            );
        }
        for nodes in [3u16, 10] {
            let mut server = self.spawn_server(&format!("put-n{nodes}"), nodes, 10, None)?;
            let mesh = self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
            let ports = server.ports();
            let url = format!("http://127.0.0.1:{}/", ports[0]);
            if s.wrk_warmup_seconds > 0 {
                self.wrk(&url, "wrk-put.lua", &["warm"], s.wrk_warmup_seconds)
                    .await?;
            }
            let mut r = self
                .wrk(&url, "wrk-put.lua", &[&format!("n{nodes}")], s.wrk_seconds)
                .await?;
            server.check_alive()?;
            let ended = Instant::now();
            let metrics = self.node_metrics(ports[0]).await;
            // Did every replica get every write, and how long after the load ended?
            let origin_keys = self.key_counts(&ports[..1]).await[0];
            let (ok, _, counts) = self
                .wait_keys(
                    &mut server,
                    &ports,
                    origin_keys,
                    Duration::from_secs(s.converge_timeout),
                )
                .await?;
            r["replicas"] = json!({
                "origin_keys": origin_keys,
                "all_replicas_caught_up": ok,
                "caught_up_after_load_s": round3(ended.elapsed().as_secs_f64()),
                "min_keys_on_a_replica": counts.iter().min(),
                "keys_per_node": counts,
            });
            r["node1_metrics"] = metrics;
            r["rss_kib_after"] = json!(server.rss_kib());
            r["server"] = json!({ "nodes": nodes, "target": "node 1", "mesh": mesh });
            r["stop"] = server.stop().await;
            out.insert(format!("repram_n{nodes}"), r);
        }
        Ok(Value::Object(out))
    }

    async fn phase_mesh(&mut self, s: &Settings) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        for &n in &s.mesh_sizes {
            let max_ports = if n > 10 { 200 } else { 10 };
            let timeout = if n > 10 {
                s.mesh_timeout_large
            } else {
                s.mesh_timeout_small
            };
            let mut runs = Vec::new();
            for rep in 0..s.mesh_reps {
                if self.over_budget() {
                    break;
                }
                let mut server =
                    self.spawn_server(&format!("mesh-n{n}-{rep}"), n, max_ports, None)?;
                let mut r = self
                    .wait_mesh(&mut server, Duration::from_secs(timeout))
                    .await?;
                r["rss_kib"] = json!(server.rss_kib());
                r["stop"] = server.stop().await;
                let converged = r["converged"].as_bool().unwrap_or(false);
                runs.push(r);
                if !converged {
                    break; // a second try would only repeat the timeout
                }
            }
            let times: Vec<f64> = runs.iter().filter_map(|r| r["seconds"].as_f64()).collect();
            let all_converged = !runs.is_empty() && times.len() == runs.len();
            out.insert(
                format!("n{n}"),
                json!({
                    "nodes": n,
                    "max_ports": max_ports,
                    "converged": all_converged,
                    "median_s": if all_converged { json!(round3(median(times.clone()))) } else { Value::Null },
                    "timeout_s": timeout,
                    "runs": runs,
                }),
            );
        }
        Ok(Value::Object(out))
    }

    async fn phase_visible(&mut self, s: &Settings) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        for nodes in [3u16, 10] {
            let mut server = self.spawn_server(&format!("visible-n{nodes}"), nodes, 10, None)?;
            self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
            let ports = server.ports();
            let (origin, others) = (ports[0], &ports[1..]);
            // Open the connections first so that connection setup is not measured.
            for p in &ports {
                let _ = self.http.get(*p, "/health").await;
            }
            let mut put_ms = Vec::new();
            let mut visible_ms = Vec::new();
            let (mut accepted, mut failed, mut not_visible) = (0u64, 0u64, 0u64);
            let t_run = Instant::now();
            for i in 0..s.visible_writes {
                if t_run.elapsed() > Duration::from_secs(60) {
                    break;
                }
                let key = format!("vis-n{nodes}-{i:06}");
                let value = Bytes::from(format!("{i:0>width$}", width = VALUE_BYTES));
                let t0 = Instant::now();
                let status = self
                    .http
                    .put(origin, &format!("/data/{key}?ttl=300"), value.clone())
                    .await;
                let put = t0.elapsed();
                match status {
                    Ok(StatusCode::CREATED) => {}
                    Ok(StatusCode::ACCEPTED) => accepted += 1,
                    _ => {
                        failed += 1;
                        continue;
                    }
                }
                put_ms.push(put.as_secs_f64() * 1e3);
                let path = format!("/data/{key}");
                let mut pending: Vec<u16> = others.to_vec();
                let deadline = t0 + Duration::from_secs(2);
                while !pending.is_empty() && Instant::now() < deadline {
                    let got = join_all(pending.iter().map(|p| self.http.get(*p, &path))).await;
                    pending = pending
                        .iter()
                        .zip(got)
                        .filter(|(_, r)| !matches!(r, Ok((StatusCode::OK, b)) if *b == value))
                        .map(|(p, _)| *p)
                        .collect();
                }
                if pending.is_empty() {
                    visible_ms.push(t0.elapsed().as_secs_f64() * 1e3);
                } else {
                    not_visible += 1;
                }
            }
            server.check_alive()?;
            let stop = server.stop().await;
            out.insert(
                format!("n{nodes}"),
                json!({
                    "nodes": nodes,
                    "writes": s.visible_writes,
                    "visible_everywhere": latency_summary(visible_ms),
                    "put_response": latency_summary(put_ms),
                    "accepted_202": accepted,
                    "failed_puts": failed,
                    "not_visible_within_2s": not_visible,
                    "stop": stop,
                }),
            );
        }
        Ok(Value::Object(out))
    }

    async fn phase_memory(&mut self, s: &Settings) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        let keys = s.memory_keys;
        for nodes in [1u16, 3] {
            let mut server = self.spawn_server(&format!("memory-n{nodes}"), nodes, 10, None)?;
            self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
            let ports = server.ports();
            // Warm up the connections (and the server's per-connection buffers).
            let warm: Vec<_> = (0..64)
                .map(|i| self.http.get(ports[i % ports.len()], "/health"))
                .collect();
            join_all(warm).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let before = server.rss_kib().ok_or("cannot read VmRSS")?;
            let prefix = format!("mem{nodes}-");
            let write = self.write_keys(&ports[..1], &prefix, keys, 3600, 32).await;
            let (all, secs, counts) = self
                .wait_keys(&mut server, &ports, keys as u64, Duration::from_secs(60))
                .await?;
            tokio::time::sleep(Duration::from_millis(1000)).await;
            server.check_alive()?;
            let after = server.rss_kib().ok_or("cannot read VmRSS")?;
            let status = self
                .http
                .json(ports[0], "/status")
                .await
                .unwrap_or(Value::Null);
            let stop = server.stop().await;
            let key_len = prefix.len() + 7;
            let payload_per_copy = (key_len + VALUE_BYTES) as f64;
            let copies = keys as f64 * f64::from(nodes);
            let growth = (after as f64 - before as f64) * 1024.0;
            out.insert(
                format!("n{nodes}"),
                json!({
                    "nodes": nodes,
                    "keys": keys,
                    "key_bytes": key_len,
                    "value_bytes": VALUE_BYTES,
                    "rss_before_kib": before,
                    "rss_after_kib": after,
                    "rss_growth_bytes": growth,
                    "payload_bytes_per_copy": payload_per_copy,
                    "bytes_per_key_copy_total": round1(growth / copies),
                    "overhead_bytes_per_key": round1(growth / copies - payload_per_copy),
                    "growth_bytes_per_logical_key": round1(growth / keys as f64),
                    "all_replicas_hold_all_keys": all,
                    "replicas_caught_up_s": round3(secs),
                    "keys_per_node": counts,
                    "node1_status_bytes": status["bytes"],
                    "write": write,
                    "stop": stop,
                }),
            );
        }
        Ok(Value::Object(out))
    }

    /// Live peers the node on `port` counts (its `/health`), `None` when it does not answer.
    async fn live_peers(&self, port: u16) -> Option<u64> {
        let v = self
            .http
            .json_timeout(port, "/health", Duration::from_secs(1))
            .await
            .ok()?;
        v["peers"].as_u64()
    }

    /// Poll the nodes on `ports` every 20 ms until each counts `want` live peers: the
    /// seconds since `since`, or `None` at `timeout`.
    async fn wait_peers(
        &self,
        ports: &[u16],
        want: u64,
        since: Instant,
        timeout: Duration,
    ) -> Option<f64> {
        while since.elapsed() < timeout {
            let mut all = true;
            for &p in ports {
                if self.live_peers(p).await != Some(want) {
                    all = false;
                    break;
                }
            }
            if all {
                return Some(round3(since.elapsed().as_secs_f64()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Failure detection: two processes of 3 nodes in one mesh; one is SIGKILLed, and the
    /// seconds until every node of the other counts only its 2 siblings (the speed bound
    /// tests/cli.rs no longer asserts).
    async fn phase_evict(&mut self, _s: &Settings) -> Result<Value, String> {
        const TIMEOUT: Duration = Duration::from_secs(30);
        let base = self.free_range(6)?;
        let mut a = self.spawn_server("evict-a", 3, 6, Some(base))?;
        self.wait_mesh(&mut a, Duration::from_secs(10)).await?;
        let mut b = self.spawn_server("evict-b", 3, 6, Some(base))?;
        let ports = a.ports();
        if self
            .wait_peers(&ports, 5, Instant::now(), TIMEOUT)
            .await
            .is_none()
        {
            return Err("the two processes did not form one 6-node mesh".into());
        }
        let killed = Instant::now();
        send_signal(b.pid, "-KILL");
        let seconds = self.wait_peers(&ports, 2, killed, TIMEOUT).await;
        let _ = b.stop().await;
        let stop = a.stop().await;
        Ok(json!({
            "evicted": seconds.is_some(),
            "seconds": seconds,
            "timeout_s": TIMEOUT.as_secs(),
            "stop": stop,
        }))
    }

    async fn phase_catchup(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(2)?;
        let mut first = self.spawn_server("catchup-a", 1, 2, Some(base))?;
        self.wait_mesh(&mut first, Duration::from_secs(10)).await?;
        let write = self.write_keys(&[base], "cu-", keys, 3600, 32).await;
        let held = self.key_counts(&[base]).await[0];
        if held < keys as u64 {
            return Err(format!("first process holds only {held} of {keys} keys"));
        }
        let mut second = self.spawn_server("catchup-b", 1, 2, Some(base))?;
        let port = base + 1;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let mut first_answer = None;
        let mut last = 0u64;
        let outcome = loop {
            second.check_alive()?;
            first.check_alive()?;
            let elapsed = second.started.elapsed();
            if elapsed > timeout {
                break None;
            }
            if let Ok(v) = self.http.json(port, "/status").await {
                first_answer.get_or_insert(second.started.elapsed().as_secs_f64());
                last = v["keys"].as_u64().unwrap_or(0);
                if last >= keys as u64 {
                    break Some(second.started.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let stop_b = second.stop().await;
        let stop_a = first.stop().await;
        let three = self.catchup_three_joins_three(s).await;
        let rolling = self.catchup_rolling_restart(s).await;
        Ok(json!({
            "keys": keys,
            "caught_up": outcome.is_some(),
            "seconds": outcome.map(round3),
            "timeout_s": s.catchup_timeout,
            "keys_held_at_end": last,
            "first_answer_s": first_answer.map(round3),
            "write": write,
            "stop": [stop_a, stop_b],
            "three_joins_three": three.unwrap_or_else(|e| json!({ "error": e })),
            "rolling_restart": rolling.unwrap_or_else(|e| json!({ "error": e })),
        }))
    }

    /// Wait until every node of `ports` holds `keys` keys, while reading random keys of
    /// `prefix` (written by [`Bench::write_keys`]) on them: the seconds since `since` (or
    /// `None` at the timeout) and the count of GET answers 200 and 404 meanwhile.
    async fn catch_up_reading(
        &self,
        server: &mut Server,
        ports: &[u16],
        prefix: &str,
        keys: usize,
        since: Instant,
        timeout: Duration,
    ) -> Result<(Option<f64>, u64, u64, Vec<u64>), String> {
        let (mut found, mut missing) = (0u64, 0u64);
        let mut pick = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            server.check_alive()?;
            let counts = self.key_counts(ports).await;
            if counts.iter().all(|c| *c >= keys as u64) {
                return Ok((Some(since.elapsed().as_secs_f64()), found, missing, counts));
            }
            if since.elapsed() > timeout {
                return Ok((None, found, missing, counts));
            }
            let reads = (0..24).map(|n| {
                pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let key = (pick >> 33) as usize % keys;
                let port = ports[n % ports.len()];
                let path = format!("/data/{prefix}{key:07}");
                async move { self.http.get(port, &path).await }
            });
            for r in join_all(reads.collect::<Vec<_>>()).await {
                match r {
                    Ok((StatusCode::OK, _)) => found += 1,
                    Ok((StatusCode::NOT_FOUND, _)) => missing += 1,
                    _ => {}
                }
            }
        }
    }

    /// A 3-node process joins a 3-node process holding `catchup_keys` keys.
    async fn catchup_three_joins_three(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(6)?;
        let mut first = self.spawn_server("catchup-3a", 3, 6, Some(base))?;
        self.wait_mesh(&mut first, Duration::from_secs(10)).await?;
        let old: Vec<u16> = (base..base + 3).collect();
        let write = self.write_keys(&old, "c3-", keys, 3600, 32).await;
        let (ok, _, counts) = self
            .wait_keys(
                &mut first,
                &old,
                keys as u64,
                Duration::from_secs(s.catchup_timeout),
            )
            .await?;
        if !ok {
            return Err(format!(
                "first process holds only {counts:?} of {keys} keys"
            ));
        }
        let mut second = self.spawn_server("catchup-3b", 3, 6, Some(base))?;
        let new: Vec<u16> = (base + 3..base + 6).collect();
        let started = second.started;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let outcome = self
            .catch_up_reading(&mut second, &new, "c3-", keys, started, timeout)
            .await;
        let stop_b = second.stop().await;
        let stop_a = first.stop().await;
        let (seconds, found, missing, counts) = outcome?;
        Ok(json!({
            "keys": keys,
            "caught_up": seconds.is_some(),
            "seconds": seconds.map(round3),
            "keys_held_at_end": counts,
            "reads_200_during": found,
            "reads_404_during": missing,
            "write": write,
            "stop": [stop_a, stop_b],
        }))
    }

    /// Three processes of 2 nodes hold `catchup_keys` keys; each is stopped and started
    /// again in turn, the next as soon as the replacement's nodes hold every key.
    async fn catchup_rolling_restart(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(6)?;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let mut procs = Vec::new();
        for i in 0..3u16 {
            let mut p = self.spawn_server(&format!("rolling-{i}"), 2, 6, Some(base))?;
            // Started one after another, each claims the next two ports.
            let ports: Vec<u16> = vec![base + 2 * i, base + 2 * i + 1];
            let t0 = Instant::now();
            while join_all(ports.iter().map(|q| self.http.json(*q, "/ready")))
                .await
                .iter()
                .any(Result::is_err)
            {
                p.check_alive()?;
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err(format!("process {i} not ready on {ports:?}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            procs.push((p, ports));
        }
        let all: Vec<u16> = (base..base + 6).collect();
        let write = self.write_keys(&all, "rr-", keys, 3600, 32).await;
        let (ok, _, counts) = self
            .wait_keys(&mut procs[0].0, &all, keys as u64, timeout)
            .await?;
        if !ok {
            return Err(format!("the cluster holds only {counts:?} of {keys} keys"));
        }
        let mut restarts = Vec::new();
        let (mut found, mut missing) = (0u64, 0u64);
        for (i, (proc, ports)) in procs.iter_mut().enumerate() {
            let stop = proc.stop().await;
            let mut fresh = self.spawn_server(&format!("rolling-{i}-again"), 2, 6, Some(base))?;
            let started = fresh.started;
            let (seconds, f, m, counts) = self
                .catch_up_reading(&mut fresh, ports, "rr-", keys, started, timeout)
                .await?;
            found += f;
            missing += m;
            restarts.push(json!({
                "seconds": seconds.map(round3),
                "keys_held": counts,
                "stop": stop,
            }));
            *proc = fresh;
            if seconds.is_none() {
                break;
            }
        }
        let held = self.key_counts(&all).await;
        for (p, _) in procs.iter_mut() {
            p.stop().await;
        }
        Ok(json!({
            "keys": keys,
            "restarts": restarts,
            "every_node_holds_every_key": held.iter().all(|c| *c >= keys as u64),
            "keys_held_at_end": held,
            "reads_200_during": found,
            "reads_404_during": missing,
            "write": write,
        }))
    }
}

struct Settings {
    wrk_seconds: u64,
    wrk_warmup_seconds: u64,
    /// GET: alternating rounds of nginx and repram-flux, and the length of each.
    get_rounds: usize,
    get_round_seconds: u64,
    mesh_reps: usize,
    mesh_sizes: Vec<u16>,
    mesh_timeout_small: u64,
    mesh_timeout_large: u64,
    visible_writes: usize,
    memory_keys: usize,
    catchup_keys: usize,
    catchup_timeout: u64,
    converge_timeout: u64,
    /// Keys paged through by the listing phase, and its wrk runs' length.
    listing_keys: usize,
    listing_wrk_seconds: u64,
}

async fn run_all(args: Args) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.tmp) {
        eprintln!("repram-bench: {}: {e}", args.tmp.display());
        return ExitCode::FAILURE;
    }
    let budget = if args.quick {
        Duration::from_secs(50)
    } else {
        Duration::from_secs(380)
    };
    let mut bench = Bench::new(args.clone(), budget);
    let settings = bench.settings();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut figures = serde_json::Map::new();
    let mut skipped: Vec<&str> = Vec::new();
    let phases = [
        "get", "put", "mesh", "visible", "memory", "catchup", "listing", "evict",
    ];
    for phase in phases {
        if !bench.wants(phase) {
            continue;
        }
        if bench.over_budget() {
            eprintln!("repram-bench: {phase}: skipped, the run's time budget is used up");
            skipped.push(phase);
            // The smoke run must run every phase it was asked for to mean anything.
            if args.quick {
                bench
                    .errors
                    .push(format!("{phase}: skipped, the time budget was used up"));
            }
            continue;
        }
        eprintln!(
            "repram-bench: [{:>5.1}s] {phase} ...",
            bench.started.elapsed().as_secs_f64()
        );
        let t0 = Instant::now();
        let result = match phase {
            "get" => bench.phase_get(&settings).await,
            "put" => bench.phase_put(&settings).await,
            "mesh" => bench.phase_mesh(&settings).await,
            "visible" => bench.phase_visible(&settings).await,
            "memory" => bench.phase_memory(&settings).await,
            "catchup" => bench.phase_catchup(&settings).await,
            "listing" => bench.phase_listing(&settings).await,
            _ => bench.phase_evict(&settings).await,
        };
        kill_all_children(); // nothing of a phase outlives it, even after an error
        match result {
            Ok(mut v) => {
                v["phase_seconds"] = json!(round3(t0.elapsed().as_secs_f64()));
                figures.insert(phase.into(), v);
            }
            Err(e) => {
                eprintln!("repram-bench: {phase} failed: {e}");
                bench.errors.push(format!("{phase}: {e}"));
                figures.insert(phase.into(), json!({ "error": e }));
            }
        }
    }
    let figures = Value::Object(figures);
    let (ratios, goals) = ratios_and_goals(&figures);
    let report = json!({
        "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "mode": if args.quick { "quick" } else { "full" },
        "profile": args.profile,
        "commit": git_commit(),
        "machine": machine_info(&args),
        "load_average_before": load_before.trim(),
        "load_average_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "note": "loopback only; wrk, nginx and the servers share the same cores (wrk -t2 -c50); \
                 servers run with REPRAM_LOG=warn, REPRAM_RATE_LIMIT=0, BIND_ADDR and \
                 DISCOVERY_DOMAIN 127.0.0.1; other work on the machine (see load averages) adds noise",
        "settings": {
            "wrk": format!("wrk -t2 -c50 -d{}s (warm-up {}s)", settings.wrk_seconds, settings.wrk_warmup_seconds),
            "value_bytes": VALUE_BYTES,
            "mesh_reps": settings.mesh_reps,
            "visible_writes": settings.visible_writes,
            "memory_keys": settings.memory_keys,
            "catchup_keys": settings.catchup_keys,
            "listing_keys": settings.listing_keys,
        },
        "build_seconds": args.build_s,
        "run_seconds": round1(bench.started.elapsed().as_secs_f64()),
        "figures": figures,
        "ratios": ratios,
        "goals": goals,
        "errors": bench.errors,
        "skipped_for_time": skipped,
    });
    let table = render_table(&report);
    println!("{table}");
    let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&args.out, text) {
        Ok(()) => println!("results written to {}", args.out.display()),
        Err(e) => {
            eprintln!("repram-bench: {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    }
    if bench.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("repram-bench: {} phase(s) failed:", bench.errors.len());
        for e in &bench.errors {
            eprintln!("  - {}", e.lines().next().unwrap_or(""));
        }
        ExitCode::FAILURE
    }
}

fn git_commit() -> Value {
    let out = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let dirty = out(&["status", "--porcelain", "--untracked-files=no"]).map(|s| !s.is_empty());
    json!({ "sha": out(&["rev-parse", "HEAD"]), "branch": out(&["rev-parse", "--abbrev-ref", "HEAD"]), "dirty": dirty })
}

/// The soft RLIMIT_NOFILE the servers inherit.
fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn machine_info(args: &Args) -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: Option<u64> = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok());
    let version = |cmd: &Option<PathBuf>, flag: &str| {
        cmd.as_ref().and_then(|c| {
            Command::new(c).arg(flag).output().ok().map(|o| {
                let mut s = String::from_utf8_lossy(&o.stdout).to_string();
                s.push_str(&String::from_utf8_lossy(&o.stderr));
                s.lines().next().unwrap_or("").trim().to_string()
            })
        })
    };
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu_model": cpu,
        "mem_total_gib": mem_kib.map(|k| round1(k as f64 / 1048576.0)),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        "wrk": version(&args.wrk, "-v"),
        "nginx": version(&args.nginx_bin, "-v"),
        "open_files_limit": open_files_limit(),
    })
}

// ---------------------------------------------------------------------------------------
// Goals, ratios and the table

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 1000.0).round() / 1000.0),
        _ => None,
    }
}

fn ratios_and_goals(f: &Value) -> (Value, Value) {
    let rps = |p: &str| f.pointer(p).and_then(Value::as_f64);
    // Measured in alternating rounds: the median of the rounds' ratios.
    let get_ratio = rps("/get/ratio_median").or_else(|| {
        ratio(
            rps("/get/repram/requests_per_s"),
            rps("/get/nginx/requests_per_s"),
        )
    });
    let put3_ratio = ratio(
        rps("/put/repram_n3/requests_per_s"),
        rps("/put/nginx/requests_per_s"),
    );
    let put10_ratio = ratio(
        rps("/put/repram_n10/requests_per_s"),
        rps("/put/nginx/requests_per_s"),
    );
    let n10_n3 = ratio(
        rps("/put/repram_n10/requests_per_s"),
        rps("/put/repram_n3/requests_per_s"),
    );
    let ratios = json!({
        "get_vs_nginx": get_ratio,
        "put_n3_vs_nginx": put3_ratio,
        "put_n10_vs_nginx": put10_ratio,
        "put_n10_vs_n3": n10_n3,
    });
    let le = |v: Option<f64>, max: f64| v.map(|v| v <= max);
    let ge = |v: Option<f64>, min: f64| v.map(|v| v >= min);
    let mesh = |n: &str| {
        f.pointer(&format!("/mesh/{n}/median_s"))
            .and_then(Value::as_f64)
    };
    // A size that did not converge misses its goal (its median is null).
    let mesh_met = |n: &str, max: f64| match f.pointer(&format!("/mesh/{n}/converged")) {
        Some(Value::Bool(false)) => Some(false),
        _ => le(mesh(n), max),
    };
    let goals = json!([
        { "figure": "GET throughput vs nginx", "goal": ">= 0.8x", "value": get_ratio, "met": ge(get_ratio, 0.8) },
        { "figure": "PUT N=3 vs nginx", "goal": ">= 0.3x", "value": put3_ratio, "met": ge(put3_ratio, 0.3) },
        { "figure": "PUT N=10 vs N=3", "goal": ">= 0.7x", "value": n10_n3, "met": ge(n10_n3, 0.7) },
        { "figure": "mesh formation N=3 (s)", "goal": "<= 0.2", "value": mesh("n3"), "met": mesh_met("n3", 0.2) },
        { "figure": "mesh formation N=10 (s)", "goal": "<= 0.5", "value": mesh("n10"), "met": mesh_met("n10", 0.5) },
        { "figure": "mesh formation N=100 (s)", "goal": "<= 3", "value": mesh("n100"), "met": mesh_met("n100", 3.0) },
        { "figure": "visible everywhere p99 N=3 (ms)", "goal": "<= 2",
          "value": rps("/visible/n3/visible_everywhere/p99_ms"),
          "met": le(rps("/visible/n3/visible_everywhere/p99_ms"), 2.0) },
        { "figure": "memory overhead per key N=1 (bytes)", "goal": "<= 150",
          "value": rps("/memory/n1/overhead_bytes_per_key"),
          "met": le(rps("/memory/n1/overhead_bytes_per_key"), 150.0) },
        { "figure": "catch-up of a late node (s)", "goal": "<= 5",
          "value": rps("/catchup/seconds"), "met": le(rps("/catchup/seconds"), 5.0) },
        { "figure": "GET p99 with 4 clients paging /keys vs without", "goal": "within 2x",
          "value": rps("/listing/get_p99_ratio_with_pagers"),
          "met": le(rps("/listing/get_p99_ratio_with_pagers"), 2.0) },
        { "figure": "SIGKILLed process evicted (s)", "goal": "<= 3",
          "value": rps("/evict/seconds"),
          "met": match f.pointer("/evict/evicted") {
              Some(Value::Bool(false)) => Some(false),
              _ => le(rps("/evict/seconds"), 3.0),
          } },
    ]);
    (ratios, goals)
}

fn fmt_num(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => {
            if decimals == 0 {
                // Thousands separators for throughput.
                let s = format!("{:.0}", v);
                let mut out = String::new();
                for (i, c) in s.chars().enumerate() {
                    if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
                        out.push(',');
                    }
                    out.push(c);
                }
                out
            } else {
                format!("{v:.decimals$}")
            }
        }
        _ => "-".into(),
    }
}

fn render_table(report: &Value) -> String {
    let f = &report["figures"];
    let num = |p: &str| f.pointer(p).and_then(Value::as_f64);
    let met = |i: usize| match report["goals"][i]["met"].as_bool() {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "-",
    };
    let lat = |p: &str| {
        format!(
            "{} / {}",
            fmt_num(num(&format!("{p}/p50_ms")), 2),
            fmt_num(num(&format!("{p}/p99_ms")), 2)
        )
    };
    let mesh_cell = |n: &str| {
        let m = f.pointer(&format!("/mesh/{n}"));
        match m {
            None if f.pointer("/mesh/n3").is_some() => "not in quick mode".to_string(),
            None => "-".to_string(),
            Some(m) if m.get("error").is_some() => "error".into(),
            Some(m) if m["converged"].as_bool() == Some(true) => {
                format!("{} s", fmt_num(m["median_s"].as_f64(), 3))
            }
            Some(m) => format!(
                "did not converge in {}s",
                m["timeout_s"].as_u64().unwrap_or(0)
            ),
        }
    };
    let ratio_cell = |r: &str| fmt_num(report["ratios"][r].as_f64(), 2) + "x";
    let mut rows: Vec<[String; 5]> = vec![[
        "figure".into(),
        "repram-flux".into(),
        "reference".into(),
        "ratio / goal".into(),
        "met".into(),
    ]];
    rows.push([
        "GET req/s (wrk -c50, 100 B)".into(),
        fmt_num(num("/get/repram/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/get/nginx/requests_per_s"), 0)),
        format!("{} (>= 0.8x, median of rounds)", ratio_cell("get_vs_nginx")),
        met(0).into(),
    ]);
    rows.push([
        "GET p50 / p99 ms".into(),
        lat("/get/repram"),
        format!("nginx {}", lat("/get/nginx")),
        String::new(),
        String::new(),
    ]);
    rows.push([
        "PUT req/s N=3".into(),
        fmt_num(num("/put/repram_n3/requests_per_s"), 0),
        format!("nginx {}", fmt_num(num("/put/nginx/requests_per_s"), 0)),
        format!("{} (>= 0.3x)", ratio_cell("put_n3_vs_nginx")),
        met(1).into(),
    ]);
    rows.push([
        "PUT req/s N=10".into(),
        fmt_num(num("/put/repram_n10/requests_per_s"), 0),
        "N=3".into(),
        format!("{} of N=3 (>= 0.7x)", ratio_cell("put_n10_vs_n3")),
        met(2).into(),
    ]);
    rows.push([
        "PUT p50 / p99 ms N=3; N=10".into(),
        format!("{}; {}", lat("/put/repram_n3"), lat("/put/repram_n10")),
        format!("nginx {}", lat("/put/nginx")),
        String::new(),
        String::new(),
    ]);
    for (i, (n, goal)) in [("n3", "<= 0.2 s"), ("n10", "<= 0.5 s"), ("n100", "<= 3 s")]
        .iter()
        .enumerate()
    {
        rows.push([
            format!("mesh formation N={}", &n[1..]),
            mesh_cell(n),
            String::new(),
            goal.to_string(),
            met(3 + i).into(),
        ]);
    }
    rows.push([
        "visible on all, p50 / p99 ms N=3".into(),
        lat("/visible/n3/visible_everywhere"),
        format!("PUT answer {}", lat("/visible/n3/put_response")),
        "p99 <= 2 ms".into(),
        met(6).into(),
    ]);
    rows.push([
        "visible on all, p50 / p99 ms N=10".into(),
        lat("/visible/n10/visible_everywhere"),
        format!("PUT answer {}", lat("/visible/n10/put_response")),
        String::new(),
        String::new(),
    ]);
    rows.push([
        "memory overhead B/key N=1".into(),
        fmt_num(num("/memory/n1/overhead_bytes_per_key"), 0),
        format!(
            "RSS growth {} B/key",
            fmt_num(num("/memory/n1/bytes_per_key_copy_total"), 0)
        ),
        "<= 150 B".into(),
        met(7).into(),
    ]);
    rows.push([
        "memory overhead B/key-copy N=3".into(),
        fmt_num(num("/memory/n3/overhead_bytes_per_key"), 0),
        format!(
            "RSS growth {} B/logical key",
            fmt_num(num("/memory/n3/growth_bytes_per_logical_key"), 0)
        ),
        String::new(),
        String::new(),
    ]);
    let catchup = match f.get("catchup") {
        Some(c) if c["caught_up"].as_bool() == Some(true) => {
            format!("{} s", fmt_num(c["seconds"].as_f64(), 3))
        }
        Some(c) if c.get("error").is_some() => "error".into(),
        Some(c) => format!(
            "not done in {}s ({} keys)",
            c["timeout_s"].as_u64().unwrap_or(0),
            c["keys_held_at_end"].as_u64().unwrap_or(0)
        ),
        None => "-".into(),
    };
    rows.push([
        format!(
            "catch-up, {} keys",
            fmt_num(f.pointer("/catchup/keys").and_then(Value::as_f64), 0)
        ),
        catchup,
        String::new(),
        "<= 5 s".into(),
        met(8).into(),
    ]);
    rows.push([
        format!(
            "GET p99 ms, alone / 4 pagers ({} keys)",
            fmt_num(f.pointer("/listing/keys").and_then(Value::as_f64), 0)
        ),
        format!(
            "{} / {}",
            fmt_num(num("/listing/get_alone/p99_ms"), 2),
            fmt_num(num("/listing/get_with_pagers/p99_ms"), 2)
        ),
        format!(
            "GET req/s {} / {}",
            fmt_num(num("/listing/get_alone/requests_per_s"), 0),
            fmt_num(num("/listing/get_with_pagers/requests_per_s"), 0)
        ),
        format!(
            "{}x (within 2x)",
            fmt_num(num("/listing/get_p99_ratio_with_pagers"), 2)
        ),
        met(9).into(),
    ]);
    rows.push([
        "one client pages all keys".into(),
        format!(
            "{} pages, {} s",
            fmt_num(num("/listing/one_client_pages_through_all_keys/pages"), 0),
            fmt_num(num("/listing/one_client_pages_through_all_keys/seconds"), 2)
        ),
        format!(
            "/keys p99 {} ms",
            fmt_num(
                num("/listing/one_client_pages_through_all_keys/call_ms/p99_ms"),
                2
            )
        ),
        String::new(),
        String::new(),
    ]);
    let evict = match f.get("evict") {
        Some(e) if e["evicted"].as_bool() == Some(true) => {
            format!("{} s", fmt_num(e["seconds"].as_f64(), 3))
        }
        Some(e) if e.get("error").is_some() => "error".into(),
        Some(e) => format!("not in {}s", e["timeout_s"].as_u64().unwrap_or(0)),
        None => "-".into(),
    };
    rows.push([
        "SIGKILLed process evicted, 3+3 nodes".into(),
        evict,
        String::new(),
        "<= 3 s".into(),
        met(10).into(),
    ]);
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let commit = &report["commit"];
    let _ = writeln!(
        out,
        "\nrepram-flux benchmark ({} mode, {} build) — {} — commit {}{}",
        report["mode"].as_str().unwrap_or("?"),
        report["profile"].as_str().unwrap_or("?"),
        report["timestamp"].as_str().unwrap_or("?"),
        commit["sha"]
            .as_str()
            .map(|s| &s[..s.len().min(10)])
            .unwrap_or("?"),
        if commit["dirty"].as_bool() == Some(true) {
            " (uncommitted changes)"
        } else {
            ""
        }
    );
    let m = &report["machine"];
    let _ = writeln!(
        out,
        "machine: {} cores, {}, {} GiB; load before/after: {} / {}\n",
        m["nproc"],
        m["cpu_model"].as_str().unwrap_or("?"),
        m["mem_total_gib"],
        report["load_average_before"].as_str().unwrap_or("?"),
        report["load_average_after"].as_str().unwrap_or("?"),
    );
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "| {} |", line.join(" | "));
        if i == 0 {
            let sep: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            let _ = writeln!(out, "|-{}-|", sep.join("-|-"));
        }
    }
    if let Some(skipped) = report["skipped_for_time"]
        .as_array()
        .filter(|a| !a.is_empty())
    {
        let names: Vec<&str> = skipped.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "\nskipped (time budget used up): {}", names.join(", "));
    }
    if let Some(errors) = report["errors"].as_array().filter(|a| !a.is_empty()) {
        let _ = writeln!(out, "\nfailed:");
        for e in errors.iter().filter_map(Value::as_str) {
            let _ = writeln!(out, "  - {}", e.lines().next().unwrap_or(""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(fmt_num(Some(1234567.4), 0), "1,234,567");
        assert_eq!(fmt_num(Some(999.0), 0), "999");
        assert_eq!(fmt_num(Some(1.23456), 2), "1.23");
        assert_eq!(fmt_num(None, 2), "-");
    }

    #[test]
    fn goals_follow_the_figures() {
        let f = json!({
            "get": { "repram": { "requests_per_s": 90.0 }, "nginx": { "requests_per_s": 100.0 } },
            "put": { "repram_n3": { "requests_per_s": 20.0 }, "repram_n10": { "requests_per_s": 10.0 },
                     "nginx": { "requests_per_s": 100.0 } },
            "catchup": { "seconds": 7.5 },
        });
        let (ratios, goals) = ratios_and_goals(&f);
        assert_eq!(ratios["get_vs_nginx"], json!(0.9));
        assert_eq!(goals[0]["met"], json!(true));
        assert_eq!(goals[1]["met"], json!(false));
        assert_eq!(goals[2]["met"], json!(false));
        assert_eq!(goals[3]["met"], Value::Null);
        assert_eq!(goals[8]["met"], json!(false));
    }

    #[test]
    fn the_get_goal_uses_the_median_of_the_paired_rounds() {
        // The aggregates alone would give 0.7; the rounds' median says 0.85.
        let f = json!({
            "get": { "repram": { "requests_per_s": 70.0 }, "nginx": { "requests_per_s": 100.0 },
                     "round_ratios": [0.85, 0.5, 0.9], "ratio_median": 0.85 },
        });
        let (ratios, goals) = ratios_and_goals(&f);
        assert_eq!(ratios["get_vs_nginx"], json!(0.85));
        assert_eq!(goals[0]["met"], json!(true));
    }

    #[test]
    fn rounds_combine_into_one_figure() {
        let round = |requests: f64, seconds: f64, p99: f64| {
            json!({ "requests_per_s": requests / seconds, "requests": requests, "seconds": seconds,
                    "p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": p99, "max_ms": 9.0, "errors": 1.0 })
        };
        let c = combine_rounds(&[
            round(400.0, 4.0, 3.0),
            round(200.0, 4.0, 5.0),
            round(600.0, 4.0, 4.0),
        ]);
        assert_eq!(c["requests_per_s"], json!(100.0), "over all rounds");
        assert_eq!(c["p99_ms"], json!(4.0), "median of the rounds");
        assert_eq!(c["errors"], json!(3.0));
        assert_eq!(c["rounds"], json!([100.0, 50.0, 150.0]));
        assert_eq!(combine_rounds(&[])["requests_per_s"], Value::Null);
    }

    #[test]
    fn arguments_parse() {
        let a = parse_args(
            [
                "--server",
                "x",
                "--quick",
                "--nginx-port",
                "19000",
                "--only",
                "get,mesh",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .unwrap();
        assert!(a.quick);
        assert_eq!(a.nginx_port, Some(19000));
        assert!(a.only.unwrap().contains("mesh"));
        assert!(parse_args(vec!["--bogus".into()]).is_err());
        assert!(parse_args(vec![]).is_err());
    }
}
