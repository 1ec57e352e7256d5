//! `repram-bench`: the measurements behind `scripts/bench.sh`.
//!
//! `repram-bench all --server target/release/repram-flux [--quick] ...` starts the server
//! binary as separate processes on free loopback port ranges and measures, in one run:
//! GET and replicated-PUT throughput with `wrk` (side by side with an nginx that
//! `scripts/bench.sh` started), mesh formation time, write-to-visible-everywhere latency,
//! memory per key, catch-up time of a late node, and GET latency while clients page
//! through all keys (`listing.rs`). It prints a table and writes a JSON
//! report. Every loop is bounded in count and time; every child process is killed when
//! the run ends, fails, or receives SIGINT/SIGTERM.
//!
//! `repram-bench free-port [--from N]` prints a free loopback TCP port (used for nginx).
//!
//! `repram-bench soak --server PATH [--seconds 60]` runs the bounded soak of
//! `scripts/soak.sh` (see `soak.rs`).

mod args;
mod bench;
mod big;
mod catchup;
mod children;
mod cluster;
mod evict;
mod get;
mod goals;
mod http;
mod listing;
mod machine;
mod memory;
mod mesh;
mod put;
mod run;
mod soak;
mod stats;
mod table;
mod visible;
mod wrk;

use std::process::ExitCode;

use serde_json::Value;

use crate::args::{parse_command, Cmd, USAGE};
use crate::children::{port_is_free, Children};
use crate::run::run_all;
use crate::table::render_table;

/// Size of every benchmark value, as issue 6 asks.
pub(crate) const VALUE_BYTES: usize = 100;
/// First port tried for the servers' ranges (below the usual ephemeral range 32768+).
pub(crate) const FIRST_PORT: u16 = 20_000;
/// Last port a range may use.
pub(crate) const LAST_PORT: u16 = 32_000;

fn main() -> ExitCode {
    let cmd = match parse_command(std::env::args().skip(1).collect()) {
        Ok(cmd) => cmd,
        Err(e) => {
            eprintln!("repram-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repram-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cmd {
        Cmd::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Cmd::FreePort { from } => match (from..LAST_PORT).find(|p| port_is_free(*p)) {
            Some(p) => {
                println!("{p}");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("repram-bench: no free port from {from}");
                ExitCode::FAILURE
            }
        },
        Cmd::Table { path } => match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
        {
            Ok(report) => {
                println!("{}", render_table(&report));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("repram-bench: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
        Cmd::All(args) => guarded(&runtime, |children| run_all(args, children)),
        Cmd::Soak(args) => guarded(&runtime, |children| soak::run(args, children)),
    }
}

/// Runs `run` with the run's list of child processes to its end; on SIGINT/SIGTERM, and
/// after it ends, kills every child process on that list.
fn guarded<F: std::future::Future<Output = ExitCode>>(
    runtime: &tokio::runtime::Runtime,
    run: impl FnOnce(Children) -> F,
) -> ExitCode {
    let children = Children::default();
    let code = runtime.block_on(async {
        let on_signal = children.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            eprintln!("repram-bench: interrupted; killing child processes");
            on_signal.kill_all();
            std::process::exit(130);
        });
        run(children.clone()).await
    });
    children.kill_all();
    code
}

async fn wait_for_signal() {
    repram_flux::shutdown_signal().await
}
