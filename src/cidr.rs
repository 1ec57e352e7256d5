//! IP networks written as `198.51.100.0/24`, `2001:db8::/32` or a single address, for
//! lists such as `REPRAM_TRUSTED_PROXIES`.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:198.51.100.7`, what a dual-stack socket reports
//! for an IPv4 client) are the IPv4 address they carry, both in lists and in lookups.

use std::fmt;
use std::net::IpAddr;

/// One network: an address and how many leading bits of it count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits cleared, never IPv4-mapped.
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `addr` or `addr/prefix`; host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
    /// `None` for anything else, including a prefix longer than the address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, bits)) => {
                if bits.is_empty() || !bits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                (addr, Some(bits.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        let (ip, prefix) = match (ip, prefix) {
            // A mapped network given in IPv6 form: the same network in IPv4 form.
            (IpAddr::V6(v6), prefix) if v6.to_ipv4_mapped().is_some() => {
                let v4 = IpAddr::V4(v6.to_ipv4_mapped()?);
                match prefix {
                    None => (v4, None),
                    Some(p) if (96..=128).contains(&p) => (v4, Some(p - 96)),
                    // Wider than the mapped range: keep it as the IPv6 network it is.
                    Some(p) => (ip, Some(p)),
                }
            }
            other => other,
        };
        let width = max_prefix(ip);
        let prefix = prefix.unwrap_or(width);
        if prefix > width {
            return None;
        }
        Some(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    /// True when `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.net
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix == max_prefix(self.net) {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `ip` with all but the first `prefix` bits cleared (`prefix` at most the width).
fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & keep).into())
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & keep).into())
        }
    }
}

/// True when `ip` is inside any of `list`.
pub fn any_contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|net| net.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Cidr {
        Cidr::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn v4_networks_and_single_addresses() {
        let n = net("198.51.100.0/24");
        assert!(n.contains(ip("198.51.100.0")));
        assert!(n.contains(ip("198.51.100.255")));
        assert!(!n.contains(ip("198.51.101.0")));
        assert!(!n.contains(ip("2001:db8::1")));
        let one = net("203.0.113.7");
        assert!(one.contains(ip("203.0.113.7")));
        assert!(!one.contains(ip("203.0.113.8")));
        assert_eq!(one.to_string(), "203.0.113.7");
        // Host bits are cleared.
        assert_eq!(net("10.1.2.3/8").to_string(), "10.0.0.0/8");
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!net("0.0.0.0/0").contains(ip("::1")));
        // Prefixes of every width, odd ones included.
        assert!(net("198.51.100.64/26").contains(ip("198.51.100.127")));
        assert!(!net("198.51.100.64/26").contains(ip("198.51.100.128")));
        assert!(net("198.51.100.9/31").contains(ip("198.51.100.8")));
    }

    #[test]
    fn v6_networks() {
        let n = net("2001:db8::/32");
        assert!(n.contains(ip("2001:db8:ffff::1")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(!n.contains(ip("198.51.100.1")));
        assert!(net("::1").contains(ip("::1")));
        assert!(net("::/0").contains(ip("2001:db8::1")));
        assert!(net("2001:db8::1/127").contains(ip("2001:db8::")));
    }

    #[test]
    fn v4_mapped_v6_is_the_v4_address() {
        // A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d.
        assert!(net("198.51.100.0/24").contains(ip("::ffff:198.51.100.9")));
        // A mapped entry is the IPv4 network it carries.
        assert!(net("::ffff:198.51.100.0/120").contains(ip("198.51.100.9")));
        assert!(net("::ffff:198.51.100.7").contains(ip("198.51.100.7")));
        assert_eq!(
            net("::ffff:198.51.100.0/120").to_string(),
            "198.51.100.0/24"
        );
        assert!(!net("::ffff:198.51.100.0/120").contains(ip("198.51.101.9")));
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in [
            "",
            "/",
            "/24",
            "198.51.100.0/",
            "198.51.100.0/33",
            "198.51.100.0/-1",
            "198.51.100.0/+8",
            "198.51.100.0/24/1",
            "2001:db8::/129",
            "198.51.100",
            "198.51.100.256",
            "example.com",
            "198.51.100.0/ 24",
            " 198.51.100.0",
            "[::1]",
            "198.51.100.0/999999999999",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn any_of_a_list() {
        let list = [net("10.0.0.0/8"), net("2001:db8::/32")];
        assert!(any_contains(&list, ip("10.9.9.9")));
        assert!(any_contains(&list, ip("2001:db8::5")));
        assert!(!any_contains(&list, ip("11.0.0.1")));
        assert!(!any_contains(&[], ip("10.0.0.1")));
    }
}
