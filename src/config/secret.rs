//! [`Secret`]: the cluster secret, which no formatting ever shows.

use std::fmt;
use std::ops::Deref;

/// A secret string. `Debug` and `Display` print `<redacted>`; the text itself is only
/// reached on purpose, through [`Secret::expose`] or `Deref` (to hand it to the signer).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What `Debug`, `Display` and `/status` show instead of the secret.
    pub const REDACTED: &'static str = "<redacted>";

    /// The secret text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Secret::REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_secret() {
        let s = Secret::from("hunter2");
        for shown in [
            format!("{s}"),
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{:?}", Some(&s)),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        assert_eq!(s.expose(), "hunter2");
    }
}
