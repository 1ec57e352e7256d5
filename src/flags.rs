//! The walk over `--flag value` and `--flag=value` arguments: the one flag parser of the
//! command lines that take flags (`repram-flux flux-spec`, `repram-bench`). Which
//! subcommand runs is decided before, by [`crate::command`].

use std::ops::ControlFlow;

/// What the walk itself refuses; each command line turns it into its own error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `--flag` last, without the value it takes.
    #[error("{0} needs a value")]
    NoValue(String),
    /// `--switch=value` for a flag that takes none.
    #[error("{0} takes no value")]
    Unexpected(String),
}

impl From<FlagError> for String {
    fn from(e: FlagError) -> String {
        e.to_string()
    }
}

/// One flag of the walk: its name, and its value when the caller asks for one.
pub struct Flag<'a> {
    name: &'a str,
    inline: Option<String>,
    taken: bool,
    rest: &'a mut dyn Iterator<Item = String>,
}

impl Flag<'_> {
    /// The flag as given, without an `=value` part (so a mistyped flag's value, which
    /// may be a secret, is never in hand when the caller reports it unknown).
    pub fn name(&self) -> &str {
        self.name
    }

    /// The flag's value: after `=`, else the next argument.
    pub fn value(&mut self) -> Result<String, FlagError> {
        self.taken = true;
        match self.inline.take() {
            Some(v) => Ok(v),
            None => self
                .rest
                .next()
                .ok_or_else(|| FlagError::NoValue(self.name.to_string())),
        }
    }
}

/// Hands every flag of `args` to `each`, in order, until it breaks or errs. A flag given
/// as `--flag=value` whose value `each` did not take is an error.
pub fn walk<I, S, E>(
    args: I,
    mut each: impl FnMut(&mut Flag<'_>) -> Result<ControlFlow<()>, E>,
) -> Result<(), E>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
    E: From<FlagError>,
{
    let mut rest = args.into_iter().map(Into::into);
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg, None),
        };
        let mut flag = Flag {
            name: &name,
            inline,
            taken: false,
            rest: &mut rest,
        };
        if each(&mut flag)?.is_break() {
            break;
        }
        if flag.inline.is_some() && !flag.taken {
            return Err(FlagError::Unexpected(name).into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--a VALUE`, `--b` (a switch), `-h` (stops); anything else is unknown.
    fn parse(args: &[&str]) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        walk(args.iter().copied(), |flag| {
            match flag.name() {
                "-h" => return Ok(ControlFlow::Break(())),
                "--a" => {
                    let v = flag.value()?;
                    seen.push(format!("a={v}"));
                }
                "--b" => seen.push("b".into()),
                other => return Err(format!("unknown {other}")),
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(seen)
    }

    #[test]
    fn values_come_after_the_flag_or_after_an_equals_sign() {
        assert_eq!(
            parse(&["--a", "1", "--b", "--a=x=y", "--a", "--b"]),
            Ok(vec![
                "a=1".into(),
                "b".into(),
                "a=x=y".into(),
                "a=--b".into()
            ])
        );
        assert_eq!(parse(&["--a="]), Ok(vec!["a=".into()]));
    }

    #[test]
    fn a_missing_value_an_unwanted_value_and_an_unknown_flag_are_errors() {
        assert_eq!(parse(&["--b", "--a"]), Err("--a needs a value".into()));
        assert_eq!(parse(&["--b=yes"]), Err("--b takes no value".into()));
        assert_eq!(
            parse(&["--secret=hunter2"]),
            Err("unknown --secret".into()),
            "the value of an unknown flag is never handed over"
        );
        assert_eq!(parse(&["a=b"]), Err("unknown a=b".into()));
    }

    #[test]
    fn a_break_ends_the_walk_before_what_follows() {
        assert_eq!(
            parse(&["--b", "-h", "--bogus", "--a"]),
            Ok(vec!["b".into()])
        );
    }
}
