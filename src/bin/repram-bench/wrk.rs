//! One `wrk` run with a Lua script of `bench/`, read back from its `WRKJSON` line.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::stats::{round1, round3};

impl Bench {
    pub(crate) async fn wrk(
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
        self.children.add(child.id());
        let deadline = Instant::now() + Duration::from_secs(seconds + 20);
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    self.children.remove(child.id());
                    return Err("wrk did not finish in time".into());
                }
                Ok(None) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => return Err(e.to_string()),
            }
        };
        self.children.remove(child.id());
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
}
