//! What FluxOS told this container, said once when the process starts.
//!
//! FluxOS injects `FLUX_APP_NAME` and `FLUX_NODE_HOST_IP` into every app container from
//! release 8.11.1 on, appended after the spec's own environment so they win
//! (`dockerService.js` `appDockerCreate`). Without `FLUX_APP_NAME` the location API is
//! never asked: on an older FluxOS every instance then forms a cluster of its own.

use crate::config::Config;

/// The startup note for `config`: its level (`true` = warning) and its text.
pub fn note(config: &Config) -> (bool, String) {
    match (&config.flux_app_name, &config.flux_node_host_ip) {
        (Some(app), Some(ip)) => (
            false,
            format!(
                "on Flux as app {app} on {ip}: other instances are found through the Flux \
                 location API"
            ),
        ),
        (Some(app), None) => (
            true,
            format!(
                "on Flux as app {app}, but FLUX_NODE_HOST_IP is not set (FluxOS could not tell \
                 its own address): nodes advertise the address peers reach them at and \
                 probe this instance's public IP like any other"
            ),
        ),
        (None, _) => (
            false,
            "FLUX_APP_NAME is not set: the Flux location API is not asked, peers come only \
             from DISCOVERY_DOMAIN, DISCOVERY_PEERS and gossip. On Flux, FluxOS sets it from \
             8.11.1 on; on an older FluxOS each instance forms a cluster of its own unless \
             the spec sets FLUX_APP_NAME=<app name> or DISCOVERY_PEERS"
                .to_string(),
        ),
    }
}

/// Logs [`note`] (once per process: [`crate::run`] calls it before starting the nodes).
pub fn log_note(config: &Config) {
    match note(config) {
        (true, text) => tracing::warn!("{text}"),
        (false, text) => tracing::info!("{text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_cases() {
        let mut c = Config::default();
        let (warn, text) = note(&c);
        assert!(!warn);
        assert!(text.starts_with("FLUX_APP_NAME is not set"), "{text}");
        assert!(text.contains("8.11.1"));
        c.flux_app_name = Some("kv".into());
        let (warn, text) = note(&c);
        assert!(
            warn && text.contains("FLUX_NODE_HOST_IP is not set"),
            "{text}"
        );
        c.flux_node_host_ip = Some("203.0.113.7".into());
        let (warn, text) = note(&c);
        assert!(!warn);
        assert_eq!(
            text,
            "on Flux as app kv on 203.0.113.7: other instances are found through the Flux \
             location API"
        );
    }
}
