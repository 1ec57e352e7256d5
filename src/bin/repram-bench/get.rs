//! The `get` phase: GET throughput against nginx in alternating rounds.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::goals::ratio;
use crate::stats::{combine_rounds, median, round3};

impl Bench {
    /// GET throughput of node 1 of a 3-node cluster and of nginx, measured in alternating
    /// rounds (the order swapping every round) so that both see the same machine: on a
    /// shared host one 10 s run of each can land in different phases of its load.
    pub(crate) async fn phase_get(&mut self, s: &Settings) -> Result<Value, String> {
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
}
