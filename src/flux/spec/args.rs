//! The `flux-spec` arguments: what they ask for ([`SpecCommand`]) and the walk over
//! them ([`parse_args`]).

use std::ops::ControlFlow;

use super::enterprise::Secret;
use super::error::SpecError;
use super::generate::SpecOptions;
use super::model::*;
use super::names::shown;
use crate::config::HomePage;

/// What `repram-flux flux-spec …` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecCommand {
    /// `-h` / `--help`.
    Help,
    /// Print a normal app's spec.
    Generate(SpecOptions),
    /// `--enterprise`: print the plaintext `{contacts, compose}` to encrypt; the secret
    /// comes from `--cluster-secret`, else from `REPRAM_CLUSTER_SECRET` (see [`run`]).
    Enterprise {
        /// The app.
        opts: SpecOptions,
        /// `--cluster-secret`, when given.
        secret: Option<Secret>,
    },
    /// `--enterprise-blob BLOB`: print an enterprise app's public spec.
    EnterprisePublic {
        /// The app.
        opts: SpecOptions,
        /// The encrypted `{contacts, compose}`.
        blob: String,
    },
    /// `--check FILE` (`-` for standard input).
    Check(String),
}

/// Parses the arguments after `flux-spec` (`--flag value` or `--flag=value`, walked by
/// [`crate::flags::walk`]).
pub fn parse_args<I, S>(args: I) -> Result<SpecCommand, SpecError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    const FLAGS: [&str; 13] = [
        "--name",
        "--owner",
        "--image",
        "--domain",
        "--nodes",
        "--instances",
        "--base-port",
        "--description",
        "--expire",
        "--cluster-secret",
        "--enterprise-blob",
        "--check",
        "--home-page",
    ];
    let mut values: [Option<String>; 13] = Default::default();
    let mut enterprise = false;
    let mut help = false;
    crate::flags::walk(args, |flag| {
        match flag.name() {
            "-h" | "--help" => {
                help = true;
                return Ok(ControlFlow::Break(()));
            }
            "--enterprise" => {
                if std::mem::replace(&mut enterprise, true) {
                    return Err(SpecError::Repeated("--enterprise"));
                }
            }
            name => {
                // Never echo what may be a mistyped secret flag's value: the walk hands
                // over the name alone.
                let Some(i) = FLAGS.iter().position(|f| *f == name) else {
                    return Err(SpecError::Unknown(shown(name)));
                };
                if values[i].replace(flag.value()?).is_some() {
                    return Err(SpecError::Repeated(FLAGS[i]));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if help {
        return Ok(SpecCommand::Help);
    }
    let [name, owner, image, domain, nodes, instances, base_port, description, expire, secret, blob, check, home_page] =
        values;
    if let Some(path) = check {
        let others = [&name, &owner, &image, &domain, &nodes, &instances]
            .iter()
            .chain(
                [
                    &base_port,
                    &description,
                    &expire,
                    &secret,
                    &blob,
                    &home_page,
                ]
                .iter(),
            )
            .any(|v| v.is_some());
        if others || enterprise {
            return Err(SpecError::Conflict("--check takes no other flag"));
        }
        return Ok(SpecCommand::Check(path));
    }
    if secret.is_some() && !enterprise {
        return Err(SpecError::Conflict(
            "--cluster-secret goes only with --enterprise: a secret never goes in a public spec",
        ));
    }
    if enterprise && blob.is_some() {
        return Err(SpecError::Conflict(
            "--enterprise prints the plaintext, --enterprise-blob the public spec: one at a time",
        ));
    }
    let missing: Vec<&str> = [(&name, "--name"), (&owner, "--owner"), (&image, "--image")]
        .iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, f)| *f)
        .collect();
    if !missing.is_empty() {
        return Err(SpecError::Missing(missing.join(", ")));
    }
    let defaults = SpecOptions::fade();
    let opts = SpecOptions {
        name: name.unwrap_or_default(),
        owner: owner.unwrap_or_default(),
        image: image.unwrap_or_default(),
        domain: domain.unwrap_or_default(),
        nodes: number("--nodes", nodes, 3, 1, u64::from(MAX_NODES))?,
        instances: number("--instances", instances, 3, 1, u64::from(MAX_INSTANCES))?,
        base_port: number("--base-port", base_port, defaults.base_port, 1, 65535)?,
        description: description.unwrap_or(defaults.description),
        expire: number("--expire", expire, defaults.expire, 1, MAX_EXPIRE_BLOCKS)?,
        home_page: match home_page.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("dashboard") => HomePage::Dashboard,
            Some("fade") => HomePage::Fade,
            Some(_) => {
                return Err(SpecError::Invalid {
                    flag: "--home-page",
                    value: shown(&home_page.unwrap_or_default()),
                    expected: "dashboard or fade".to_string(),
                })
            }
        },
    };
    if enterprise {
        let secret = match secret {
            Some(raw) => Some(Secret::new(&raw, "--cluster-secret")?),
            None => None,
        };
        return Ok(SpecCommand::Enterprise { opts, secret });
    }
    if let Some(blob) = blob {
        return Ok(SpecCommand::EnterprisePublic { opts, blob });
    }
    Ok(SpecCommand::Generate(opts))
}

fn number<T: TryFrom<u64>>(
    flag: &'static str,
    raw: Option<String>,
    default: T,
    min: u64,
    max: u64,
) -> Result<T, SpecError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let s = raw.trim();
    let n = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>().ok()
    } else {
        None
    };
    n.filter(|n| (min..=max).contains(n))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| SpecError::Invalid {
            flag,
            value: shown(&raw),
            expected: format!("a whole number from {min} to {max}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::spec::{generate, usage};

    #[test]
    fn argument_parsing() {
        let cmd = parse_args([
            "--name",
            "demo",
            "--owner=1abc",
            "--image",
            "me/img:1",
            "--domain",
            "d.example.com",
            "--nodes",
            "7",
            "--instances=5",
            "--base-port",
            "9001",
        ])
        .unwrap();
        let SpecCommand::Generate(o) = cmd else {
            panic!("{cmd:?}")
        };
        assert_eq!(
            (o.name.as_str(), o.owner.as_str(), o.image.as_str()),
            ("demo", "1abc", "me/img:1")
        );
        assert_eq!((o.nodes, o.instances, o.base_port), (7, 5, 9001));
        assert_eq!(o.domain, "d.example.com");
        assert_eq!(o.expire, DEFAULT_EXPIRE_BLOCKS);
        let SpecCommand::Generate(o) =
            parse_args(["--name", "a", "--owner", "b", "--image", "c:1"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((o.nodes, o.instances, o.domain.as_str()), (3, 3, ""));
        assert_eq!(o.home_page, HomePage::Dashboard);
        let SpecCommand::Generate(o) = parse_args([
            "--name",
            "a",
            "--owner",
            "b",
            "--image",
            "c:1",
            "--home-page=Fade",
        ])
        .unwrap() else {
            panic!()
        };
        assert_eq!(o.home_page, HomePage::Fade);
        let env = &generate(&o).unwrap().compose[0].environment_parameters;
        assert!(
            env.contains(&"REPRAM_HOME_PAGE=fade".to_string()),
            "{env:?}"
        );
        assert_eq!(parse_args(["--help"]).unwrap(), SpecCommand::Help);
        assert_eq!(
            parse_args(["--nodes", "1", "-h"]).unwrap(),
            SpecCommand::Help
        );
        let err = |args: &[&str]| parse_args(args.iter().copied()).unwrap_err().to_string();
        assert_eq!(err(&[]), "missing --name, --owner, --image");
        assert_eq!(err(&["--name", "a", "--owner", "b"]), "missing --image");
        assert_eq!(err(&["--bogus"]), "unknown argument --bogus");
        assert_eq!(err(&["positional"]), "unknown argument positional");
        assert_eq!(err(&["--name"]), "--name needs a value");
        assert_eq!(err(&["--name", "a", "--name", "b"]), "--name given twice");
        let base = ["--name", "a", "--owner", "b", "--image", "c:1"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            parse_args(v).unwrap_err().to_string()
        };
        assert_eq!(
            with(&["--nodes", "abc"]),
            "--nodes abc: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--nodes", "-1"]),
            "--nodes -1: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--nodes", "99999999999999999999999"]),
            "--nodes 99999999999999999999999: expected a whole number from 1 to 50"
        );
        assert_eq!(
            with(&["--instances", "0"]),
            "--instances 0: expected a whole number from 1 to 100"
        );
        assert_eq!(
            with(&["--base-port", "70000"]),
            "--base-port 70000: expected a whole number from 1 to 65535"
        );
        assert_eq!(
            with(&["--home-page", "blog"]),
            "--home-page blog: expected dashboard or fade"
        );
        assert!(usage().contains("--instances"));
    }
}
