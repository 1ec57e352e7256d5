//! `repram-bench soak`: a bounded soak (issue 7). One server process on loopback takes a
//! mixed PUT/GET load of short-lived keys in cycles: load, then wait until every key has
//! expired and been purged, then sample the process RSS. The first cycle is a warm-up whose
//! drained RSS is the baseline. Fails on any failed or unexpected answer, on a node that
//! still holds data after a cycle, and on RSS that does not come back down (see
//! [`Verdict`]). Stops by itself after `--seconds`.

use std::cell::{Cell, RefCell};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use hyper::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use crate::args::{Args, SoakArgs};
use crate::bench::Bench;
use crate::children::{Children, Server};
use crate::stats::round1;

/// Seconds of load per cycle.
const LOAD_S: u64 = 7;
/// Longest TTL of a write, seconds; each write draws its TTL from `1..=MAX_TTL` (the server
/// runs with `REPRAM_MIN_TTL=1`).
const MAX_TTL: u64 = 5;
/// Value sizes, bytes: log-uniform between these, so the allocator sees many size classes.
const VALUE_MIN: usize = 64;
const VALUE_MAX: usize = 64 * 1024;
/// Concurrent clients.
const WORKERS: usize = 16;
/// Keys each client reads and writes.
const SLOTS: usize = 64;
/// Measured cycles needed after the warm-up (to compare one cycle with the next).
const MIN_CYCLES: usize = 2;

/// Answers of one cycle.
#[derive(Default)]
struct Tally {
    put_201: Cell<u64>,
    put_202: Cell<u64>,
    get_200: Cell<u64>,
    get_404: Cell<u64>,
    bad: Cell<u64>,
    first_bad: RefCell<Option<String>>,
    peak_rss_kib: Cell<u64>,
    peak_keys: Cell<u64>,
}

impl Tally {
    fn bump(c: &Cell<u64>) {
        c.set(c.get() + 1);
    }

    fn bad(&self, what: String) {
        Tally::bump(&self.bad);
        self.first_bad.borrow_mut().get_or_insert(what);
    }
}

/// A value of `len` bytes: a slice of one shared buffer, so the client copies nothing.
fn value_of(pattern: &Bytes, len: usize) -> Bytes {
    pattern.slice(..len.min(pattern.len()))
}

/// Log-uniform size in `VALUE_MIN..=VALUE_MAX`.
fn value_len(rng: &mut StdRng) -> usize {
    let (lo, hi) = ((VALUE_MIN as f64).ln(), (VALUE_MAX as f64).ln());
    (rng.gen_range(lo..=hi).exp() as usize).clamp(VALUE_MIN, VALUE_MAX)
}

/// One client until `until`: 40 % PUTs, 60 % GETs, each of one of the client's `SLOTS`
/// keys (so at most `WORKERS * SLOTS` keys are alive at once, whatever the machine's
/// speed) on a random node. A PUT writes a value of random size with a random TTL.
async fn client(bench: &Bench, ports: &[u16], w: usize, until: Instant, tally: &Tally) {
    let mut rng = StdRng::from_entropy();
    let pattern = Bytes::from(vec![b's'; VALUE_MAX]);
    while Instant::now() < until {
        let port = ports[rng.gen_range(0..ports.len())];
        let key = format!("soak-w{w}-{}", rng.gen_range(0..SLOTS));
        if rng.gen_bool(0.4) {
            let path = format!("/data/{key}?ttl={}", rng.gen_range(1..=MAX_TTL));
            let value = value_of(&pattern, value_len(&mut rng));
            match bench.http.put(port, &path, value).await {
                Ok(StatusCode::CREATED) => Tally::bump(&tally.put_201),
                Ok(StatusCode::ACCEPTED) => Tally::bump(&tally.put_202),
                Ok(s) => tally.bad(format!("PUT {path} on {port}: {s}")),
                Err(e) => tally.bad(format!("PUT {path} on {port}: {e}")),
            }
        } else {
            let path = format!("/data/{key}");
            match bench.http.get(port, &path).await {
                Ok((StatusCode::OK, body)) if (VALUE_MIN..=VALUE_MAX).contains(&body.len()) => {
                    Tally::bump(&tally.get_200)
                }
                // Never written, expired, or not yet replicated to this node.
                Ok((StatusCode::NOT_FOUND, _)) => Tally::bump(&tally.get_404),
                Ok((s, body)) => tally.bad(format!("GET {path} on {port}: {s}, {} B", body.len())),
                Err(e) => tally.bad(format!("GET {path} on {port}: {e}")),
            }
        }
    }
}

/// Samples RSS and node 1's key count every 200 ms until `until`, keeping the peaks.
async fn sampler(bench: &Bench, server: &Server, port: u16, until: Instant, tally: &Tally) {
    while Instant::now() < until {
        if let Some(rss) = server.rss_kib() {
            tally.peak_rss_kib.set(tally.peak_rss_kib.get().max(rss));
        }
        if let Ok(v) = bench.http.json(port, "/status").await {
            let keys = v["keys"].as_u64().unwrap_or(0);
            tally.peak_keys.set(tally.peak_keys.get().max(keys));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until every node is empty after a cycle's load.
async fn drained(bench: &Bench, server: &mut Server, ports: &[u16]) -> Result<f64, String> {
    bench
        .wait_empty(server, ports, Duration::from_secs(MAX_TTL + 10))
        .await
}

fn mib(kib: u64) -> f64 {
    round1(kib as f64 / 1024.0)
}

/// What one cycle measured.
struct Cycle {
    peak_kib: u64,
    after_kib: u64,
    report: Value,
}

/// One cycle: load for `LOAD_S`, wait until every node is empty, settle, sample RSS.
async fn cycle(
    bench: &Bench,
    server: &mut Server,
    ports: &[u16],
    n: usize,
) -> Result<Cycle, String> {
    let tally = Tally::default();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(LOAD_S);
    let clients = join_all((0..WORKERS).map(|w| client(bench, ports, w, until, &tally)));
    futures::join!(clients, sampler(bench, server, ports[0], until, &tally));
    let load_s = t0.elapsed().as_secs_f64();
    let drain_s = drained(bench, server, ports).await?;
    // Let the purge tasks and idle connections settle before sampling.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_kib = server.rss_kib().ok_or("cannot read VmRSS")?;
    let peak_kib = tally.peak_rss_kib.get().max(after_kib);
    let ops = tally.put_201.get() + tally.put_202.get() + tally.get_200.get() + tally.get_404.get();
    eprintln!(
        "soak: cycle {n}{}: {:.0} ops/s ({} PUT 201, {} PUT 202, {} GET 200, \
         {} GET 404, {} bad), peak {} keys/node, RSS peak {} MiB; all nodes empty {:.1} s \
         after the load, then RSS {} MiB",
        if n == 0 { " (warm-up)" } else { "" },
        ops as f64 / load_s,
        tally.put_201.get(),
        tally.put_202.get(),
        tally.get_200.get(),
        tally.get_404.get(),
        tally.bad.get(),
        tally.peak_keys.get(),
        mib(peak_kib),
        drain_s,
        mib(after_kib),
    );
    if tally.bad.get() > 0 {
        return Err(format!(
            "cycle {n}: {} failed or unexpected answers, first: {}",
            tally.bad.get(),
            tally.first_bad.borrow().as_deref().unwrap_or("?")
        ));
    }
    let report = json!({
        "cycle": n,
        "load_s": round1(load_s),
        "ops_per_s": round1(ops as f64 / load_s),
        "put_201": tally.put_201.get(),
        "put_202": tally.put_202.get(),
        "get_200": tally.get_200.get(),
        "get_404": tally.get_404.get(),
        "peak_keys_node1": tally.peak_keys.get(),
        "peak_rss_mib": mib(peak_kib),
        "empty_after_s": round1(drain_s),
        "after_rss_mib": mib(after_kib),
    });
    Ok(Cycle {
        peak_kib,
        after_kib,
        report,
    })
}

pub(crate) async fn run(args: SoakArgs, children: Children) -> ExitCode {
    let started = Instant::now();
    let mut bench = Bench::new(
        Args {
            server: args.server.clone(),
            tmp: args.tmp.clone(),
            ..Args::default()
        },
        Duration::from_secs(args.seconds),
        children,
    );
    bench.server_env = vec![
        ("REPRAM_MIN_TTL", "1".into()),
        ("REPRAM_CLEANUP_INTERVAL", "1".into()),
    ];
    let result = soak(&bench, &args, started).await;
    bench.children.kill_all();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("soak: FAIL: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(out) = &args.out {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(out, text) {
            eprintln!("repram-bench: {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn soak(bench: &Bench, args: &SoakArgs, started: Instant) -> Result<Value, String> {
    let mut server = bench.spawn_server("soak", args.nodes, args.nodes, None)?;
    bench
        .wait_mesh(&mut server, Duration::from_secs(10))
        .await?;
    let ports = server.ports();
    let start_kib = server.rss_kib().ok_or("cannot read VmRSS")?;
    eprintln!(
        "soak: {} nodes (pid {}), {} s, cycles of {LOAD_S} s load by {WORKERS} clients on \
         {} keys, TTL 1-{MAX_TTL} s, values {VALUE_MIN}-{VALUE_MAX} B; RSS at start {} MiB",
        args.nodes,
        server.pid,
        args.seconds,
        WORKERS * SLOTS,
        mib(start_kib)
    );
    let deadline = started + Duration::from_secs(args.seconds);
    let warm = cycle(bench, &mut server, &ports, 0).await?;
    let mut cycles: Vec<Cycle> = Vec::new();
    let mut longest = Duration::ZERO;
    while Instant::now() + longest < deadline {
        let t0 = Instant::now();
        cycles.push(cycle(bench, &mut server, &ports, cycles.len() + 1).await?);
        longest = longest.max(t0.elapsed());
    }
    if cycles.len() < MIN_CYCLES {
        return Err(format!(
            "only {} cycles after the warm-up fit in {} s (need {MIN_CYCLES}); the machine \
             is too busy for this budget",
            cycles.len(),
            args.seconds
        ));
    }
    let verdict = Verdict::judge(start_kib, &warm, &cycles);
    let peak_kib = cycles.iter().map(|c| c.peak_kib).max().unwrap_or(0);
    let afters: Vec<f64> = cycles.iter().map(|c| mib(c.after_kib)).collect();
    eprintln!(
        "soak: RSS at start {} MiB; baseline {} MiB (after the warm-up); peak {} MiB; after \
         each cycle {afters:?} MiB; allowed: baseline + {} MiB; {:.0} s",
        mib(start_kib),
        mib(warm.after_kib),
        mib(peak_kib.max(warm.peak_kib)),
        mib(verdict.slack_kib),
        started.elapsed().as_secs_f64()
    );
    let report = json!({
        "seconds": round1(started.elapsed().as_secs_f64()),
        "nodes": args.nodes,
        "rss_start_mib": mib(start_kib),
        "rss_baseline_mib": mib(warm.after_kib),
        "rss_warmup_peak_mib": mib(warm.peak_kib),
        "rss_peak_mib": mib(peak_kib),
        "rss_after_mib": afters,
        "slack_mib": mib(verdict.slack_kib),
        "warmup": warm.report,
        "cycles": cycles.iter().map(|c| c.report.clone()).collect::<Vec<_>>(),
        "stop": server.stop().await,
    });
    match verdict.failure {
        None => {
            eprintln!(
                "soak: PASS: {} cycles, every node empty after each, RSS back to the baseline \
                 after each",
                cycles.len()
            );
            Ok(report)
        }
        Some(why) => Err(why),
    }
}

/// The RSS criterion.
///
/// glibc's malloc keeps freed memory in its heap; the server hands it back to the OS after
/// purges (`heap_trim::spawn` in `src/heap_trim.rs`), so once every key has expired RSS comes
/// back to where the warm-up left it. The baseline is the RSS after the warm-up (which
/// also holds what stays after the first load: connection buffers, map capacity, the
/// allocator's bookkeeping). Every later cycle must end within `slack` of it; a leak
/// shows as RSS that climbs cycle after cycle past the slack.
struct Verdict {
    slack_kib: u64,
    failure: Option<String>,
}

impl Verdict {
    /// Slack: 4 MiB, or 10 % of the warm-up's rise (its peak minus the RSS at start) when
    /// that is more, for heap pages that stay pinned by a few live allocations and the
    /// last purged MiB the trimmer waits for. Measured drift from one cycle to the next:
    /// under 2 MiB.
    fn judge(start_kib: u64, warm: &Cycle, cycles: &[Cycle]) -> Verdict {
        let baseline = warm.after_kib;
        let slack_kib = (4 * 1024).max(warm.peak_kib.saturating_sub(start_kib) / 10);
        let failure = cycles.iter().enumerate().find_map(|(i, c)| {
            (c.after_kib > baseline + slack_kib).then(|| {
                format!(
                    "RSS after cycle {} is {} MiB, above the baseline {} MiB + {} MiB: \
                     memory is leaking or not given back",
                    i + 1,
                    mib(c.after_kib),
                    mib(baseline),
                    mib(slack_kib),
                )
            })
        });
        Verdict { slack_kib, failure }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(peak_mib: u64, after_mib: u64) -> Cycle {
        Cycle {
            peak_kib: peak_mib * 1024,
            after_kib: after_mib * 1024,
            report: Value::Null,
        }
    }

    #[test]
    fn rss_back_near_the_baseline_passes() {
        let v = Verdict::judge(13 * 1024, &at(40, 17), &[at(36, 18), at(42, 21)]);
        assert_eq!(v.slack_kib, 4 * 1024);
        assert!(v.failure.is_none(), "{:?}", v.failure);
    }

    #[test]
    fn rss_climbing_cycle_after_cycle_fails() {
        let v = Verdict::judge(13 * 1024, &at(40, 17), &[at(40, 20), at(43, 22)]);
        let why = v.failure.expect("a climb past the slack fails");
        assert!(why.contains("cycle 2"), "{why}");
    }

    #[test]
    fn slack_grows_with_a_large_load() {
        let v = Verdict::judge(10 * 1024, &at(210, 20), &[at(200, 39)]);
        assert_eq!(v.slack_kib, 20 * 1024);
        assert!(v.failure.is_none());
    }
}
