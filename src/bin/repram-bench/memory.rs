//! The `memory` phase: RSS growth per key at N=1 and N=3, and RSS once every key of a
//! load has expired and been purged, against the idle baseline.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::children::Server;
use crate::stats::{round1, round3};
use crate::VALUE_BYTES;

impl Bench {
    pub(crate) async fn phase_memory(&mut self, s: &Settings) -> Result<Value, String> {
        let mut out = serde_json::Map::new();
        // Small values at `memory_keys`; 4 KiB values at a tenth as many keys.
        let sizes = [
            ("", VALUE_BYTES, s.memory_keys),
            ("_4k", 4096, (s.memory_keys / 10).max(1)),
        ];
        for (suffix, value_bytes, keys) in sizes {
            let value = Bytes::from(vec![b'v'; value_bytes]);
            for nodes in [1u16, 3] {
                let name = format!("n{nodes}{suffix}");
                let run = self.memory_growth(&name, nodes, keys, &value).await?;
                out.insert(name, run);
            }
            // What the nodes of one process cost together against one node, per logical key.
            let per_key = |n: u16| {
                out.get(&format!("n{n}{suffix}"))
                    .and_then(|v| v["growth_bytes_per_logical_key"].as_f64())
            };
            if let (Some(one), Some(three)) = (per_key(1), per_key(3)) {
                out.insert(
                    format!("n3_vs_n1{suffix}"),
                    json!(round3(three / one.max(1.0))),
                );
            }
        }
        let expiry = self.memory_after_expiry(s).await;
        out.insert(
            "after_expiry".into(),
            expiry.unwrap_or_else(|e| json!({ "error": e })),
        );
        Ok(Value::Object(out))
    }

    /// Once `server` has meshed and its connections are warm (and the server's
    /// per-connection buffers allocated): its ports and its RSS in KiB.
    async fn settled_rss(&self, server: &mut Server) -> Result<(Vec<u16>, u64), String> {
        self.wait_mesh(server, Duration::from_secs(10)).await?;
        let ports = server.ports();
        let warm: Vec<_> = (0..64)
            .map(|i| self.http.get(ports[i % ports.len()], "/health"))
            .collect();
        join_all(warm).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = server.rss_kib().ok_or("cannot read VmRSS")?;
        Ok((ports, rss))
    }

    /// RSS growth of a `nodes`-node process taking `keys` keys of `value` through node 1.
    async fn memory_growth(
        &mut self,
        name: &str,
        nodes: u16,
        keys: usize,
        value: &Bytes,
    ) -> Result<Value, String> {
        let mut server = self.spawn_server(&format!("memory-{name}"), nodes, 10, None)?;
        let (ports, before) = self.settled_rss(&mut server).await?;
        let prefix = format!("mem-{name}-");
        let write = self
            .write_values(&ports[..1], &prefix, keys, 3600, 32, value)
            .await;
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
        let payload_per_copy = (key_len + value.len()) as f64;
        let copies = keys as f64 * f64::from(nodes);
        let growth = (after as f64 - before as f64) * 1024.0;
        Ok(json!({
            "nodes": nodes,
            "keys": keys,
            "key_bytes": key_len,
            "value_bytes": value.len(),
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
        }))
    }

    /// A 3-node process (TTLs from 1 s, purged every second) takes `memory_keys` keys with
    /// a short TTL through node 1; once every node is empty again its RSS is compared with
    /// the RSS it had before the load.
    async fn memory_after_expiry(&mut self, s: &Settings) -> Result<Value, String> {
        const NODES: u16 = 3;
        const TTL_S: u64 = 10;
        let keys = s.memory_keys;
        let saved = std::mem::replace(
            &mut self.server_env,
            vec![
                ("REPRAM_MIN_TTL", "1".into()),
                ("REPRAM_CLEANUP_INTERVAL", "1".into()),
            ],
        );
        let spawned = self.spawn_server("memory-expiry-n3", NODES, 10, None);
        self.server_env = saved;
        let mut server = spawned?;
        let (ports, idle) = self.settled_rss(&mut server).await?;
        let write = self.write_keys(&ports[..1], "exp-", keys, TTL_S, 32).await;
        let loaded = server.rss_kib().ok_or("cannot read VmRSS")?;
        let written = Instant::now();
        let emptied = self
            .wait_empty(&mut server, &ports, Duration::from_secs(TTL_S + 30))
            .await;
        let empty_after_s = written.elapsed().as_secs_f64();
        // The same settling time as after the load above.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        server.check_alive()?;
        let drained = server.rss_kib().ok_or("cannot read VmRSS")?;
        let stop = server.stop().await;
        emptied?;
        Ok(json!({
            "nodes": NODES,
            "keys": keys,
            "ttl_s": TTL_S,
            "rss_idle_kib": idle,
            "rss_loaded_kib": loaded,
            "rss_after_expiry_kib": drained,
            "after_expiry_vs_idle": round3(drained as f64 / idle.max(1) as f64),
            "empty_after_write_s": round3(empty_after_s),
            "write": write,
            "stop": stop,
        }))
    }
}
