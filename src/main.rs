//! The `repram-flux` binary: parse the command line, read the configuration from the
//! environment, set up logs, run the cluster until SIGTERM or SIGINT.

use std::process::ExitCode;

use repram_flux::command::{self, Command};
use repram_flux::config::{Config, LogFormat};
use repram_flux::flux::{health, spec};
use repram_flux::heap_trim;

fn main() -> ExitCode {
    match Command::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run) => run(),
        Ok(Command::Help) => {
            print!("{}", command::help_text());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            print!("{}", command::version_text());
            ExitCode::SUCCESS
        }
        Ok(Command::FluxSpec(args)) => flux_spec(args),
        Ok(Command::Healthcheck) => healthcheck(),
        Err(unknown) => {
            eprintln!("repram-flux: {unknown}");
            ExitCode::from(2)
        }
    }
}

/// Runs the cluster on a runtime with one worker per available core.
fn run() -> ExitCode {
    heap_trim::limit_thread_caches();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("repram-flux: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config.log_filter, config.log_format);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("repram-flux: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    heap_trim::map_big_allocations();
    let purged = repram_flux::store::PurgedBytes::default();
    let counted = purged.clone();
    heap_trim::spawn(move || counted.total());
    let run = repram_flux::run(config, repram_flux::shutdown_signal(), purged);
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("repram-flux: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `repram-flux flux-spec …`: print or check a Flux v8 app specification (see
/// `flux-spec --help`).
fn flux_spec(args: Vec<std::ffi::OsString>) -> ExitCode {
    let mut utf8 = Vec::with_capacity(args.len());
    for arg in args {
        match arg.into_string() {
            Ok(a) => utf8.push(a),
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
    let out = spec::run(utf8, env_secret, &read);
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
