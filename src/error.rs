//! The top-level error of [`crate::run`]; module errors live in their modules.

use crate::config::ConfigError;
use crate::net::ClaimError;

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
