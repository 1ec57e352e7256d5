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
    map_big_allocations();
    let purged = repram_flux::store::PurgedBytes::default();
    spawn_heap_trimmer(purged.clone());
    let run = repram_flux::run(config, repram_flux::shutdown_signal(), purged);
    match runtime.block_on(run) {
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
/// Growth of the free memory glibc holds that makes the heap trimmer give memory back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_AFTER_FREE_BYTES: u64 = 16 << 20;

/// glibc's malloc keeps the memory of freed values in its heap: without help, RSS stays
/// at the load's high-water mark long after every key expired or a burst of uploads was
/// answered (`scripts/soak.sh` measures it). Once a second, if the stores
/// purged at least 1 MiB of expired data, or the free memory inside glibc's heap grew by
/// 16 MiB (request bodies and connection buffers freed after a burst), hand the free
/// pages of the heap back to the OS. A thread of its own: the calls walk the heap and
/// must not hold up a runtime worker.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn spawn_heap_trimmer(purged: repram_flux::store::PurgedBytes) {
    // Free bytes glibc holds in its arenas (and in big chunks it keeps mapped).
    fn heap_free() -> u64 {
        // SAFETY: mallinfo2 only reads glibc's own bookkeeping (under its arena locks)
        // and returns a plain struct by value.
        let info = unsafe { libc::mallinfo2() };
        (info.fordblks as u64).saturating_add(info.fsmblks as u64)
    }
    let trimmer = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || {
            let mut trimmed_at = purged.total();
            // The free memory after the last trim, or the least seen since: what grows
            // past it was freed since then.
            let mut free_floor = heap_free();
            loop {
                std::thread::sleep(TRIM_EVERY);
                let total = purged.total();
                let free = heap_free();
                free_floor = free_floor.min(free);
                if total.wrapping_sub(trimmed_at) >= TRIM_AFTER_BYTES
                    || free.saturating_sub(free_floor) >= TRIM_AFTER_FREE_BYTES
                {
                    trimmed_at = total;
                    let t0 = std::time::Instant::now();
                    // SAFETY: malloc_trim only returns free pages of glibc's own heap to
                    // the kernel; it is thread-safe and touches no memory in use.
                    unsafe { libc::malloc_trim(0) };
                    free_floor = heap_free();
                    tracing::debug!(
                        took_us = t0.elapsed().as_micros() as u64,
                        free,
                        "heap trimmed"
                    );
                }
            }
        });
    if let Err(e) = trimmer {
        tracing::warn!(error = %e, "cannot start the heap trimmer; freed memory stays in the heap");
    }
}

/// Allocations of at least this size get pages of their own from the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 1 << 20;

/// Big values (request bodies, stored values of a MiB or more) get pages of their own,
/// returned to the kernel the moment they are freed. glibc starts at 128 KiB but raises
/// the threshold to the size of each mapped block freed (up to 32 MiB), after which 10 MB
/// bodies come from the heap and leave holes there when freed: after a burst of 10 MB
/// uploads RSS stayed 50-60 MiB above what the stored values and the idle process need,
/// with a fixed threshold it came back to within 2 % (`tests/public_abuse.rs`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn map_big_allocations() {
    // SAFETY: mallopt only changes a malloc tuning parameter; called before any thread
    // is started.
    if unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) } != 1 {
        eprintln!("repram-flux: could not set the malloc mmap threshold; big freed values may stay in the heap");
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn map_big_allocations() {}

/// Other C libraries hand freed memory back on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn spawn_heap_trimmer(_purged: repram_flux::store::PurgedBytes) {}

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
