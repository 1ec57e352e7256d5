//! The `listing` phase (issue 18): GETs of one key on a node, measured with wrk alone
//! and while four clients page through all its keys with `/keys?limit=1000`; the goal is
//! a GET p99 within 2x of the quiet one. Also how many pages and seconds one client
//! takes to page through every key, and what one `/keys` call costs.

use std::cell::Cell;
use std::time::{Duration, Instant};

use futures::future::join_all;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::stats::{latency_summary, round3};

/// Clients paging at once while GETs are measured.
const PAGERS: usize = 4;
/// Keys per `/keys` call.
const PAGE: usize = 1000;

/// What a paging client did.
#[derive(Default)]
struct Paged {
    calls: u64,
    keys: u64,
    passes: u64,
    errors: u64,
    call_ms: Vec<f64>,
}

impl Bench {
    /// Page through every key of node `port` once; then again, until `stop` is set, if
    /// `repeat`. Bounded by `deadline` either way.
    async fn page(&self, port: u16, repeat: bool, stop: &Cell<bool>, deadline: Instant) -> Paged {
        let mut done = Paged::default();
        let mut cursor = String::new();
        while !stop.get() && Instant::now() < deadline {
            let path = format!("/keys?limit={PAGE}&cursor={cursor}");
            let t0 = Instant::now();
            let answer = self.http.get(port, &path).await;
            done.call_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            done.calls += 1;
            let page = match answer {
                Ok((StatusCode::OK, body)) => serde_json::from_slice::<Value>(&body).ok(),
                _ => None,
            };
            let Some(page) = page else {
                done.errors += 1;
                continue;
            };
            done.keys += page["keys"].as_array().map_or(0, |k| k.len() as u64);
            match page["next_cursor"].as_str() {
                // Keys may hold characters that need escaping in a query.
                Some(c) => {
                    cursor =
                        percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC)
                            .to_string()
                }
                None => {
                    done.passes += 1;
                    cursor.clear();
                    if !repeat {
                        break;
                    }
                }
            }
        }
        done
    }

    pub(super) async fn phase_listing(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.listing_keys;
        let mut server = self.spawn_server("listing-n3", 3, 10, None)?;
        let mesh = self.wait_mesh(&mut server, Duration::from_secs(10)).await?;
        let ports = server.ports();
        let port = ports[0];
        let write = self.write_keys(&ports[..1], "list-", keys, 3600, 32).await;
        let (all, _, counts) = self
            .wait_keys(&mut server, &ports, keys as u64, Duration::from_secs(60))
            .await?;
        let status = self
            .http
            .put(port, "/data/bench-get?ttl=86400", self.value.clone())
            .await?;
        if !status.is_success() {
            return Err(format!("PUT bench-get answered {status}"));
        }

        // One client alone through every key.
        let no_stop = Cell::new(false);
        let t0 = Instant::now();
        let alone = self
            .page(port, false, &no_stop, t0 + Duration::from_secs(120))
            .await;
        let alone_s = t0.elapsed().as_secs_f64();
        let one_pass = json!({
            "pages": alone.calls,
            "keys": alone.keys,
            "complete": alone.passes == 1,
            "seconds": round3(alone_s),
            "errors": alone.errors,
            "call_ms": latency_summary(alone.call_ms),
        });

        let url = format!("http://127.0.0.1:{port}/data/bench-get");
        let quiet = self
            .wrk(&url, "wrk-get.lua", &[], s.listing_wrk_seconds)
            .await?;
        server.check_alive()?;

        // The same GETs while four clients page through the keys, over and over.
        let stop = Cell::new(false);
        let deadline = Instant::now() + Duration::from_secs(s.listing_wrk_seconds + 60);
        let pagers = join_all((0..PAGERS).map(|_| self.page(port, true, &stop, deadline)));
        let measured = async {
            let r = self
                .wrk(&url, "wrk-get.lua", &[], s.listing_wrk_seconds)
                .await;
            stop.set(true);
            r
        };
        let t0 = Instant::now();
        let (busy, pagers) = futures::join!(measured, pagers);
        let paging_s = t0.elapsed().as_secs_f64();
        let busy = busy?;
        server.check_alive()?;
        let mut paged = Paged::default();
        for p in pagers {
            paged.calls += p.calls;
            paged.keys += p.keys;
            paged.passes += p.passes;
            paged.errors += p.errors;
            paged.call_ms.extend(p.call_ms);
        }
        let p99 = |v: &Value| v["p99_ms"].as_f64();
        let ratio = match (p99(&busy), p99(&quiet)) {
            (Some(b), Some(q)) if q > 0.0 => Some(round3(b / q)),
            _ => None,
        };
        let metrics = self.node_metrics(port).await;
        let stop = server.stop().await;
        Ok(json!({
            "keys": keys,
            "node": "node 1 of 3 (GETs and pagers on the same node)",
            "write": write,
            "all_nodes_hold_all_keys": all,
            "keys_per_node": counts,
            "one_client_pages_through_all_keys": one_pass,
            "get_alone": quiet,
            "get_with_pagers": busy,
            "pagers": {
                "clients": PAGERS,
                "limit": PAGE,
                "calls": paged.calls,
                "calls_per_s": round3(paged.calls as f64 / paging_s),
                "keys_listed": paged.keys,
                "complete_passes": paged.passes,
                "errors": paged.errors,
                "call_ms": latency_summary(paged.call_ms),
            },
            "get_p99_ratio_with_pagers": ratio,
            "node_metrics": metrics,
            "server": { "mesh": mesh },
            "stop": stop,
        }))
    }
}
