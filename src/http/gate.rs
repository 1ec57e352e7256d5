//! The gate of the node routes (`/internal/`): who may send a node message, decided
//! from the sender's address and the request headers before a byte of the body is read.
//!
//! - Without `REPRAM_CLUSTER_SECRET`, only cluster hosts ([`ClusterHosts`]) pass;
//!   anyone else gets 403.
//! - With a secret, the signature headers are judged first (timestamp window, nonce not
//!   used yet, the receiver it names); only then is the body read, bounded in bytes and
//!   in the number of unverified bodies being read at once per process (503 beyond; small
//!   bodies such as gossip have a pool of their own, so big ones cannot starve them), and
//!   its signature checked before anything is decoded.
//!
//! One gate per process, shared by its nodes (the supervisor makes it), so nonces are
//! remembered per process and the limits hold for the process.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper::header::HeaderMap;
use hyper::StatusCode;
use tokio::sync::futures::Notified;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info, warn};

use crate::auth::{self, AuthError, Signature, Verifier};
use crate::cluster_hosts::{canonical, ClusterHosts};
use crate::config::Config;
use crate::metrics::{Metrics, Refused};
use crate::transport::GOSSIP_PATH;

/// Most unverified big bodies read at once per process.
pub const MAX_UNVERIFIED_BODIES: u32 = 32;
/// Most bytes of unverified big bodies read at once per process.
pub const UNVERIFIED_BUDGET_BYTES: usize = 64 << 20;
/// Largest declared length of a small body (membership gossip is far smaller).
pub const SMALL_BODY_BYTES: u64 = 64 << 10;
/// Most unverified small bodies read at once per process (16 MiB at most).
pub const MAX_UNVERIFIED_SMALL_BODIES: usize = 256;
/// Unit of the byte budget's permits.
const KIB: usize = 1024;
/// Least time between two log lines about strangers, and about skewed clocks.
const STRANGER_NOTICE_MS: u64 = 60_000;
const SKEW_NOTICE_MS: u64 = 10_000;
/// Least time between two early re-resolutions of the cluster hosts caused by strangers.
const KNOCK_RESOLVE_MS: u64 = 5_000;

/// Why a request did not pass: its answer.
#[derive(Debug)]
pub struct Refusal {
    /// The status to answer.
    pub status: StatusCode,
    /// The message of the JSON error.
    pub message: String,
    /// Seconds for `Retry-After`, when trying again later may work.
    pub retry_after: Option<u64>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A node message as the gate judges it: to whom, from where, on which route, when.
#[derive(Clone, Copy)]
pub struct Arrival<'a> {
    /// The receiving node's id.
    pub me: &'a str,
    /// Its metrics, where refusals are counted.
    pub metrics: &'a Metrics,
    /// The sender's address.
    pub remote: SocketAddr,
    /// The route.
    pub path: &'a str,
    /// The receiver's wall clock (ms) when the request head arrived; the signature
    /// window is judged at that moment, not after a slow body.
    pub now_ms: u64,
}

/// A request that may have its body read.
pub enum Pass {
    /// No secret: the sender is a cluster host.
    ClusterHost,
    /// A secret: the headers are fine; the body must be verified with [`Gate::verify`].
    Signed {
        /// The parsed headers.
        sig: Signature,
        /// True when it names this node by id (else it names any node, or another one).
        addressed: bool,
        /// Held while the body is read and verified.
        _permits: (OwnedSemaphorePermit, Option<OwnedSemaphorePermit>),
    },
}

/// A log line at most once per period, with the number of occasions it stood for.
struct Notice {
    every_ms: u64,
    last_ms: AtomicU64,
    since: AtomicU64,
}

impl Notice {
    fn new(every_ms: u64) -> Notice {
        Notice {
            every_ms,
            last_ms: AtomicU64::new(0),
            since: AtomicU64::new(0),
        }
    }

    /// Count one occasion; `Some(occasions since the last line)` when a line is due.
    fn due(&self, now_ms: u64) -> Option<u64> {
        self.since.fetch_add(1, Ordering::Relaxed);
        let last = self.last_ms.load(Ordering::Relaxed);
        if last != 0 && now_ms.saturating_sub(last) < self.every_ms {
            return None;
        }
        self.last_ms
            .compare_exchange(last, now_ms.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .ok()?;
        Some(self.since.swap(0, Ordering::AcqRel))
    }
}

/// The gate; see the module docs.
pub struct Gate {
    hosts: Arc<ClusterHosts>,
    verifier: Option<Verifier>,
    bodies: Arc<Semaphore>,
    budget_kib: Arc<Semaphore>,
    small_bodies: Arc<Semaphore>,
    strangers: Notice,
    skew: Notice,
    /// Wakes the nodes' discovery when a stranger knocks (at most every
    /// [`KNOCK_RESOLVE_MS`]): it may be a cluster host with a new address.
    knock: Arc<Notify>,
    knocks: Notice,
}

impl Gate {
    /// The gate of one process running `config`.
    pub fn new(config: &Config) -> Arc<Gate> {
        Arc::new(Gate {
            hosts: Arc::new(ClusterHosts::new(config)),
            verifier: config
                .cluster_secret
                .as_deref()
                .map(|s| Verifier::new(s.as_bytes())),
            bodies: Arc::new(Semaphore::new(MAX_UNVERIFIED_BODIES as usize)),
            budget_kib: Arc::new(Semaphore::new(UNVERIFIED_BUDGET_BYTES / KIB)),
            small_bodies: Arc::new(Semaphore::new(MAX_UNVERIFIED_SMALL_BODIES)),
            strangers: Notice::new(STRANGER_NOTICE_MS),
            skew: Notice::new(SKEW_NOTICE_MS),
            knock: Arc::new(Notify::new()),
            knocks: Notice::new(KNOCK_RESOLVE_MS),
        })
    }

    /// The cluster hosts, kept current by the nodes' discovery rounds.
    pub fn hosts(&self) -> &ClusterHosts {
        &self.hosts
    }

    /// The cluster hosts, to share with the nodes' discovery, which keeps them current.
    pub fn shared_hosts(&self) -> Arc<ClusterHosts> {
        self.hosts.clone()
    }

    /// Notified when a stranger was refused (see [`Gate::stranger_knocked`]), to share
    /// with the nodes' discovery.
    pub fn shared_knock(&self) -> Arc<Notify> {
        self.knock.clone()
    }

    /// Completes when a stranger was refused, at most once per [`KNOCK_RESOLVE_MS`]: the
    /// cue to resolve the discovery sources again at once, since a host that just got a
    /// new address (a restarted pod) is a stranger until then.
    pub fn stranger_knocked(&self) -> Notified<'_> {
        self.knock.notified()
    }

    /// True when node messages must be signed.
    pub fn signed(&self) -> bool {
        self.verifier.is_some()
    }

    /// Judge a node message before its body is read: its sender, its headers, and its
    /// declared length against `max` (the body is read with that limit too).
    pub fn admit(
        &self,
        at: Arrival<'_>,
        headers: &HeaderMap,
        content_length: Option<u64>,
        max: usize,
    ) -> Result<Pass, Refusal> {
        let Arrival {
            me,
            metrics,
            remote,
            path,
            now_ms,
        } = at;
        let Some(verifier) = &self.verifier else {
            if self.hosts.allows(remote.ip()) {
                return Ok(Pass::ClusterHost);
            }
            metrics.node_message_refused(Refused::stranger);
            if self.knocks.due(now_ms).is_some() {
                self.knock.notify_waiters();
            }
            let ip = canonical(remote.ip());
            debug!(node = %me, remote = %ip, path, "node message refused: not a cluster host");
            if let Some(n) = self.strangers.due(now_ms) {
                info!(
                    remote = %ip,
                    refused = n,
                    "refused node messages from addresses that are not cluster hosts (\
                     DISCOVERY_DOMAIN, DISCOVERY_PEERS, Flux instances, loopback); \
                     set REPRAM_CLUSTER_SECRET on every host if they belong to the cluster"
                );
            }
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "node routes accept only cluster hosts (DISCOVERY_DOMAIN, DISCOVERY_PEERS, \
                 Flux instances) unless REPRAM_CLUSTER_SECRET is set",
            ));
        };
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let sig = Verifier::parse(
            header(auth::TIMESTAMP_HEADER),
            header(auth::NONCE_HEADER),
            header(auth::SIGNATURE_HEADER),
            header(auth::RECEIVER_HEADER),
        )
        .and_then(|sig| verifier.check_headers(&sig, now_ms).map(|()| sig))
        .map_err(|e| self.refuse(at, &e, headers))?;
        let addressed = sig.receiver == me;
        if !addressed && path != GOSSIP_PATH {
            return Err(self.refuse(at, &AuthError::WrongReceiver, headers));
        }
        if content_length.is_some_and(|len| len > max as u64) {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("node message larger than the limit of {max} bytes"),
            ));
        }
        let permits = match content_length {
            Some(len) if len <= SMALL_BODY_BYTES => self
                .small_bodies
                .clone()
                .try_acquire_owned()
                .map(|p| (p, None)),
            // A big body, or one of unknown length (chunked), counts as the largest.
            _ => {
                let len = content_length.map_or(max, |l| l as usize);
                let kib = u32::try_from(len.div_ceil(KIB).max(1)).unwrap_or(u32::MAX);
                self.bodies.clone().try_acquire_owned().and_then(|b| {
                    Ok((
                        b,
                        Some(self.budget_kib.clone().try_acquire_many_owned(kib)?),
                    ))
                })
            }
        };
        let Ok(permits) = permits else {
            metrics.node_message_refused(Refused::busy);
            debug!(node = %me, remote = %canonical(remote.ip()), "node message refused: too many unverified bodies being read");
            return Err(Refusal {
                retry_after: Some(1),
                ..Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many unverified node messages being read; retry shortly",
                )
            });
        };
        Ok(Pass::Signed {
            sig,
            addressed,
            _permits: permits,
        })
    }

    /// Check the body of a request that passed [`Gate::admit`]: `Ok(addressed)`, true
    /// when the message may be applied, false when it may only be answered (gossip not
    /// addressed to this node by id).
    pub fn verify(&self, at: Arrival<'_>, pass: &Pass, body: &[u8]) -> Result<bool, Refusal> {
        match (pass, &self.verifier) {
            (Pass::ClusterHost, _) => Ok(true),
            (Pass::Signed { sig, addressed, .. }, Some(verifier)) => {
                verifier
                    .verify("POST", at.path, sig, body, at.now_ms)
                    .map_err(|e| self.refuse(at, &e, &HeaderMap::new()))?;
                Ok(*addressed)
            }
            (Pass::Signed { .. }, None) => Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "no cluster secret to verify with",
            )),
        }
    }

    /// Count and log a refused signed message; its answer.
    fn refuse(&self, at: Arrival<'_>, e: &AuthError, headers: &HeaderMap) -> Refusal {
        let Arrival {
            me,
            metrics,
            remote,
            now_ms,
            ..
        } = at;
        let reason = match e {
            AuthError::Missing | AuthError::Malformed(_) | AuthError::Version => Refused::unsigned,
            AuthError::Stale(_) => Refused::clock_skew,
            AuthError::WrongReceiver => Refused::wrong_receiver,
            AuthError::Replayed => Refused::replayed,
            AuthError::BadSignature => Refused::bad_signature,
            AuthError::Overloaded => Refused::busy,
        };
        metrics.node_message_refused(reason);
        let ip = canonical(remote.ip());
        debug!(node = %me, remote = %ip, error = %e, "node message refused");
        if let AuthError::Stale(_) = e {
            // Positive: the sender's clock is ahead of ours.
            let offset_ms = headers
                .get(auth::TIMESTAMP_HEADER)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                .map(|ts| i128::from(ts) - i128::from(now_ms));
            if let Some(n) = self.skew.due(now_ms) {
                warn!(
                    node = %me,
                    sender = %ip,
                    offset_ms = %offset_ms.map(|o| o.to_string()).unwrap_or_default(),
                    window_ms = auth::WINDOW_MS,
                    refused = n,
                    "SIGNED NODE MESSAGE REFUSED: the sender's clock differs from ours by more \
                     than the signature window; nodes with skewed clocks cannot talk. Fix the \
                     clocks (NTP) of these hosts"
                );
            }
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let mut refusal = Refusal::new(status, e.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            refusal.retry_after = Some(1);
        }
        refusal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "s3cret";
    const NOW: u64 = 1_700_000_000_000;

    fn remote(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn headers(sig: &Signature) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(auth::TIMESTAMP_HEADER, sig.timestamp_ms.into());
        h.insert(auth::NONCE_HEADER, sig.nonce.parse().unwrap());
        h.insert(auth::SIGNATURE_HEADER, sig.signature.parse().unwrap());
        h.insert(auth::RECEIVER_HEADER, sig.receiver.parse().unwrap());
        h
    }

    fn at<'a>(m: &'a Metrics, from: SocketAddr, path: &'a str, now_ms: u64) -> Arrival<'a> {
        Arrival {
            me: "n1",
            metrics: m,
            remote: from,
            path,
            now_ms,
        }
    }

    fn reason_count(m: &Metrics, reason: Refused) -> u64 {
        m.node_messages_refused
            .get_or_create(&crate::metrics::RefusedLabels { reason })
            .get()
    }

    fn secret_gate() -> Arc<Gate> {
        Gate::new(&Config {
            cluster_secret: Some(SECRET.into()),
            ..Config::for_test()
        })
    }

    const REPLICATE: &str = crate::transport::REPLICATE_PATH;

    #[test]
    fn without_a_secret_only_cluster_hosts_pass() {
        let gate = Gate::new(&Config::for_test());
        let m = Metrics::new();
        let admit = |from: &str| {
            gate.admit(
                at(&m, remote(from), REPLICATE, NOW),
                &HeaderMap::new(),
                None,
                1 << 20,
            )
        };
        assert!(matches!(admit("127.0.0.1:5000"), Ok(Pass::ClusterHost)));
        assert!(matches!(
            admit("[::ffff:127.0.0.1]:5000"),
            Ok(Pass::ClusterHost)
        ));
        let refused = admit("198.51.100.2:5000").err().unwrap();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(admit("[::ffff:198.51.100.2]:5000").is_err());
        gate.hosts().set(
            crate::cluster_hosts::Source::Domain,
            ["198.51.100.2".parse().unwrap()],
        );
        assert!(matches!(
            admit("[::ffff:198.51.100.2]:5000"),
            Ok(Pass::ClusterHost)
        ));
        assert_eq!(reason_count(&m, Refused::stranger), 2);
    }

    #[test]
    fn signed_headers_are_judged_before_the_body() {
        let gate = secret_gate();
        let m = Metrics::new();
        let from = remote("198.51.100.2:5000");
        let admit =
            |h: &HeaderMap, path: &str| gate.admit(at(&m, from, path, NOW), h, Some(10), 1 << 20);
        // Unsigned: 401, even from loopback.
        let r = gate.admit(
            at(&m, remote("127.0.0.1:1"), REPLICATE, NOW),
            &HeaderMap::new(),
            None,
            1 << 20,
        );
        assert_eq!(r.err().unwrap().status, StatusCode::UNAUTHORIZED);
        // Stale.
        let old = auth::sign(
            SECRET.as_bytes(),
            "POST",
            REPLICATE,
            "n1",
            NOW - 3_600_000,
            b"",
        );
        assert_eq!(
            admit(&headers(&old), REPLICATE).err().unwrap().status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(reason_count(&m, Refused::clock_skew), 1);
        // For another node: refused on data routes, answered-not-applied on gossip.
        let other = auth::sign(SECRET.as_bytes(), "POST", REPLICATE, "n2", NOW, b"");
        assert_eq!(
            admit(&headers(&other), REPLICATE).err().unwrap().status,
            StatusCode::FORBIDDEN
        );
        let any = auth::sign(
            SECRET.as_bytes(),
            "POST",
            GOSSIP_PATH,
            auth::ANY_RECEIVER,
            NOW,
            b"",
        );
        let pass = admit(&headers(&any), GOSSIP_PATH).ok().unwrap();
        assert!(matches!(
            pass,
            Pass::Signed {
                addressed: false,
                ..
            }
        ));
        assert_eq!(
            gate.verify(at(&m, from, GOSSIP_PATH, NOW), &pass, b"").ok(),
            Some(false)
        );
        // Addressed and valid; then replayed (refused from the headers alone).
        let good = auth::sign(SECRET.as_bytes(), "POST", REPLICATE, "n1", NOW, b"body");
        let pass = admit(&headers(&good), REPLICATE).ok().unwrap();
        assert_eq!(
            gate.verify(at(&m, from, REPLICATE, NOW), &pass, b"body")
                .ok(),
            Some(true)
        );
        drop(pass);
        assert_eq!(
            admit(&headers(&good), REPLICATE).err().unwrap().status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(reason_count(&m, Refused::replayed), 1);
        // Declared too large.
        let big = auth::sign(SECRET.as_bytes(), "POST", REPLICATE, "n1", NOW, b"");
        let r = gate.admit(
            at(&m, from, REPLICATE, NOW),
            &headers(&big),
            Some(2 << 20),
            1 << 20,
        );
        assert_eq!(r.err().unwrap().status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn unverified_bodies_are_bounded_in_number_and_bytes() {
        let gate = secret_gate();
        let m = Metrics::new();
        let from = remote("198.51.100.2:5000");
        let admit = |len: u64| {
            let sig = auth::sign(SECRET.as_bytes(), "POST", REPLICATE, "n1", NOW, b"");
            gate.admit(
                at(&m, from, REPLICATE, NOW),
                &headers(&sig),
                Some(len),
                64 << 20,
            )
        };
        let held: Vec<Pass> = (0..MAX_UNVERIFIED_BODIES)
            .map(|_| admit(1 << 20).ok().unwrap())
            .collect();
        let r = admit(1 << 20).err().unwrap();
        assert_eq!(
            (r.status, r.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        // Big bodies cannot starve small ones (membership gossip), which have a pool of
        // their own.
        let small: Vec<Pass> = (0..MAX_UNVERIFIED_SMALL_BODIES)
            .map(|_| admit(SMALL_BODY_BYTES).ok().unwrap())
            .collect();
        assert!(admit(100).is_err());
        drop((held, small));
        let big: Vec<Pass> = (0..4).map(|_| admit(16 << 20).ok().unwrap()).collect();
        assert_eq!(
            admit(16 << 20).err().unwrap().status,
            StatusCode::SERVICE_UNAVAILABLE
        );
        drop(big);
        assert!(admit(16 << 20).is_ok());
        assert_eq!(reason_count(&m, Refused::busy), 3);
    }

    #[tokio::test]
    async fn a_stranger_wakes_discovery_at_most_every_few_seconds() {
        let gate = Gate::new(&Config::for_test());
        let m = Metrics::new();
        let knock = |now| {
            let from = remote("198.51.100.2:1");
            let _ = gate.admit(at(&m, from, REPLICATE, now), &HeaderMap::new(), None, 1);
        };
        let woken = gate.stranger_knocked();
        tokio::pin!(woken);
        woken.as_mut().enable();
        knock(NOW);
        assert!(futures::poll!(woken.as_mut()).is_ready());
        let again = gate.stranger_knocked();
        tokio::pin!(again);
        again.as_mut().enable();
        knock(NOW + 1_000);
        assert!(futures::poll!(again.as_mut()).is_pending(), "rate-limited");
        knock(NOW + KNOCK_RESOLVE_MS);
        assert!(futures::poll!(again.as_mut()).is_ready());
    }

    #[test]
    fn notices_are_rate_limited_and_count_what_they_stand_for() {
        let n = Notice::new(1_000);
        assert_eq!(n.due(NOW), Some(1));
        assert_eq!(n.due(NOW + 10), None);
        assert_eq!(n.due(NOW + 500), None);
        assert_eq!(n.due(NOW + 1_000), Some(3));
    }
}
