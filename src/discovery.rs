//! Where a node looks for peers: every address `DISCOVERY_DOMAIN` resolves to × the port
//! range, on Flux every other instance's IP (from the Flux location API, see
//! [`crate::flux::location`], cached in the process's [`LocationCache`]) × the port range,
//! plus the `DISCOVERY_PEERS` seeds.
//! (Membership gossip adds the addresses other nodes report; see `membership/`.)

use std::net::IpAddr;

use tracing::{debug, warn};

use crate::cluster_hosts::{ClusterHosts, Source};
use crate::config::Config;
use crate::flux::location::LocationCache;
use crate::membership::fmt_addr;

/// Discovery addresses (`host:port`) for the node serving on `own_port`: the domain
/// scan, then the Flux instances (when `FLUX_APP_NAME` is set), then the seeds. Records
/// the addresses found in `hosts` (the cluster hosts that may call node routes); a source
/// that cannot be resolved this round keeps its last addresses there.
///
/// Never waits long: the Flux list is cached and refreshed in the background (only the
/// very first call waits for the first answer), and an API failure only drops the Flux
/// part of the list.
///
/// The node's own port is skipped on addresses that are certainly this host (loopback,
/// unspecified, `BIND_ADDR`); on other addresses it is probed like any other, and an
/// answer with the node's own id marks it as "self".
pub async fn targets(
    config: &Config,
    own_port: u16,
    hosts: &ClusterHosts,
    locations: &LocationCache,
) -> Vec<String> {
    let domain = config.discovery_domain.as_str();
    let mut addrs = match tokio::net::lookup_host((domain, 0)).await {
        Ok(found) => {
            let mut ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            hosts.set(Source::Domain, ips.iter().copied());
            scan_addresses(&ips, config, own_port)
        }
        Err(e) => {
            warn!(domain = %domain, error = %e, "cannot resolve DISCOVERY_DOMAIN");
            Vec::new()
        }
    };
    if let Some(app) = config.flux_app_name.as_deref() {
        match crate::flux::instance_ips(config, locations).await {
            Ok(ips) => {
                // Our own IP (left out of the scan) is in `hosts` already.
                hosts.set(Source::Flux, ips.iter().copied());
                addrs.extend(scan_addresses(&ips, config, own_port));
            }
            // The location client already warned when the request failed.
            Err(e) => debug!(app = %app, error = %e, "no Flux instances this round"),
        }
    }
    for seed in &config.discovery_peers {
        if !addrs.contains(seed) {
            addrs.push(seed.clone());
        }
    }
    resolve_seeds(config, hosts).await;
    if let Some(name) = config.advertise_host.as_deref() {
        if crate::cluster_hosts::host_ip(name).is_none() {
            if let Ok(found) = tokio::net::lookup_host((name, 0)).await {
                hosts.set(Source::Advertised, found.map(|a| a.ip()));
            }
        }
    }
    addrs
}

/// Record the addresses of the `DISCOVERY_PEERS` hosts in `hosts`. A seed that does not
/// resolve this time keeps the addresses it had.
async fn resolve_seeds(config: &Config, hosts: &ClusterHosts) {
    if config.discovery_peers.is_empty() {
        return;
    }
    let mut ips = Vec::new();
    let mut failed = false;
    for seed in &config.discovery_peers {
        match tokio::net::lookup_host(seed.as_str()).await {
            Ok(found) => ips.extend(found.map(|a| a.ip())),
            Err(e) => {
                failed = true;
                debug!(seed = %seed, error = %e, "cannot resolve a DISCOVERY_PEERS host");
            }
        }
    }
    if failed {
        ips.extend(hosts.of(Source::Seeds));
    }
    hosts.set(Source::Seeds, ips);
}

/// Every `ip:port` of the range for each of `ips`, minus this node's own address.
pub fn scan_addresses(ips: &[IpAddr], config: &Config, own_port: u16) -> Vec<String> {
    let mut addrs = Vec::with_capacity(ips.len() * usize::from(config.max_ports));
    for ip in ips {
        let local = ip.is_loopback() || ip.is_unspecified() || *ip == config.bind_addr;
        for port in config.port_range() {
            if !(local && port == own_port) {
                addrs.push(fmt_addr(&ip.to_string(), port));
            }
        }
    }
    addrs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            base_port: 9000,
            max_ports: 3,
            ..Config::for_test()
        }
    }

    #[test]
    fn every_address_times_every_port_except_our_own_local_one() {
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.0.0.7".parse().unwrap()];
        assert_eq!(
            scan_addresses(&ips, &config(), 9001),
            vec![
                "127.0.0.1:9000",
                "127.0.0.1:9002",
                "10.0.0.7:9000",
                "10.0.0.7:9001",
                "10.0.0.7:9002"
            ]
        );
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let ips: Vec<IpAddr> = vec!["::1".parse().unwrap()];
        assert_eq!(
            scan_addresses(&ips, &config(), 9000),
            vec!["[::1]:9001", "[::1]:9002"]
        );
    }

    #[tokio::test]
    async fn flux_instances_are_scanned_between_domain_and_seeds() {
        let locations = LocationCache::new();
        use crate::flux::location::fake;
        let api = fake::start(fake::list(&[
            "10.7.0.2:16137",
            "10.7.0.1:16137",
            "10.7.0.3",
        ]))
        .await;
        let c = Config {
            flux_app_name: Some("repram".into()),
            flux_api: api.url.clone(),
            flux_node_host_ip: Some("10.7.0.1".into()),
            discovery_peers: vec!["10.9.9.9:7000".into(), "127.0.0.1:9002".into()],
            ..config()
        };
        let hosts = ClusterHosts::new(&c);
        assert_eq!(
            targets(&c, 9000, &hosts, &locations).await,
            vec![
                "127.0.0.1:9001",
                "127.0.0.1:9002",
                "10.7.0.2:9000",
                "10.7.0.2:9001",
                "10.7.0.2:9002",
                "10.7.0.3:9000",
                "10.7.0.3:9001",
                "10.7.0.3:9002",
                "10.9.9.9:7000",
            ]
        );
        // Every source is a cluster host now: the instances (our own IP included), the
        // seeds' hosts, the domain.
        for ip in ["10.7.0.1", "10.7.0.2", "10.7.0.3", "10.9.9.9", "127.0.0.1"] {
            assert!(hosts.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(!hosts.allows("10.7.0.4".parse().unwrap()));
        assert_eq!(
            api.paths.lock().unwrap()[0],
            "GET /apps/location/repram HTTP/1.1"
        );
        // Several nodes of one process share one cached answer.
        let _ = targets(&c, 9001, &ClusterHosts::new(&c), &locations).await;
        let _ = targets(&c, 9002, &ClusterHosts::new(&c), &locations).await;
        assert_eq!(api.count(), 1);
    }

    #[tokio::test]
    async fn a_broken_flux_api_leaves_the_other_sources() {
        let locations = LocationCache::new();
        use crate::flux::location::fake;
        let api = fake::start(fake::Reply::Http(
            200,
            "{\"status\":\"error\",\"data\":{\"message\":\"down\"}}".into(),
        ))
        .await;
        let c = Config {
            flux_app_name: Some("repram".into()),
            flux_api: api.url.clone(),
            discovery_peers: vec!["10.9.9.9:7000".into()],
            ..config()
        };
        assert_eq!(
            targets(&c, 9000, &ClusterHosts::new(&c), &locations).await,
            vec!["127.0.0.1:9001", "127.0.0.1:9002", "10.9.9.9:7000"]
        );
        let down = Config {
            flux_api: "http://127.0.0.1:1".into(),
            ..c
        };
        assert_eq!(
            targets(&down, 9000, &ClusterHosts::new(&down), &locations).await,
            vec!["127.0.0.1:9001", "127.0.0.1:9002", "10.9.9.9:7000"]
        );
    }

    #[tokio::test]
    async fn seeds_follow_the_scan() {
        let locations = LocationCache::new();
        // An IP literal resolves without any DNS query.
        let c = Config {
            discovery_peers: vec!["10.9.9.9:7000".into()],
            ..config()
        };
        assert_eq!(
            targets(&c, 9000, &ClusterHosts::new(&c), &locations).await,
            vec!["127.0.0.1:9001", "127.0.0.1:9002", "10.9.9.9:7000"]
        );
    }
}
