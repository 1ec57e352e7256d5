//! `repram-flux healthcheck`: the container's Docker `HEALTHCHECK`, without curl.
//!
//! Asks `GET /health` on every port of the range (a node may have claimed any of them)
//! over plain `std` sockets, and reports healthy when `NODE_COUNT` nodes answer
//! `200 {"status":"healthy",…}`. Only the nodes of one process count (the process tag
//! in their node ids): other processes sharing the range (another instance on the same
//! host) are not this container's nodes. Flux itself ignores Docker health; Docker and
//! compose use it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::Config;

/// Outcome of one health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// Ports whose node answered healthy.
    pub healthy_ports: Vec<u16>,
    /// Nodes expected (`NODE_COUNT`).
    pub expected: u16,
}

impl HealthReport {
    /// True when every expected node answered healthy.
    pub fn ok(&self) -> bool {
        self.healthy_ports.len() >= usize::from(self.expected)
    }

    /// One line for the health log.
    pub fn summary(&self) -> String {
        let ports: Vec<String> = self.healthy_ports.iter().map(u16::to_string).collect();
        format!(
            "{} {} of {} nodes healthy (ports: {})",
            if self.ok() { "healthy:" } else { "unhealthy:" },
            self.healthy_ports.len(),
            self.expected,
            if ports.is_empty() {
                "none".to_string()
            } else {
                ports.join(", ")
            }
        )
    }
}

/// The address a local client uses to reach nodes bound to `bind`.
pub fn local_addr(bind: IpAddr) -> IpAddr {
    match bind {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Checks every port of the range, each within `per_port` (the whole check stays
/// bounded: the range holds at most a few ports in practice, and refused ports answer
/// at once).
pub fn check(config: &Config, per_port: Duration) -> HealthReport {
    let host = local_addr(config.bind_addr);
    let healthy = config
        .port_range()
        .filter_map(|port| Some((port, healthy_node(SocketAddr::new(host, port), per_port)?)))
        .collect();
    HealthReport {
        healthy_ports: one_process(healthy),
        expected: config.node_count,
    }
}

/// The ports of the process with the most healthy nodes among `(port, node id)` (on a
/// tie, the one holding the lowest port): the process this check stands for.
pub fn one_process(mut healthy: Vec<(u16, String)>) -> Vec<u16> {
    healthy.sort();
    let mut best: Vec<u16> = Vec::new();
    for (_, id) in &healthy {
        let domain = crate::ids::failure_domain(id);
        let ports: Vec<u16> = healthy
            .iter()
            .filter(|(_, other)| crate::ids::failure_domain(other) == domain)
            .map(|(p, _)| *p)
            .collect();
        if ports.len() > best.len() {
            best = ports;
        }
    }
    best
}

/// True when `GET /health` at `addr` answers 200 with `"status":"healthy"`.
pub fn node_healthy(addr: SocketAddr, timeout: Duration) -> bool {
    healthy_node(addr, timeout).is_some()
}

/// The node id of the node at `addr` when it answers `GET /health` healthy.
fn healthy_node(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return None;
    };
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    if stream.set_write_timeout(Some(remaining())).is_err() {
        return None;
    }
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: repram-flux-healthcheck\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return None;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        if Instant::now() >= deadline || stream.set_read_timeout(Some(remaining())).is_err() {
            return None;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.len() > 64 * 1024 {
                    return None;
                }
            }
            Err(_) => break,
        }
    }
    if !is_healthy_reply(&reply) {
        return None;
    }
    let text = String::from_utf8_lossy(&reply);
    let id = text.split_once("\"node_id\":\"")?.1.split('"').next()?;
    Some(id.to_string())
}

/// True for an HTTP 200 answer whose body says `"status":"healthy"`.
pub fn is_healthy_reply(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let mut status_line = text.lines().next().unwrap_or("").split_whitespace();
    let ok = matches!(
        (status_line.next(), status_line.next()),
        (Some(v), Some("200")) if v.starts_with("HTTP/1.")
    );
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    ok && body.contains("\"status\":\"healthy\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_parsing() {
        assert!(is_healthy_reply(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{\"status\":\"healthy\",\"port\":8081}"
        ));
        assert!(!is_healthy_reply(
            b"HTTP/1.1 503 Service Unavailable\r\n\r\n{\"status\":\"stopping\"}"
        ));
        assert!(!is_healthy_reply(
            b"HTTP/1.1 200 OK\r\n\r\n{\"status\":\"stopping\"}"
        ));
        assert!(!is_healthy_reply(b""));
        assert!(!is_healthy_reply(b"\xff\xfe garbage"));
        assert!(!is_healthy_reply(b"SSH-2.0-OpenSSH\r\n"));
    }

    #[test]
    fn only_the_nodes_of_one_process_count() {
        let healthy = vec![
            (8084, "flux-node-1-bbbbbb".to_string()),
            (8081, "flux-node-1-aaaaaa".to_string()),
            (8082, "flux-node-2-aaaaaa-r1".to_string()),
            (8085, "flux-node-2-bbbbbb".to_string()),
            (8083, "flux-node-3-aaaaaa".to_string()),
            (8086, "other".to_string()),
        ];
        assert_eq!(one_process(healthy), vec![8081, 8082, 8083]);
        assert_eq!(one_process(Vec::new()), Vec::<u16>::new());
    }

    #[test]
    fn local_addresses() {
        assert_eq!(
            local_addr("0.0.0.0".parse().unwrap()),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            local_addr("::".parse().unwrap()),
            "::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            local_addr("10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn summary_lines() {
        let r = HealthReport {
            healthy_ports: vec![8081, 8083],
            expected: 3,
        };
        assert!(!r.ok());
        assert_eq!(
            r.summary(),
            "unhealthy: 2 of 3 nodes healthy (ports: 8081, 8083)"
        );
        let r = HealthReport {
            healthy_ports: vec![],
            expected: 1,
        };
        assert_eq!(r.summary(), "unhealthy: 0 of 1 nodes healthy (ports: none)");
        let r = HealthReport {
            healthy_ports: vec![8081],
            expected: 1,
        };
        assert!(r.ok());
    }

    #[test]
    fn nothing_listening_is_unhealthy_not_a_hang() {
        // Bind then drop: the port is very likely closed for the moment of the check.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(!node_healthy(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            Duration::from_secs(2)
        ));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The check gives up (300 ms) while the server stays silent; a check that hung
        // would not answer within the minute the test waits.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(node_healthy(addr, Duration::from_millis(300)));
        });
        let healthy = rx.recv_timeout(Duration::from_secs(60));
        assert_eq!(healthy, Ok(false));
        drop(listener);
    }
}
