//! Why the instance list could not be had.

use std::time::Duration;

/// Why the instance list could not be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FluxError {
    /// `FLUX_APP_NAME` is not set: not running on Flux.
    #[error("FLUX_APP_NAME is not set")]
    NotOnFlux,
    /// `REPRAM_FLUX_API` cannot be used as a base URL.
    #[error("REPRAM_FLUX_API={url}: {reason}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Connecting, TLS or HTTP failed.
    #[error("{url}: {reason}")]
    Unreachable {
        /// The location URL.
        url: String,
        /// The underlying error, on one line.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("{url}: no answer within {} ms", .timeout.as_millis())]
    Timeout {
        /// The location URL.
        url: String,
        /// The limit that passed.
        timeout: Duration,
    },
    /// The API answered with a non-200 status.
    #[error("{url}: HTTP status {status}")]
    Status {
        /// The location URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer is not the expected JSON.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The API answered `{"status":"error",...}`.
    #[error("Flux API error: {0}")]
    Api(String),
    /// The first request has not finished yet (only when the first wait timed out).
    #[error("first request still in flight")]
    Pending,
}
