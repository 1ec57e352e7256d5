//! What the report says about the machine and the checkout.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::args::Args;
use crate::stats::round1;

pub(crate) fn git_commit() -> Value {
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
pub(crate) fn open_files_limit() -> Option<u64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

pub(crate) fn machine_info(args: &Args) -> Value {
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
