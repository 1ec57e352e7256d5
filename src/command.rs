//! The command line of the `repram-flux` binary: the one parser of its subcommands.
//! Configuration comes from the environment ([`Config`](crate::Config)), so the only
//! arguments are a subcommand or `--help` / `--version`.

use std::ffi::OsString;

/// What the binary was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// No arguments: run the cluster.
    Run,
    /// `-h` / `--help`: print [`help_text`] (arguments after it are ignored).
    Help,
    /// `-V` / `--version`: print the version.
    Version,
    /// `flux-spec …`: print or check a Flux app specification; the arguments after the
    /// subcommand go to its own parser (`flux::spec::run`).
    FluxSpec(Vec<OsString>),
    /// `healthcheck`: exit 0 when every local node answers `/health` (arguments after
    /// it are ignored).
    Healthcheck,
}

/// An argument that is none of the above: the binary exits 2 with [`Unknown`]'s text.
#[derive(Debug, PartialEq, Eq)]
pub struct Unknown(pub OsString);

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown argument {:?}; configuration comes from the environment (see --help)",
            self.0
        )
    }
}

impl Command {
    /// Parses the arguments after the program name.
    pub fn parse<I>(args: I) -> Result<Command, Unknown>
    where
        I: IntoIterator<Item = OsString>,
    {
        let mut args = args.into_iter();
        let Some(first) = args.next() else {
            return Ok(Command::Run);
        };
        match first.to_str() {
            Some("-h" | "--help") => Ok(Command::Help),
            Some("-V" | "--version") => Ok(Command::Version),
            Some("flux-spec") => Ok(Command::FluxSpec(args.collect())),
            Some("healthcheck") => Ok(Command::Healthcheck),
            _ => Err(Unknown(first)),
        }
    }
}

/// `--help`: the configuration table, then the subcommands.
pub fn help_text() -> String {
    let mut out = crate::Config::help_text();
    out.push_str(
        "\nSubcommands:\n  \
         flux-spec    print a Flux app specification (see flux-spec --help)\n  \
         healthcheck  exit 0 when every local node answers /health (Docker HEALTHCHECK)\n",
    );
    out
}

/// `--version`: the program name and version.
pub fn version_text() -> String {
    format!("repram-flux {}\n", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, Unknown> {
        Command::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn each_subcommand_and_flag() {
        assert_eq!(parse(&[]), Ok(Command::Run));
        for help in ["-h", "--help"] {
            assert_eq!(parse(&[help, "ignored"]), Ok(Command::Help));
        }
        for version in ["-V", "--version"] {
            assert_eq!(parse(&[version]), Ok(Command::Version));
        }
        assert_eq!(parse(&["healthcheck"]), Ok(Command::Healthcheck));
        assert_eq!(
            parse(&["flux-spec", "--check", "-"]),
            Ok(Command::FluxSpec(vec!["--check".into(), "-".into()]))
        );
    }

    #[test]
    fn anything_else_is_unknown_and_named() {
        for bad in ["--bogus", "run", "-help", "FLUX-SPEC", ""] {
            let err = parse(&[bad]).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn help_lists_the_subcommands() {
        let help = help_text();
        assert!(help.starts_with(&crate::Config::help_text()));
        assert!(help.contains("flux-spec") && help.contains("healthcheck"));
        assert!(version_text().starts_with("repram-flux "));
    }
}
