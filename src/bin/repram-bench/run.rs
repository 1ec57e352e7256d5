//! `repram-bench all`: every phase in turn, then the table and the JSON report.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::args::Args;
use crate::bench::Bench;
use crate::children::Children;
use crate::goals::ratios_and_goals;
use crate::machine::{git_commit, machine_info};
use crate::stats::{round1, round3};
use crate::table::render_table;
use crate::VALUE_BYTES;

pub(crate) async fn run_all(args: Args, children: Children) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&args.tmp) {
        eprintln!("repram-bench: {}: {e}", args.tmp.display());
        return ExitCode::FAILURE;
    }
    let budget = if args.quick {
        Duration::from_secs(80)
    } else {
        Duration::from_secs(460)
    };
    let mut bench = Bench::new(args.clone(), budget, children);
    let settings = bench.settings();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut figures = serde_json::Map::new();
    let mut skipped: Vec<&str> = Vec::new();
    let phases = [
        "get", "put", "mesh", "visible", "memory", "catchup", "listing", "evict", "big",
    ];
    for phase in phases {
        if !bench.wants(phase) {
            continue;
        }
        if bench.over_budget() {
            eprintln!("repram-bench: {phase}: skipped, the run's time budget is used up");
            skipped.push(phase);
            // The smoke run must run every phase it was asked for to mean anything.
            if args.quick {
                bench
                    .errors
                    .push(format!("{phase}: skipped, the time budget was used up"));
            }
            continue;
        }
        eprintln!(
            "repram-bench: [{:>5.1}s] {phase} ...",
            bench.started.elapsed().as_secs_f64()
        );
        let t0 = Instant::now();
        let result = match phase {
            "get" => bench.phase_get(&settings).await,
            "put" => bench.phase_put(&settings).await,
            "mesh" => bench.phase_mesh(&settings).await,
            "visible" => bench.phase_visible(&settings).await,
            "memory" => bench.phase_memory(&settings).await,
            "catchup" => bench.phase_catchup(&settings).await,
            "listing" => bench.phase_listing(&settings).await,
            "evict" => bench.phase_evict(&settings).await,
            _ => bench.phase_big(&settings).await,
        };
        bench.children.kill_all(); // nothing of a phase outlives it, even after an error
        match result {
            Ok(mut v) => {
                v["phase_seconds"] = json!(round3(t0.elapsed().as_secs_f64()));
                figures.insert(phase.into(), v);
            }
            Err(e) => {
                eprintln!("repram-bench: {phase} failed: {e}");
                bench.errors.push(format!("{phase}: {e}"));
                figures.insert(phase.into(), json!({ "error": e }));
            }
        }
    }
    let figures = Value::Object(figures);
    let (ratios, goals) = ratios_and_goals(&figures);
    let report = json!({
        "timestamp": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "mode": if args.quick { "quick" } else { "full" },
        "profile": args.profile,
        "commit": git_commit(),
        "machine": machine_info(&args),
        "load_average_before": load_before.trim(),
        "load_average_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "note": "loopback only; wrk, nginx and the servers share the same cores (wrk -t2 -c50); \
                 servers run with REPRAM_LOG=warn, REPRAM_RATE_LIMIT=0, BIND_ADDR and \
                 DISCOVERY_DOMAIN 127.0.0.1; other work on the machine (see load averages) adds noise",
        "settings": {
            "wrk": format!("wrk -t2 -c50 -d{}s (warm-up {}s)", settings.wrk_seconds, settings.wrk_warmup_seconds),
            "value_bytes": VALUE_BYTES,
            "mesh_reps": settings.mesh_reps,
            "visible_writes": settings.visible_writes,
            "memory_keys": settings.memory_keys,
            "catchup_keys": settings.catchup_keys,
            "listing_keys": settings.listing_keys,
            "big_value_bytes": crate::big::BIG_BYTES,
        },
        "build_seconds": args.build_s,
        "run_seconds": round1(bench.started.elapsed().as_secs_f64()),
        "figures": figures,
        "ratios": ratios,
        "goals": goals,
        "errors": bench.errors,
        "skipped_for_time": skipped,
    });
    let table = render_table(&report);
    println!("{table}");
    let text = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&args.out, text) {
        Ok(()) => println!("results written to {}", args.out.display()),
        Err(e) => {
            eprintln!("repram-bench: {}: {e}", args.out.display());
            return ExitCode::FAILURE;
        }
    }
    if bench.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("repram-bench: {} phase(s) failed:", bench.errors.len());
        for e in &bench.errors {
            eprintln!("  - {}", e.lines().next().unwrap_or(""));
        }
        ExitCode::FAILURE
    }
}
