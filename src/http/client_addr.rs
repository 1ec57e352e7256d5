//! Who a public request counts against: the TCP peer, or, when that peer is one of
//! `REPRAM_TRUSTED_PROXIES`, the address the proxy appended to `X-Forwarded-For`.
//!
//! Anyone else's `X-Forwarded-For` is ignored: on Flux every node port is reachable
//! directly, so a header from a direct client is whatever it chose to write. Only a
//! real loopback peer without a believed forwarded address is a local tool (exempt from
//! the rate limit); a claimed loopback address is an address like any other.

use std::net::IpAddr;

use hyper::header::HeaderMap;

use crate::cidr::{self, Cidr};

/// The client a request comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// A program on this host talking to the node directly.
    Local,
    /// Anyone else, by address.
    Remote(IpAddr),
}

/// The client of a request from TCP peer `peer` with `headers`, believing
/// `X-Forwarded-For` only from `proxies`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, proxies: &[Cidr]) -> Client {
    let peer = peer.to_canonical();
    if !proxies.is_empty() && cidr::any_contains(proxies, peer) {
        if let Some(forwarded) = last_forwarded_for(headers) {
            return Client::Remote(forwarded);
        }
    }
    if peer.is_loopback() {
        Client::Local
    } else {
        Client::Remote(peer)
    }
}

/// The last entry of the last `X-Forwarded-For` line: the one a proxy appends (HAProxy's
/// `option forwardfor` and nginx's `$proxy_add_x_forwarded_for` add it to the last line,
/// or a line of their own). Everything before it came from the client. `None` when that
/// entry is not an address, so an earlier entry never wins.
fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let line = headers.get_all("x-forwarded-for").iter().next_back()?;
    // Split the bytes, not the text: bytes that are not text earlier on the line must not
    // make the whole line, and so an earlier line the client sent, count instead.
    let entry = line.as_bytes().rsplit(|b| *b == b',').next()?;
    let entry = std::str::from_utf8(entry).ok()?.trim();
    // `[2001:db8::1]` is how some proxies write an IPv6 address.
    let entry = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    entry.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    fn xff(lines: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in lines {
            h.append("x-forwarded-for", HeaderValue::from_bytes(line).unwrap());
        }
        h
    }

    #[test]
    fn a_direct_client_is_its_peer_address_whatever_it_claims() {
        let peer = ip("198.51.100.1");
        let proxies = nets(&["203.0.113.0/24"]);
        for claim in [
            &b"127.0.0.1"[..],
            b"::1",
            b"127.9.9.9",
            b"1.2.3.4",
            b"garbage",
        ] {
            let h = xff(&[claim]);
            assert_eq!(client_of(peer, &h, &proxies), Client::Remote(peer));
            assert_eq!(client_of(peer, &h, &[]), Client::Remote(peer));
        }
    }

    #[test]
    fn a_listed_proxy_is_believed_for_its_last_entry_only() {
        let proxy = ip("203.0.113.5");
        let proxies = nets(&["203.0.113.0/24"]);
        let h = xff(&[b"1.1.1.1, 198.51.100.9"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("198.51.100.9"))
        );
        // Bad last entry: the proxy itself, never an earlier entry.
        let h = xff(&[b"1.1.1.1, garbage"]);
        assert_eq!(client_of(proxy, &h, &proxies), Client::Remote(proxy));
        assert_eq!(
            client_of(proxy, &HeaderMap::new(), &proxies),
            Client::Remote(proxy)
        );
        let h = xff(&[b""]);
        assert_eq!(client_of(proxy, &h, &proxies), Client::Remote(proxy));
        // IPv6 entries, bracketed or not, and mapped ones.
        let h = xff(&[b"2001:db8::7"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("2001:db8::7"))
        );
        let h = xff(&[b"1.1.1.1,[2001:db8::8]"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("2001:db8::8"))
        );
        let h = xff(&[b"::ffff:198.51.100.4"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("198.51.100.4"))
        );
        // An address with a port is not an address.
        let h = xff(&[b"198.51.100.4:5000"]);
        assert_eq!(client_of(proxy, &h, &proxies), Client::Remote(proxy));
    }

    #[test]
    fn a_claimed_loopback_never_exempts_even_through_a_proxy() {
        let proxies = nets(&["127.0.0.1", "203.0.113.5"]);
        let h = xff(&[b"127.0.0.1"]);
        assert_eq!(
            client_of(ip("203.0.113.5"), &h, &proxies),
            Client::Remote(ip("127.0.0.1"))
        );
        // A local proxy forwarding a remote client: the client, not a local tool.
        let h = xff(&[b"198.51.100.3"]);
        assert_eq!(
            client_of(ip("127.0.0.1"), &h, &proxies),
            Client::Remote(ip("198.51.100.3"))
        );
        // Loopback peers without a believed header are local tools.
        assert_eq!(
            client_of(ip("127.0.0.1"), &HeaderMap::new(), &proxies),
            Client::Local
        );
        assert_eq!(client_of(ip("::1"), &h, &[]), Client::Local);
        assert_eq!(
            client_of(ip("::ffff:127.0.0.1"), &HeaderMap::new(), &[]),
            Client::Local
        );
    }

    #[test]
    fn v4_mapped_peers_match_v4_proxy_entries() {
        let proxies = nets(&["203.0.113.0/24"]);
        let h = xff(&[b"198.51.100.9"]);
        assert_eq!(
            client_of(ip("::ffff:203.0.113.5"), &h, &proxies),
            Client::Remote(ip("198.51.100.9"))
        );
        // And an unlisted mapped peer counts as its IPv4 address.
        assert_eq!(
            client_of(ip("::ffff:198.51.100.1"), &h, &proxies),
            Client::Remote(ip("198.51.100.1"))
        );
    }

    #[test]
    fn with_several_header_lines_the_last_line_decides() {
        let proxy = ip("203.0.113.5");
        let proxies = nets(&["203.0.113.5"]);
        // The client sends a line; the proxy adds a line of its own.
        let h = xff(&[b"127.0.0.1", b"198.51.100.9"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("198.51.100.9"))
        );
        // A line with a byte that is not text does not let an earlier line win.
        let h = xff(&[b"1.1.1.1", b"\xff, 198.51.100.9"]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("198.51.100.9"))
        );
        let h = xff(&[b"1.1.1.1", b"198.51.100.9\xff"]);
        assert_eq!(client_of(proxy, &h, &proxies), Client::Remote(proxy));
        // Surrounding spaces and empty entries.
        let h = xff(&[b"  ,  198.51.100.10  "]);
        assert_eq!(
            client_of(proxy, &h, &proxies),
            Client::Remote(ip("198.51.100.10"))
        );
        let h = xff(&[b"198.51.100.10,"]);
        assert_eq!(client_of(proxy, &h, &proxies), Client::Remote(proxy));
    }
}
