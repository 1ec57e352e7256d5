//! What can go wrong between a `flux-spec` command line and a valid spec.

/// Invalid generator input, or a generated spec that would not pass FluxOS. Renders as
/// one line naming the flag, the value and what is allowed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// A flag value is not acceptable.
    #[error("{flag} {value}: expected {expected}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The value given (shortened, control characters escaped).
        value: String,
        /// What the flag accepts.
        expected: String,
    },
    /// Required flags are missing.
    #[error("missing {0}")]
    Missing(String),
    /// A flag is not known.
    #[error("unknown argument {0}")]
    Unknown(String),
    /// A flag was given twice.
    #[error("{0} given twice")]
    Repeated(&'static str),
    /// A flag without its value, or a switch given one.
    #[error("{0}")]
    Flag(#[from] crate::flags::FlagError),
    /// Flags that do not go together.
    #[error("{0}")]
    Conflict(&'static str),
    /// The file to check cannot be read.
    #[error("cannot read {0}: {1}")]
    Unreadable(String, String),
    /// The generated spec breaks a FluxOS rule (a bug, or input beyond what one env
    /// string can hold).
    #[error("the generated spec is not valid: {0}")]
    Generated(String),
}
