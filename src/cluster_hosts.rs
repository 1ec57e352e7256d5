//! The cluster hosts: the addresses that may call a node's `/internal/` routes when no
//! `REPRAM_CLUSTER_SECRET` is set (see `http::gate`).
//!
//! Loopback, this host's own addresses (a specific `BIND_ADDR`, `ADVERTISE_HOST`,
//! `FLUX_NODE_HOST_IP`), every address `DISCOVERY_DOMAIN` resolves to, the hosts of
//! `DISCOVERY_PEERS` and the Flux instance IPs of `FLUX_APP_NAME`. One set per process,
//! shared by its nodes and kept current by their discovery rounds: a source is replaced
//! when it resolves again, and kept as it was when it cannot be resolved this time.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::RwLock;

use tracing::info;

use crate::config::Config;

/// Where an address came from; each source is replaced on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// `DISCOVERY_DOMAIN`'s addresses.
    Domain,
    /// The hosts of `DISCOVERY_PEERS`, resolved.
    Seeds,
    /// The Flux location list of `FLUX_APP_NAME`.
    Flux,
    /// `ADVERTISE_HOST` when it is a name, resolved.
    Advertised,
}

const SOURCES: usize = 4;

impl Source {
    fn index(self) -> usize {
        match self {
            Source::Domain => 0,
            Source::Seeds => 1,
            Source::Flux => 2,
            Source::Advertised => 3,
        }
    }
}

#[derive(Default)]
struct Sets {
    by_source: [Vec<IpAddr>; SOURCES],
    /// Union of `fixed` and every source, for the lookup on each request.
    all: HashSet<IpAddr>,
}

/// The addresses of cluster hosts; see the module docs.
pub struct ClusterHosts {
    /// This host's own addresses known from the configuration.
    fixed: Vec<IpAddr>,
    sets: RwLock<Sets>,
}

/// `ip` as an IPv4 address when it is an IPv4-mapped IPv6 one (`::ffff:1.2.3.4`, as a
/// socket bound to `::` sees IPv4 peers), else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// The address in `host` (`1.2.3.4`, `::1`, `[::1]`), if it is one.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok().map(canonical)
}

impl ClusterHosts {
    /// The set for `config`: its own addresses now, the resolved sources once the first
    /// discovery round has run.
    pub fn new(config: &Config) -> ClusterHosts {
        let mut fixed = Vec::new();
        if !config.bind_addr.is_unspecified() {
            fixed.push(canonical(config.bind_addr));
        }
        let own = [
            config.advertise_host.as_deref(),
            config.flux_node_host_ip.as_deref(),
        ];
        for host in own.into_iter().flatten() {
            let ip = host_ip(host).or_else(|| crate::flux::location::parse_instance_ip(host));
            if let Some(ip) = ip {
                fixed.push(canonical(ip));
            }
        }
        fixed.sort();
        fixed.dedup();
        let all = fixed.iter().copied().collect();
        ClusterHosts {
            fixed,
            sets: RwLock::new(Sets {
                all,
                ..Sets::default()
            }),
        }
    }

    /// Replace the addresses of `source` with `ips`.
    pub fn set(&self, source: Source, ips: impl IntoIterator<Item = IpAddr>) {
        let mut ips: Vec<IpAddr> = ips.into_iter().map(canonical).collect();
        ips.sort();
        ips.dedup();
        let mut sets = self.sets.write().unwrap_or_else(|e| e.into_inner());
        let slot = &mut sets.by_source[source.index()];
        if *slot == ips {
            return;
        }
        info!(source = ?source, hosts = ?ips, "cluster hosts (may call the node routes without a secret)");
        *slot = ips;
        let all = self
            .fixed
            .iter()
            .chain(sets.by_source.iter().flatten())
            .copied()
            .collect();
        sets.all = all;
    }

    /// The addresses `source` holds now.
    pub fn of(&self, source: Source) -> Vec<IpAddr> {
        let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
        sets.by_source[source.index()].clone()
    }

    /// True when a request from `ip` comes from a cluster host.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip.is_loopback() {
            return true;
        }
        let sets = self.sets.read().unwrap_or_else(|e| e.into_inner());
        sets.all.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_always_a_cluster_host_in_either_family() {
        let hosts = ClusterHosts::new(&Config::for_test());
        for a in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert!(hosts.allows(ip(a)), "{a}");
        }
        assert!(!hosts.allows(ip("198.51.100.2")));
        assert!(!hosts.allows(ip("::ffff:198.51.100.2")));
    }

    #[test]
    fn own_addresses_come_from_the_configuration() {
        let config = Config {
            bind_addr: ip("10.0.0.5"),
            advertise_host: Some("203.0.113.9".into()),
            flux_node_host_ip: Some("203.0.113.10:16137".into()),
            ..Config::for_test()
        };
        let hosts = ClusterHosts::new(&config);
        for a in ["10.0.0.5", "203.0.113.9", "::ffff:203.0.113.10"] {
            assert!(hosts.allows(ip(a)), "{a}");
        }
        assert!(!hosts.allows(ip("203.0.113.11")));
        let bracketed = Config {
            advertise_host: Some("[2001:db8::7]".into()),
            ..Config::for_test()
        };
        assert!(ClusterHosts::new(&bracketed).allows(ip("2001:db8::7")));
    }

    #[test]
    fn each_source_is_replaced_on_its_own() {
        let hosts = ClusterHosts::new(&Config::for_test());
        hosts.set(Source::Domain, [ip("10.1.0.1"), ip("::ffff:10.1.0.2")]);
        hosts.set(Source::Flux, [ip("203.0.113.1")]);
        assert!(hosts.allows(ip("10.1.0.2")));
        assert!(hosts.allows(ip("::ffff:10.1.0.1")));
        assert!(hosts.allows(ip("203.0.113.1")));
        hosts.set(Source::Domain, [ip("10.1.0.3")]);
        assert!(!hosts.allows(ip("10.1.0.1")));
        assert!(hosts.allows(ip("10.1.0.3")));
        assert!(hosts.allows(ip("203.0.113.1")), "the Flux list stays");
        assert_eq!(hosts.of(Source::Domain), vec![ip("10.1.0.3")]);
        hosts.set(Source::Flux, []);
        assert!(!hosts.allows(ip("203.0.113.1")));
    }

    #[test]
    fn host_ips_parse_with_or_without_brackets() {
        assert_eq!(host_ip("[::1]"), Some(ip("::1")));
        assert_eq!(host_ip(" 10.0.0.1 "), Some(ip("10.0.0.1")));
        assert_eq!(host_ip("::ffff:10.0.0.1"), Some(ip("10.0.0.1")));
        assert_eq!(host_ip("example.org"), None);
    }
}
