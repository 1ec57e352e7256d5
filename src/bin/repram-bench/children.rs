//! Child processes of a run (servers, wrk): the list a signal kills, and the server
//! process handle with its log.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};
use serde_json::{json, Value};

use crate::stats::round3;

/// Pids of every child process of a run that is alive, so a signal can kill them all.
/// A cheap handle: the run owns it, and the signal handler holds a clone.
#[derive(Clone, Default)]
pub(crate) struct Children(Arc<Mutex<Vec<u32>>>);

impl Children {
    pub(crate) fn add(&self, pid: u32) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }

    pub(crate) fn remove(&self, pid: u32) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| *p != pid);
    }

    pub(crate) fn kill_all(&self) {
        let pids: Vec<u32> = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for pid in pids {
            send_signal(pid, Signal::KILL);
        }
    }
}

/// Sends `signal` to process `pid`; a process already gone is not an error here.
pub(crate) fn send_signal(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, signal);
    }
}

pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A server process (`repram-flux`) started for one measurement.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    pub(crate) started: Instant,
    pub(crate) base: u16,
    pub(crate) nodes: u16,
    pub(crate) log: PathBuf,
    pub(crate) done: bool,
    /// The run's children, which this server leaves when it ends.
    pub(crate) children: Children,
}

impl Server {
    /// Node `i` (1-based) normally claims `BASE_PORT+i-1`: the range was checked free.
    pub(crate) fn ports(&self) -> Vec<u16> {
        (0..self.nodes).map(|i| self.base + i).collect()
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
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
    pub(crate) fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.done = true;
                self.children.remove(self.pid);
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
    pub(crate) async fn stop(&mut self) -> Value {
        if self.done {
            return json!({ "already_exited": true });
        }
        let t0 = Instant::now();
        send_signal(self.pid, Signal::TERM);
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
        self.children.remove(self.pid);
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
            self.children.remove(self.pid);
        }
    }
}

/// Counts of notable lines in a server log (it runs with REPRAM_LOG=warn).
pub(crate) fn log_summary(path: &Path) -> Value {
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

pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
