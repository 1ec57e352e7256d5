//! The `catchup` phase: a late process catching up with the keys of a running one, a
//! 3-node process joining a 3-node one, and a rolling restart.

use std::time::{Duration, Instant};

use futures::future::join_all;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::bench::{Bench, Settings};
use crate::children::Server;
use crate::stats::round3;

impl Bench {
    pub(crate) async fn phase_catchup(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(2)?;
        let mut first = self.spawn_server("catchup-a", 1, 2, Some(base))?;
        self.wait_mesh(&mut first, Duration::from_secs(10)).await?;
        let write = self.write_keys(&[base], "cu-", keys, 3600, 32).await;
        let held = self.key_counts(&[base]).await[0];
        if held < keys as u64 {
            return Err(format!("first process holds only {held} of {keys} keys"));
        }
        let mut second = self.spawn_server("catchup-b", 1, 2, Some(base))?;
        let port = base + 1;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let mut first_answer = None;
        let mut last = 0u64;
        let outcome = loop {
            second.check_alive()?;
            first.check_alive()?;
            let elapsed = second.started.elapsed();
            if elapsed > timeout {
                break None;
            }
            if let Ok(v) = self.http.json(port, "/status").await {
                first_answer.get_or_insert(second.started.elapsed().as_secs_f64());
                last = v["keys"].as_u64().unwrap_or(0);
                if last >= keys as u64 {
                    break Some(second.started.elapsed().as_secs_f64());
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let stop_b = second.stop().await;
        let stop_a = first.stop().await;
        let three = self.catchup_three_joins_three(s).await;
        let rolling = self.catchup_rolling_restart(s).await;
        Ok(json!({
            "keys": keys,
            "caught_up": outcome.is_some(),
            "seconds": outcome.map(round3),
            "timeout_s": s.catchup_timeout,
            "keys_held_at_end": last,
            "first_answer_s": first_answer.map(round3),
            "write": write,
            "stop": [stop_a, stop_b],
            "three_joins_three": three.unwrap_or_else(|e| json!({ "error": e })),
            "rolling_restart": rolling.unwrap_or_else(|e| json!({ "error": e })),
        }))
    }

    /// Wait until every node of `ports` holds `keys` keys, while reading random keys of
    /// `prefix` (written by [`Bench::write_keys`]) on them: the seconds since `since` (or
    /// `None` at the timeout) and the count of GET answers 200 and 404 meanwhile.
    pub(crate) async fn catch_up_reading(
        &self,
        server: &mut Server,
        ports: &[u16],
        prefix: &str,
        keys: usize,
        since: Instant,
        timeout: Duration,
    ) -> Result<(Option<f64>, u64, u64, Vec<u64>), String> {
        let (mut found, mut missing) = (0u64, 0u64);
        let mut pick = 0x9e37_79b9_7f4a_7c15u64;
        loop {
            server.check_alive()?;
            let counts = self.key_counts(ports).await;
            if counts.iter().all(|c| *c >= keys as u64) {
                return Ok((Some(since.elapsed().as_secs_f64()), found, missing, counts));
            }
            if since.elapsed() > timeout {
                return Ok((None, found, missing, counts));
            }
            let reads = (0..24).map(|n| {
                pick = pick.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let key = (pick >> 33) as usize % keys;
                let port = ports[n % ports.len()];
                let path = format!("/data/{prefix}{key:07}");
                async move { self.http.get(port, &path).await }
            });
            for r in join_all(reads.collect::<Vec<_>>()).await {
                match r {
                    Ok((StatusCode::OK, _)) => found += 1,
                    Ok((StatusCode::NOT_FOUND, _)) => missing += 1,
                    _ => {}
                }
            }
        }
    }

    /// A 3-node process joins a 3-node process holding `catchup_keys` keys.
    pub(crate) async fn catchup_three_joins_three(
        &mut self,
        s: &Settings,
    ) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(6)?;
        let mut first = self.spawn_server("catchup-3a", 3, 6, Some(base))?;
        self.wait_mesh(&mut first, Duration::from_secs(10)).await?;
        let old: Vec<u16> = (base..base + 3).collect();
        let write = self.write_keys(&old, "c3-", keys, 3600, 32).await;
        let (ok, _, counts) = self
            .wait_keys(
                &mut first,
                &old,
                keys as u64,
                Duration::from_secs(s.catchup_timeout),
            )
            .await?;
        if !ok {
            return Err(format!(
                "first process holds only {counts:?} of {keys} keys"
            ));
        }
        let mut second = self.spawn_server("catchup-3b", 3, 6, Some(base))?;
        let new: Vec<u16> = (base + 3..base + 6).collect();
        let started = second.started;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let outcome = self
            .catch_up_reading(&mut second, &new, "c3-", keys, started, timeout)
            .await;
        let stop_b = second.stop().await;
        let stop_a = first.stop().await;
        let (seconds, found, missing, counts) = outcome?;
        Ok(json!({
            "keys": keys,
            "caught_up": seconds.is_some(),
            "seconds": seconds.map(round3),
            "keys_held_at_end": counts,
            "reads_200_during": found,
            "reads_404_during": missing,
            "write": write,
            "stop": [stop_a, stop_b],
        }))
    }

    /// Three processes of 2 nodes hold `catchup_keys` keys; each is stopped and started
    /// again in turn, the next as soon as the replacement's nodes hold every key.
    pub(crate) async fn catchup_rolling_restart(&mut self, s: &Settings) -> Result<Value, String> {
        let keys = s.catchup_keys;
        let base = self.free_range(6)?;
        let timeout = Duration::from_secs(s.catchup_timeout);
        let mut procs = Vec::new();
        for i in 0..3u16 {
            let mut p = self.spawn_server(&format!("rolling-{i}"), 2, 6, Some(base))?;
            // Started one after another, each claims the next two ports.
            let ports: Vec<u16> = vec![base + 2 * i, base + 2 * i + 1];
            let t0 = Instant::now();
            while join_all(ports.iter().map(|q| self.http.json(*q, "/ready")))
                .await
                .iter()
                .any(Result::is_err)
            {
                p.check_alive()?;
                if t0.elapsed() > Duration::from_secs(20) {
                    return Err(format!("process {i} not ready on {ports:?}"));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            procs.push((p, ports));
        }
        let all: Vec<u16> = (base..base + 6).collect();
        let write = self.write_keys(&all, "rr-", keys, 3600, 32).await;
        let (ok, _, counts) = self
            .wait_keys(&mut procs[0].0, &all, keys as u64, timeout)
            .await?;
        if !ok {
            return Err(format!("the cluster holds only {counts:?} of {keys} keys"));
        }
        let mut restarts = Vec::new();
        let (mut found, mut missing) = (0u64, 0u64);
        for (i, (proc, ports)) in procs.iter_mut().enumerate() {
            let stop = proc.stop().await;
            let mut fresh = self.spawn_server(&format!("rolling-{i}-again"), 2, 6, Some(base))?;
            let started = fresh.started;
            let (seconds, f, m, counts) = self
                .catch_up_reading(&mut fresh, ports, "rr-", keys, started, timeout)
                .await?;
            found += f;
            missing += m;
            restarts.push(json!({
                "seconds": seconds.map(round3),
                "keys_held": counts,
                "stop": stop,
            }));
            *proc = fresh;
            if seconds.is_none() {
                break;
            }
        }
        let held = self.key_counts(&all).await;
        for (p, _) in procs.iter_mut() {
            p.stop().await;
        }
        Ok(json!({
            "keys": keys,
            "restarts": restarts,
            "every_node_holds_every_key": held.iter().all(|c| *c >= keys as u64),
            "keys_held_at_end": held,
            "reads_200_during": found,
            "reads_404_during": missing,
            "write": write,
        }))
    }
}
