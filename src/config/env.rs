//! Where the values come from: the process environment (or pairs standing in for it),
//! filtered to the names in the table, and the retired names that are an error.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::kinds::Kind;
use super::table::NAMES;

/// Variables no longer read: naming one, with any value, is an error that says what
/// replaced it.
const RETIRED: &[(&str, &str)] = &[(
    "REPRAM_TRUST_PROXY",
    // Even `false`: a deployment that still names it was written for the old rule
    // (believe everyone) and must be looked at.
    "list your reverse proxies' addresses in REPRAM_TRUSTED_PROXIES instead (IPs/CIDRs, \
     comma separated; see --help)",
)];

/// Our variables as given (the last of a repeated name wins).
pub(super) struct Vars(BTreeMap<&'static str, String>);

impl Vars {
    /// Keeps the pairs whose name is one of ours or a retired one; any retired one is an
    /// error.
    pub(super) fn new<I>(pairs: I) -> Result<Vars, ConfigError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let vars: BTreeMap<&'static str, String> = pairs
            .into_iter()
            .filter_map(|(k, v)| known_var(&k).map(|name| (name, v)))
            .collect();
        if let Some((var, instead)) = RETIRED.iter().find(|(r, _)| vars.contains_key(r)) {
            return Err(ConfigError::Retired { var, instead });
        }
        Ok(Vars(vars))
    }

    /// Reads the process environment. Variables other than ours are ignored (even if
    /// not UTF-8); one of ours that is not UTF-8 is an error.
    pub(super) fn from_env() -> Result<Vars, ConfigError> {
        let mut pairs = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Some(var) = key.to_str().and_then(known_var) else {
                continue;
            };
            let value = value
                .into_string()
                .map_err(|_| ConfigError::NotUnicode { var })?;
            pairs.push((var.to_string(), value));
        }
        Vars::new(pairs)
    }

    /// The trimmed value of `var`, or `None` when unset or blank.
    pub(super) fn text(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
    }

    /// The value of the first of `var` and its `fallbacks` that is set, parsed by
    /// `kind`; the kind's default when none is.
    pub(super) fn read<K: Kind>(
        &self,
        kind: &K,
        var: &'static str,
        fallbacks: &[&'static str],
    ) -> Result<K::Value, ConfigError> {
        for name in std::iter::once(var).chain(fallbacks.iter().copied()) {
            if let Some(text) = self.text(name) {
                return kind.parse(name, text);
            }
        }
        Ok(kind.default_value())
    }
}

/// The canonical name if `name` is one of our variables (exact case: `node_count` is
/// not `NODE_COUNT`).
fn known_var(name: &str) -> Option<&'static str> {
    NAMES
        .iter()
        .copied()
        .chain(RETIRED.iter().map(|(r, _)| *r))
        .find(|v| *v == name)
}
