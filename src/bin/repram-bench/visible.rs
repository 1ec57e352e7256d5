//! The `visible` phase: write-to-visible-everywhere latency of single PUTs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::stats::latency_summary;
use crate::VALUE_BYTES;

impl Bench {
    pub(crate) async fn phase_visible(&mut self, s: &Settings) -> Result<Value, String> {
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
}
