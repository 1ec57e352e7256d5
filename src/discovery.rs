//! Where a node looks for peers: every address `DISCOVERY_DOMAIN` resolves to × the port
//! range, plus the `DISCOVERY_PEERS` seeds. (Membership gossip adds the addresses other
//! nodes report; see `membership.rs`.)

use std::net::IpAddr;

use tracing::warn;

use crate::config::Config;
use crate::membership::fmt_addr;

/// Discovery addresses (`host:port`) for the node serving on `own_port`.
///
/// The node's own port is skipped on addresses that are certainly this host (loopback,
/// unspecified, `BIND_ADDR`); on other addresses it is probed like any other, and an
/// answer with the node's own id marks it as "self".
pub async fn targets(config: &Config, own_port: u16) -> Vec<String> {
    let domain = config.discovery_domain.as_str();
    let mut addrs = match tokio::net::lookup_host((domain, 0)).await {
        Ok(found) => {
            let mut ips: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            scan_addresses(&ips, config, own_port)
        }
        Err(e) => {
            warn!(domain = %domain, error = %e, "cannot resolve DISCOVERY_DOMAIN");
            Vec::new()
        }
    };
    addrs.extend(config.discovery_peers.iter().cloned());
    addrs
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
    async fn seeds_follow_the_scan() {
        // An IP literal resolves without any DNS query.
        let c = Config {
            discovery_peers: vec!["10.9.9.9:7000".into()],
            ..config()
        };
        assert_eq!(
            targets(&c, 9000).await,
            vec!["127.0.0.1:9001", "127.0.0.1:9002", "10.9.9.9:7000"]
        );
    }
}
