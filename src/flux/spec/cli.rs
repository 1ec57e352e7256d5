//! The `repram-flux flux-spec` command line.

use super::error::SpecError;
use super::generate::SpecOptions;
use super::model::*;
use super::names::shown;

/// What `repram-flux flux-spec …` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecCommand {
    /// `-h` / `--help`.
    Help,
    /// Print a spec.
    Generate(SpecOptions),
}

/// Usage of `repram-flux flux-spec`.
pub fn usage() -> String {
    format!(
        "usage: repram-flux flux-spec --name NAME --owner ZELID --image REPO:TAG [options]\n\
         \n\
         Prints a Flux app specification (version 8) that runs repram-flux: NODES nodes per\n\
         instance in components of at most {PORTS_PER_COMPONENT} nodes, each component with its own\n\
         {PORTS_PER_COMPONENT}-port range from BASE_PORT. Instances find each other through the Flux\n\
         location API.\n\
         \n\
         \x20 --name NAME         Flux app name: letters, digits, inner hyphens, at most 63\n\
         \x20 --owner ZELID       the owner's Flux ID (ZelID)\n\
         \x20 --image REPO:TAG    image with an explicit tag, e.g. repram/repram-flux:0.1.0\n\
         \x20 --domain DOMAIN     custom domain routed to the first port (default: none)\n\
         \x20 --nodes N           nodes per instance, 1 to {MAX_NODES} (default 3)\n\
         \x20 --instances M       instances, 1 to {MAX_INSTANCES} (default 3)\n\
         \x20 --base-port PORT    first port (default 8081)\n\
         \x20 --description TEXT  app description (at most 256 characters)\n\
         \x20 --expire BLOCKS     subscription in blocks, 1 to {MAX_EXPIRE_BLOCKS} (default {DEFAULT_EXPIRE_BLOCKS}, about a month)\n\
         \x20 -h, --help          print this help\n"
    )
}

/// Parses the arguments after `flux-spec` (`--flag value` or `--flag=value`).
pub fn parse_args<I, S>(args: I) -> Result<SpecCommand, SpecError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    const FLAGS: [&str; 9] = [
        "--name",
        "--owner",
        "--image",
        "--domain",
        "--nodes",
        "--instances",
        "--base-port",
        "--description",
        "--expire",
    ];
    let mut values: [Option<String>; 9] = Default::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(SpecCommand::Help);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let Some(i) = FLAGS.iter().position(|f| *f == flag) else {
            return Err(SpecError::Unknown(shown(&arg)));
        };
        let value = match inline {
            Some(v) => v,
            None => args.next().ok_or(SpecError::NoValue(FLAGS[i]))?,
        };
        if values[i].replace(value).is_some() {
            return Err(SpecError::Repeated(FLAGS[i]));
        }
    }
    let [name, owner, image, domain, nodes, instances, base_port, description, expire] = values;
    let missing: Vec<&str> = [(&name, "--name"), (&owner, "--owner"), (&image, "--image")]
        .iter()
        .filter(|(v, _)| v.is_none())
        .map(|(_, f)| *f)
        .collect();
    if !missing.is_empty() {
        return Err(SpecError::Missing(missing.join(", ")));
    }
    let defaults = SpecOptions::fade();
    Ok(SpecCommand::Generate(SpecOptions {
        name: name.unwrap_or_default(),
        owner: owner.unwrap_or_default(),
        image: image.unwrap_or_default(),
        domain: domain.unwrap_or_default(),
        nodes: number("--nodes", nodes, 3, 1, u64::from(MAX_NODES))?,
        instances: number("--instances", instances, 3, 1, u64::from(MAX_INSTANCES))?,
        base_port: number("--base-port", base_port, defaults.base_port, 1, 65535)?,
        description: description.unwrap_or(defaults.description),
        expire: number("--expire", expire, defaults.expire, 1, MAX_EXPIRE_BLOCKS)?,
    }))
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
        assert!(usage().contains("--instances"));
    }
}
