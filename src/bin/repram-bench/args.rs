//! The command line of `repram-bench all`.

use std::collections::BTreeSet;
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

pub(crate) fn parse_args(mut argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args::default();
    argv.reverse();
    while let Some(flag) = argv.pop() {
        let mut value = |name: &str| argv.pop().ok_or(format!("{name} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value("--server")?.into(),
            "--out" => args.out = value("--out")?.into(),
            "--tmp" => args.tmp = value("--tmp")?.into(),
            "--lua-dir" => args.lua_dir = value("--lua-dir")?.into(),
            "--wrk" => args.wrk = Some(value("--wrk")?.into()),
            "--nginx-bin" => args.nginx_bin = Some(value("--nginx-bin")?.into()),
            "--nginx-port" => {
                let v = value("--nginx-port")?;
                args.nginx_port = Some(v.parse().map_err(|_| format!("bad port {v:?}"))?);
            }
            "--profile" => args.profile = value("--profile")?,
            "--build-seconds" => {
                let v = value("--build-seconds")?;
                args.build_s = v.parse().ok();
            }
            "--only" => {
                let v = value("--only")?;
                args.only = Some(v.split(',').map(|s| s.trim().to_string()).collect());
            }
            "--quick" => args.quick = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
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
    }
}
