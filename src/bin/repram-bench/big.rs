//! The `big` phase: 1 MiB values. PUT throughput at N=3 against nginx accepting the same
//! bodies, GET throughput against nginx serving a 1 MiB file, and the server's RSS while
//! it takes the PUT load, against its in-flight cap (`REPRAM_MAX_INFLIGHT_BYTES`).

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::children::Server;
use crate::goals::ratio;
use crate::stats::round3;

/// Size of every value of this phase.
pub(crate) const BIG_BYTES: usize = 1 << 20;
/// The 1 MiB file `scripts/bench.sh` has nginx serve.
const NGINX_FILE: &str = "/big/value.bin";
/// The in-flight cap the server runs with here (its default, set so the report names it).
const INFLIGHT_CAP: u64 = 256 * 1024 * 1024;
/// Keys each wrk thread overwrites in turn, so the load measures transfer rather than
/// filling the store.
const SLOTS: usize = 8;

impl Bench {
    pub(crate) async fn phase_big(&mut self, s: &Settings) -> Result<Value, String> {
        let secs = s.big_wrk_seconds;
        let (size, slots) = (BIG_BYTES.to_string(), SLOTS.to_string());
        let mut out = serde_json::Map::new();
        if let Some(port) = self.args.nginx_port {
            let put = self
                .wrk(
                    &format!("http://127.0.0.1:{port}/"),
                    "wrk-put.lua",
                    &["nginx-big", &size, &slots],
                    secs,
                )
                .await?;
            out.insert("nginx_put".into(), put);
            let get = self
                .wrk(
                    &format!("http://127.0.0.1:{port}{NGINX_FILE}"),
                    "wrk-get.lua",
                    &[],
                    secs,
                )
                .await?;
            out.insert("nginx_get".into(), get);
        }
        let saved = std::mem::replace(
            &mut self.server_env,
            vec![("REPRAM_MAX_INFLIGHT_BYTES", INFLIGHT_CAP.to_string())],
        );
        let spawned = self.spawn_server("big-n3", 3, 10, None);
        self.server_env = saved;
        let mut server = spawned?;
        let mesh = self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
        let ports = server.ports();
        let port = ports[0];
        let value = Bytes::from(vec![b'b'; BIG_BYTES]);
        let status = self
            .http
            .put(port, "/data/bench-big?ttl=86400", value)
            .await?;
        if !status.is_success() {
            return Err(format!("PUT bench-big answered {status}"));
        }
        let idle = server.rss_kib().ok_or("cannot read VmRSS")?;
        let url = format!("http://127.0.0.1:{port}/");
        let (put, peak) = self
            .with_peak_rss(
                &server,
                self.wrk(&url, "wrk-put.lua", &["big", &size, &slots], secs),
            )
            .await;
        let mut put = put?;
        server.check_alive()?;
        put["node1_metrics"] = self.node_metrics(port).await;
        let stored: Vec<u64> =
            futures::future::join_all(ports.iter().map(|p| self.http.json(*p, "/status")))
                .await
                .into_iter()
                .map(|r| r.ok().and_then(|v| v["bytes"].as_u64()).unwrap_or(0))
                .collect();
        let get = self
            .wrk(
                &format!("http://127.0.0.1:{port}/data/bench-big"),
                "wrk-get.lua",
                &[],
                secs,
            )
            .await?;
        server.check_alive()?;
        let after = server.rss_kib();
        let stop = server.stop().await;
        let growth = peak.saturating_sub(idle) * 1024;
        let stored_total: u64 = stored.iter().sum();
        let rps = |v: Option<&Value>| v.and_then(|v| v["requests_per_s"].as_f64());
        out.insert(
            "put_n3_vs_nginx".into(),
            json!(ratio(rps(Some(&put)), rps(out.get("nginx_put")))),
        );
        out.insert(
            "get_vs_nginx".into(),
            json!(ratio(rps(Some(&get)), rps(out.get("nginx_get")))),
        );
        out.insert("repram_put_n3".into(), put);
        out.insert("repram_get".into(), get);
        out.insert(
            "memory".into(),
            json!({
                "rss_idle_kib": idle,
                "rss_peak_during_put_kib": peak,
                "rss_after_kib": after,
                "rss_peak_growth_bytes": growth,
                "inflight_cap_bytes": INFLIGHT_CAP,
                "stored_bytes_per_node": stored,
                "growth_vs_cap_plus_stored": round3(
                    growth as f64 / (INFLIGHT_CAP + stored_total).max(1) as f64
                ),
            }),
        );
        out.insert(
            "server".into(),
            json!({ "nodes": 3, "target": "node 1", "value_bytes": BIG_BYTES, "mesh": mesh, "stop": stop }),
        );
        Ok(Value::Object(out))
    }

    /// Runs `load` while sampling `server`'s RSS every 20 ms: its result and the peak, KiB.
    async fn with_peak_rss<T>(
        &self,
        server: &Server,
        load: impl std::future::Future<Output = T>,
    ) -> (T, u64) {
        let done = Cell::new(false);
        let peak = Cell::new(server.rss_kib().unwrap_or(0));
        let load = async {
            let r = load.await;
            done.set(true);
            r
        };
        let sample = async {
            // Bounded by the load's own deadline; this one only guards the loop.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !done.get() && Instant::now() < deadline {
                peak.set(peak.get().max(server.rss_kib().unwrap_or(0)));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let (r, ()) = futures::join!(load, sample);
        (r, peak.get())
    }
}
