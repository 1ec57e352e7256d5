//! The `mesh` phase: seconds until every node of a fresh process sees all the others.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::stats::{median, round3};

impl Bench {
    pub(crate) async fn phase_mesh(&mut self, s: &Settings) -> Result<Value, String> {
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
}
