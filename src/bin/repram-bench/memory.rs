//! The `memory` phase: RSS growth per key at N=1 and N=3.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::stats::{round1, round3};
use crate::VALUE_BYTES;

impl Bench {
    pub(crate) async fn phase_memory(&mut self, s: &Settings) -> Result<Value, String> {
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
}
