//! Flux instance discovery: the IPs of every instance of this app, from the Flux location
//! API (`GET {REPRAM_FLUX_API}/apps/location/{FLUX_APP_NAME}`).
//!
//! The list only *seeds* discovery: it lags (an instance that shut down cleanly stays
//! listed about 7 minutes, one that crashed about 125; a new one appears once it
//! broadcasts), so liveness always comes from probing. A failing
//! or malformed API is a warning, never an error: the other discovery sources carry on.
//!
//! One process runs several nodes, so answers are cached per (API, app) in one
//! [`LocationCache`], which the process's nodes share (see `ProcessWide`): at most one
//! request is in flight, a fresh answer is reused for
//! [`LocationTiming::refresh_every`], failures are retried with doubling backoff, and a
//! caller never waits for the network except on the very first call (the node's first
//! discovery round), so a slow API cannot stall membership probing.

use std::net::IpAddr;

use crate::config::Config;

mod cache;
mod client;
mod error;
#[cfg(test)]
pub(crate) mod fake;
mod parse;
#[cfg(test)]
mod tests;
mod url;

pub use cache::{backoff_after, LocationCache, LocationTiming};
pub use client::LocationClient;
pub use error::FluxError;
pub use parse::{parse_instance_ip, parse_location_body, without_own_ip, LocationList};
pub use url::LocationUrl;

/// The other instances of this Flux app: the location list (cached, see
/// [`LocationCache`]) minus `FLUX_NODE_HOST_IP`. [`FluxError::NotOnFlux`] when
/// `FLUX_APP_NAME` is not set.
pub async fn instance_ips(
    config: &Config,
    cache: &LocationCache,
) -> Result<Vec<IpAddr>, FluxError> {
    let app = config
        .flux_app_name
        .as_deref()
        .ok_or(FluxError::NotOnFlux)?;
    let ips = cache
        .get(&config.flux_api, app, &LocationTiming::default())
        .await?;
    Ok(without_own_ip(&ips, config.flux_node_host_ip.as_deref()))
}
