//! Address helpers shared by configuration and discovery.

use std::net::{IpAddr, SocketAddr};

/// The address of a location entry's `ip`: `1.2.3.4`, `1.2.3.4:16137`, `2001:db8::1` or
/// `[2001:db8::1]:16137` (the suffix is the Flux node's API port, not ours). `None` for
/// anything else, and for addresses no instance can have (unspecified, multicast,
/// broadcast).
pub fn parse_instance_ip(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    let ip = if let Ok(ip) = s.parse::<IpAddr>() {
        ip
    } else if let Ok(sa) = s.parse::<SocketAddr>() {
        sa.ip()
    } else {
        // `1.2.3.4:` or an odd port such as `1.2.3.4:99999`: keep the host part only if
        // it is an IPv4 address (a bare IPv6 address never reaches here).
        let (host, port) = s.rsplit_once(':')?;
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)?
    };
    let unusable = ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    (!unusable).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn instance_ip_forms() {
        assert_eq!(parse_instance_ip("1.2.3.4"), Some(ip("1.2.3.4")));
        assert_eq!(parse_instance_ip(" 1.2.3.4:16137 "), Some(ip("1.2.3.4")));
        assert_eq!(parse_instance_ip("1.2.3.4:99999"), Some(ip("1.2.3.4")));
        assert_eq!(parse_instance_ip("1.2.3.4:"), Some(ip("1.2.3.4")));
        assert_eq!(parse_instance_ip("2001:db8::1"), Some(ip("2001:db8::1")));
        assert_eq!(
            parse_instance_ip("[2001:db8::1]:16137"),
            Some(ip("2001:db8::1"))
        );
        for bad in [
            "",
            "x",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4:x",
            "host.example:16137",
            "[::1",
            "::",
            "0.0.0.0:16137",
            "ff02::1",
        ] {
            assert_eq!(parse_instance_ip(bad), None, "{bad}");
        }
    }
}
