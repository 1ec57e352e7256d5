//! The `put` phase: replicated PUT throughput at N=3 and N=10 against nginx, and how
//! soon every replica holds every write.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::stats::round3;

impl Bench {
    pub(crate) async fn phase_put(&mut self, s: &Settings) -> Result<Value, String> {
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
}
