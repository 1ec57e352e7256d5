//! Port claims: bind and listen with socket2 on the first free port of a range, and keep
//! that very socket as the node's listener (no window between "test" and "serve").
//!
//! `SO_REUSEADDR` is set on Unix so a restarted node can rebind past TIME_WAIT;
//! `SO_REUSEPORT` is never set, so two live listeners can never share a port. On Linux two
//! REUSEADDR sockets may both `bind()` one port, and the loser fails at `listen()`; so
//! `AddrInUse` at either step means "busy, try the next port".

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Pending-connection queue length of every node listener.
const BACKLOG: i32 = 1024;

/// Why no port could be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Every port that was tried is in use.
    #[error("no free port on {bind} in {first}..={last}: all {tried} tried are in use")]
    NoFreePort {
        /// Address the node tried to listen on.
        bind: IpAddr,
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
        /// How many ports were tried.
        tried: usize,
    },
    /// A port could not be bound for a reason other than "in use" (permissions, an
    /// address this host does not have, ...). Trying further ports would fail the same way.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address that failed.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Bind and listen on exactly `addr`, returning a non-blocking std listener ready for
/// `tokio::net::TcpListener::from_std`.
pub fn listen_on(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // `::` serves IPv4 clients too, where the OS allows it.
        let _ = socket.set_only_v6(false);
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(TcpListener::from(socket))
}

/// Claim the first free port of `ports` (tried in the given order) on `bind`.
///
/// Returns the listening socket and its port. Busy ports are skipped; any other error
/// stops the search.
pub fn claim_port(
    bind: IpAddr,
    ports: impl IntoIterator<Item = u16>,
) -> Result<(TcpListener, u16), ClaimError> {
    let mut tried = 0usize;
    let mut first = u16::MAX;
    let mut last = 0u16;
    for port in ports {
        tried += 1;
        first = first.min(port);
        last = last.max(port);
        let addr = SocketAddr::new(bind, port);
        match listen_on(addr) {
            Ok(listener) => {
                // Port 0 means "any": report the port the OS picked.
                let port = listener.local_addr().map(|a| a.port()).unwrap_or(port);
                return Ok((listener, port));
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
            Err(source) => return Err(ClaimError::Io { addr, source }),
        }
    }
    Err(ClaimError::NoFreePort {
        bind,
        first: first.min(last),
        last,
        tried,
    })
}

/// The order in which a node tries the ports of `first..=last`: its preferred port first,
/// then the following ones, wrapping around. Concurrent nodes with different preferences
/// rarely collide, and a collision only costs one extra bind.
pub fn port_order(first: u16, last: u16, preferred: u16) -> impl Iterator<Item = u16> {
    let len = u32::from(last.saturating_sub(first)) + 1;
    let start = u32::from(preferred.clamp(first, last) - first);
    (0..len).map(move |i| first + ((start + i) % len) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// `width` consecutive ports, held (bound and listening) until the test lets each
    /// go: picked at random below Linux's ephemeral range (32768 and up), so neither a
    /// client socket nor a test running alongside takes one meanwhile.
    fn held_block(width: u16) -> (u16, Vec<Option<std::net::TcpListener>>) {
        use rand::Rng;
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let base: u16 = rng.gen_range(20_000..32_768 - width);
            let held: Result<Vec<_>, _> = (base..base + width)
                .map(|p| listen_on(SocketAddr::new(LOCAL, p)).map(Some))
                .collect();
            if let Ok(held) = held {
                return (base, held);
            }
        }
        panic!("no free port block found")
    }

    #[test]
    fn port_order_starts_at_preference_and_wraps() {
        assert_eq!(
            port_order(10, 13, 12).collect::<Vec<_>>(),
            vec![12, 13, 10, 11]
        );
        assert_eq!(
            port_order(10, 13, 99).collect::<Vec<_>>(),
            vec![13, 10, 11, 12]
        );
        assert_eq!(port_order(5, 5, 5).collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn busy_ports_are_skipped() {
        let (base, mut held) = held_block(3);
        // `base` stays taken; the others are let go for the claim.
        held[1] = None;
        held[2] = None;
        let (_l, port) = claim_port(LOCAL, base..=base + 2).unwrap();
        assert_eq!(port, base + 1);
    }

    #[test]
    fn a_claimed_port_cannot_be_claimed_again() {
        let (base, mut held) = held_block(1);
        held[0] = None;
        let (_l, port) = claim_port(LOCAL, [base]).unwrap();
        assert_eq!(port, base);
        match claim_port(LOCAL, [base]) {
            Err(ClaimError::NoFreePort { tried: 1, .. }) => {}
            other => panic!("expected NoFreePort, got {other:?}"),
        }
    }

    #[test]
    fn a_full_range_names_the_range() {
        let (base, _held) = held_block(2);
        let err = claim_port(LOCAL, base..=base + 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no free port on 127.0.0.1 in {base}..={}: all 2 tried are in use",
                base + 1
            )
        );
    }

    #[test]
    fn an_address_this_host_lacks_is_a_hard_error() {
        // 192.0.2.1 (TEST-NET-1) is never assigned to this machine: bind fails with
        // EADDRNOTAVAIL before any packet could be sent.
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(matches!(
            claim_port(addr, [45_001, 45_002]),
            Err(ClaimError::Io { .. })
        ));
    }

    #[test]
    fn the_listener_is_non_blocking_and_accepts() {
        let (l, port) = claim_port(LOCAL, [0]).unwrap();
        assert_ne!(port, 0);
        assert!(matches!(l.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock));
        let _c = std::net::TcpStream::connect((LOCAL, port)).unwrap();
    }
}
