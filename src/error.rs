//! The top-level error of [`crate::run`]; module errors live in their modules.

use crate::config::ConfigError;
use crate::net::ClaimError;

pub use crate::text::one_line;

/// Why the cluster could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid (exit status 2).
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// A port could not be claimed for a reason other than "in use".
    #[error("{0}")]
    Claim(#[from] ClaimError),
    /// Not a single node could claim a port.
    #[error("no node could start: {0}")]
    NoNodeStarted(String),
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn control_characters_are_escaped_and_long_values_cut() {
        assert_eq!(one_line("a\nb\u{1b}", 10), "a\\nb\\u{1b}");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("abc", 3), "abc");
    }
}
