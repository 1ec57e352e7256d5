//! The `repram-flux` binary: read the configuration from the environment, set up logs,
//! run the cluster until SIGTERM or SIGINT.

use std::process::ExitCode;

use repram_flux::config::{Config, LogFormat};
use repram_flux::flux::{health, spec};

fn main() -> ExitCode {
    if let Some(arg) = std::env::args_os().nth(1) {
        match arg.to_str() {
            Some("-h" | "--help") => {
                print!("{}", Config::help_text());
                print!(
                    "\nSubcommands:\n  \
                     flux-spec    print a Flux app specification (see flux-spec --help)\n  \
                     healthcheck  exit 0 when every local node answers /health (Docker HEALTHCHECK)\n"
                );
                return ExitCode::SUCCESS;
            }
            Some("-V" | "--version") => {
                println!("repram-flux {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some("flux-spec") => return flux_spec(),
            Some("healthcheck") => return healthcheck(),
            _ => {
                eprintln!(
                    "repram-flux: unknown argument {arg:?}; configuration comes from the environment (see --help)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("repram-flux: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log_filter, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repram-flux: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    spawn_heap_trimmer();
    match runtime.block_on(repram_flux::run(config, repram_flux::shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repram-flux: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Check interval of the heap trimmer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Purged bytes that make the heap trimmer give memory back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_AFTER_BYTES: u64 = 1 << 20;

/// glibc's malloc keeps the memory of freed values in its heap: without help, RSS stays
/// at the load's high-water mark long after every key expired (`scripts/soak.sh`: 13 MiB
/// at start, 34-48 MiB once all keys were gone; 16-18 MiB after `malloc_trim`). Once a
/// second, if the stores purged at least 1 MiB of expired data since the last time, hand
/// the free pages of the heap back to the OS. A thread of its own: the call walks the
/// heap and must not hold up a runtime worker.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_heap_trimmer() {
    let trimmer = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(|| {
            let mut trimmed_at = repram_flux::store::purged_bytes_total();
            loop {
                std::thread::sleep(TRIM_EVERY);
                let purged = repram_flux::store::purged_bytes_total();
                if purged.wrapping_sub(trimmed_at) >= TRIM_AFTER_BYTES {
                    trimmed_at = purged;
                    let t0 = std::time::Instant::now();
                    // SAFETY: malloc_trim only returns free pages of glibc's own heap to
                    // the kernel; it is thread-safe and touches no memory in use.
                    unsafe { libc::malloc_trim(0) };
                    tracing::debug!(took_us = t0.elapsed().as_micros() as u64, "heap trimmed");
                }
            }
        });
    if let Err(e) = trimmer {
        tracing::warn!(error = %e, "cannot start the heap trimmer; freed memory stays in the heap");
    }
}

/// Other C libraries hand freed memory back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn spawn_heap_trimmer() {}

/// `repram-flux flux-spec …`: print or check a Flux v8 app specification (see
/// `flux-spec --help`).
fn flux_spec() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(2) {
        match arg.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                eprintln!("repram-flux flux-spec: argument {a:?} is not valid UTF-8");
                return ExitCode::from(spec::EXIT_USAGE);
            }
        }
    }
    let env_secret = std::env::var(spec::SECRET_VAR).ok();
    let read = |path: &str| match path {
        "-" => std::io::read_to_string(std::io::stdin()),
        path => std::fs::read_to_string(path),
    };
    let out = spec::run(args, env_secret, &read);
    print!("{}", out.stdout);
    eprint!("{}", out.stderr);
    ExitCode::from(out.code)
}

/// `repram-flux healthcheck` (for Docker's HEALTHCHECK): exit 0 when all `NODE_COUNT`
/// local nodes answer `/health`, else 1.
fn healthcheck() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("repram-flux healthcheck: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let report = health::check(&config, std::time::Duration::from_secs(2));
    println!("{}", report.summary());
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn init_tracing(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}
