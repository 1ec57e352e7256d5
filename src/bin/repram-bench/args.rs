//! The command line of `repram-bench`: every subcommand and its flags.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) server: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) tmp: PathBuf,
    pub(crate) lua_dir: PathBuf,
    pub(crate) wrk: Option<PathBuf>,
    pub(crate) nginx_port: Option<u16>,
    pub(crate) nginx_bin: Option<PathBuf>,
    pub(crate) quick: bool,
    pub(crate) profile: String,
    pub(crate) only: Option<BTreeSet<String>>,
    pub(crate) build_s: Option<f64>,
}

pub(crate) const USAGE: &str = "usage:
  repram-bench all --server PATH [--out FILE] [--tmp DIR] [--lua-dir DIR] [--wrk PATH]
                   [--nginx-port PORT] [--nginx-bin PATH] [--quick] [--profile NAME]
                   [--only get,put,mesh,visible,memory,catchup,listing,evict,big] [--build-seconds S]
  repram-bench free-port [--from PORT]
  repram-bench table [FILE]      print the table of a saved report (bench/results.json)
  repram-bench soak --server PATH [--seconds 60] [--nodes 3] [--tmp DIR] [--out FILE]
                                 bounded soak: expiring keys, RSS back to baseline
Run scripts/bench.sh rather than this binary directly: it builds the server, installs wrk
and nginx-light and starts the reference nginx.";

impl Default for Args {
    fn default() -> Self {
        Args {
            server: PathBuf::new(),
            out: PathBuf::from("bench/results.json"),
            tmp: PathBuf::from("bench/tmp"),
            lua_dir: PathBuf::from("bench"),
            wrk: None,
            nginx_port: None,
            nginx_bin: None,
            quick: false,
            profile: "release".into(),
            only: None,
            build_s: None,
        }
    }
}

/// What the command line asks for.
pub(crate) enum Cmd {
    Help,
    /// `all`: every phase (or `--only` some), the table and the report.
    All(Args),
    /// `free-port`: the first free loopback port from `from`.
    FreePort {
        from: u16,
    },
    /// `table`: the table of a saved report.
    Table {
        path: PathBuf,
    },
    /// `soak`: the bounded soak of `scripts/soak.sh`.
    Soak(SoakArgs),
}

/// The arguments of `repram-bench soak`.
pub(crate) struct SoakArgs {
    pub(crate) server: PathBuf,
    pub(crate) seconds: u64,
    pub(crate) nodes: u16,
    pub(crate) tmp: PathBuf,
    pub(crate) out: Option<PathBuf>,
}

/// Parses the whole command line (without the program name).
pub(crate) fn parse_command(mut argv: Vec<String>) -> Result<Cmd, String> {
    if argv.is_empty() || argv[0] == "-h" || argv[0] == "--help" {
        return Ok(Cmd::Help);
    }
    let cmd = argv.remove(0);
    match cmd.as_str() {
        "all" => parse_args(argv).map(Cmd::All),
        "soak" => parse_soak(argv).map(Cmd::Soak),
        "free-port" => {
            let mut from = 19_000u16;
            flags(argv, |flag, value| match flag {
                "--from" => {
                    from = within("--from", &value()?, 1..=u16::MAX)?;
                    Ok(())
                }
                other => Err(format!("unknown argument {other:?}")),
            })?;
            Ok(Cmd::FreePort { from })
        }
        "table" => match argv.as_slice() {
            [] => Ok(Cmd::Table {
                path: PathBuf::from("bench/results.json"),
            }),
            [path] => Ok(Cmd::Table { path: path.into() }),
            _ => Err("table takes at most one FILE".into()),
        },
        other => Err(format!("unknown command {other:?}")),
    }
}

/// Walks the flags of `argv` ([`repram_flux::flags::walk`]); `f` gets each flag and a
/// way to take its value.
fn flags(
    argv: Vec<String>,
    mut f: impl FnMut(&str, &mut dyn FnMut() -> Result<String, String>) -> Result<(), String>,
) -> Result<(), String> {
    repram_flux::flags::walk(argv, |flag| {
        let name = flag.name().to_string();
        f(&name, &mut || flag.value().map_err(String::from))?;
        Ok(ControlFlow::Continue(()))
    })
}

/// `v` as a number in `range`, or an error naming `flag`.
fn within<T>(flag: &str, v: &str, range: std::ops::RangeInclusive<T>) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    v.parse().ok().filter(|n| range.contains(n)).ok_or(format!(
        "{flag} must be {}..={}, got {v:?}",
        range.start(),
        range.end()
    ))
}

pub(crate) fn parse_args(argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args::default();
    flags(argv, |flag, value| {
        match flag {
            "--server" => args.server = value()?.into(),
            "--out" => args.out = value()?.into(),
            "--tmp" => args.tmp = value()?.into(),
            "--lua-dir" => args.lua_dir = value()?.into(),
            "--wrk" => args.wrk = Some(value()?.into()),
            "--nginx-bin" => args.nginx_bin = Some(value()?.into()),
            "--nginx-port" => {
                let v = value()?;
                args.nginx_port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?);
            }
            "--profile" => args.profile = value()?,
            "--build-seconds" => args.build_s = value()?.parse().ok(),
            "--only" => {
                let v = value()?;
                args.only = Some(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            "--quick" => args.quick = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
        Ok(())
    })?;
    if args.server.as_os_str().is_empty() {
        return Err("--server PATH is required".into());
    }
    Ok(args)
}

fn parse_soak(argv: Vec<String>) -> Result<SoakArgs, String> {
    let mut args = SoakArgs {
        server: PathBuf::new(),
        seconds: 60,
        nodes: 3,
        tmp: PathBuf::from("bench/tmp"),
        out: None,
    };
    flags(argv, |flag, value| {
        match flag {
            "--server" => args.server = value()?.into(),
            "--tmp" => args.tmp = value()?.into(),
            "--out" => args.out = Some(value()?.into()),
            "--seconds" => args.seconds = within("--seconds", &value()?, 45..=600)?,
            "--nodes" => args.nodes = within("--nodes", &value()?, 1..=10)?,
            other => return Err(format!("unknown argument {other:?}")),
        }
        Ok(())
    })?;
    if args.server.as_os_str().is_empty() {
        return Err("--server PATH is required".into());
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_parse() {
        let a = parse_args(
            [
                "--server",
                "x",
                "--quick",
                "--nginx-port",
                "19000",
                "--only",
                "get,mesh",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
        .unwrap();
        assert!(a.quick);
        assert_eq!(a.nginx_port, Some(19000));
        assert!(a.only.unwrap().contains("mesh"));
        assert!(parse_args(vec!["--bogus".into()]).is_err());
        assert!(parse_args(vec![]).is_err());
        let a = parse_args(vec!["--server=y".into(), "--out=o.json".into()]).unwrap();
        assert_eq!(
            (a.server.to_str(), a.out.to_str()),
            (Some("y"), Some("o.json"))
        );
        assert_eq!(
            parse_args(vec!["--server=y".into(), "--quick=1".into()]).err(),
            Some("--quick takes no value".into())
        );
    }

    #[test]
    fn soak_arguments_parse() {
        let args = |a: &[&str]| parse_soak(a.iter().map(|s| s.to_string()).collect());
        let a = args(&["--server", "x", "--seconds", "120", "--nodes", "2"]).unwrap();
        assert_eq!((a.seconds, a.nodes), (120, 2));
        assert!(args(&["--server", "x", "--seconds", "10"]).is_err());
        assert!(args(&["--seconds", "60"]).is_err());
        assert!(args(&["--server", "x", "--bogus"]).is_err());
    }

    #[test]
    fn commands_parse() {
        let cmd = |a: &[&str]| parse_command(a.iter().map(|s| s.to_string()).collect());
        assert!(matches!(cmd(&[]), Ok(Cmd::Help)));
        assert!(matches!(
            cmd(&["free-port", "--from", "19500"]),
            Ok(Cmd::FreePort { from: 19500 })
        ));
        assert!(matches!(
            cmd(&["free-port"]),
            Ok(Cmd::FreePort { from: 19000 })
        ));
        assert!(cmd(&["free-port", "--from", "x"]).is_err());
        assert!(matches!(cmd(&["table", "r.json"]), Ok(Cmd::Table { .. })));
        assert!(cmd(&["table", "a", "b"]).is_err());
        assert!(matches!(cmd(&["all", "--server", "s"]), Ok(Cmd::All(_))));
        assert!(matches!(cmd(&["soak", "--server", "s"]), Ok(Cmd::Soak(_))));
        assert!(cmd(&["bogus"]).is_err());
    }
}
