//! Authenticated node-to-node traffic (`REPRAM_CLUSTER_SECRET`).
//!
//! Every `/internal/` request carries a timestamp, a random nonce, the node it is meant
//! for (its receiver) and an HMAC-SHA256 over version, method, path, receiver, timestamp,
//! nonce and body. A receiver judges the headers first ([`Verifier::check_headers`]:
//! unsigned or malformed 401, stale by more than [`WINDOW_MS`] either way 401, a nonce
//! already used 403), reads the body only then, and checks the signature before decoding
//! anything ([`Verifier::verify`]: wrongly signed or replayed 403). Nonces are remembered
//! by one [`Verifier`] per process, shared by its nodes, so a message accepted by one
//! node is refused by its siblings; the receiver in the signature stops it elsewhere.

use std::collections::HashMap;
use std::sync::Mutex;

use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;

/// Header with the sender's wall clock, ms since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-repram-timestamp";
/// Header with a random single-use token (16-64 characters of `[0-9a-zA-Z]`).
pub const NONCE_HEADER: &str = "x-repram-nonce";
/// Header with the signature: [`VERSION`], `=`, and the hex HMAC-SHA256.
pub const SIGNATURE_HEADER: &str = "x-repram-signature";
/// Header naming the node the message is meant for: its node id, or [`ANY_RECEIVER`].
pub const RECEIVER_HEADER: &str = "x-repram-receiver";
/// Receiver of a message whose sender does not know the receiving node's id yet (a
/// discovery probe to an address). Only membership gossip may be sent to it, and a
/// receiver answers such a message without applying it (see `http::gate`).
pub const ANY_RECEIVER: &str = "*";
/// Version of the signature format, the prefix of [`SIGNATURE_HEADER`]. Version 1 (a bare
/// hex HMAC without a receiver) is refused as malformed, naming this version.
pub const VERSION: &str = "v2";
/// Largest accepted difference between the sender's and the receiver's clocks.
pub const WINDOW_MS: u64 = 30_000;
/// Most nonces remembered; beyond this, signed requests are refused until old ones age out.
const MAX_NONCES: usize = 1 << 20;
/// Longest receiver name (node ids are far shorter).
const MAX_RECEIVER_LEN: usize = 128;

type HmacSha256 = Hmac<Sha256>;

/// Why a request was refused. Nothing was applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A signature header is missing.
    #[error("unsigned node message")]
    Missing,
    /// A header is malformed.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The signature header is not of this version's format.
    #[error("signature format not {VERSION}: every node of a cluster must run the same version")]
    Version,
    /// The timestamp is outside the window.
    #[error("stale node message ({0} ms off)")]
    Stale(u64),
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The message names another node as its receiver.
    #[error("node message signed for another node")]
    WrongReceiver,
    /// The nonce was seen before.
    #[error("replayed node message")]
    Replayed,
    /// Too many recent nonces to remember another.
    #[error("too many node messages")]
    Overloaded,
}

impl AuthError {
    /// HTTP status for this refusal: 401 when the request is not (validly) signed, 403
    /// when it is signed but must not be accepted.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Missing
            | AuthError::Malformed(_)
            | AuthError::Version
            | AuthError::Stale(_) => 401,
            AuthError::BadSignature | AuthError::WrongReceiver | AuthError::Replayed => 403,
            AuthError::Overloaded => 503,
        }
    }
}

/// The headers of a signed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// Sender's wall clock in ms.
    pub timestamp_ms: u64,
    /// Single-use token.
    pub nonce: String,
    /// The node id it is meant for, or [`ANY_RECEIVER`].
    pub receiver: String,
    /// [`SIGNATURE_HEADER`]'s value: `v2=` and the hex HMAC-SHA256.
    pub signature: String,
}

fn mac(
    secret: &[u8],
    method: &str,
    path: &str,
    receiver: &str,
    ts: u64,
    nonce: &str,
    body: &[u8],
) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any size"),
    };
    for part in [
        VERSION.as_bytes(),
        method.as_bytes(),
        path.as_bytes(),
        receiver.as_bytes(),
        ts.to_string().as_bytes(),
        nonce.as_bytes(),
    ] {
        m.update(&(part.len() as u64).to_be_bytes());
        m.update(part);
    }
    m.update(body);
    m
}

/// Sign a request for `receiver` (a node id, or [`ANY_RECEIVER`]) with a fresh nonce.
pub fn sign(
    secret: &[u8],
    method: &str,
    path: &str,
    receiver: &str,
    now_ms: u64,
    body: &[u8],
) -> Signature {
    let nonce: String = rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect();
    let tag = mac(secret, method, path, receiver, now_ms, &nonce, body)
        .finalize()
        .into_bytes();
    Signature {
        timestamp_ms: now_ms,
        nonce,
        receiver: receiver.to_string(),
        signature: format!("{VERSION}={}", hex(&tag)),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    // Hex digits only: `from_str_radix` alone would also take a sign (`+f`).
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The hex part of a signature header value, if it is of this version.
fn tag_hex(sig: &str) -> Option<&str> {
    sig.strip_prefix(VERSION)?.strip_prefix('=')
}

/// Checks signatures and remembers nonces: one per process, shared by its nodes.
pub struct Verifier {
    secret: Vec<u8>,
    seen: Mutex<HashMap<String, u64>>,
    /// Most nonces remembered ([`MAX_NONCES`]; smaller in tests).
    max_nonces: usize,
}

impl Verifier {
    /// A verifier for `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Self::with_max_nonces(secret, MAX_NONCES)
    }

    /// A verifier that remembers at most `max_nonces` nonces.
    fn with_max_nonces(secret: &[u8], max_nonces: usize) -> Self {
        Verifier {
            secret: secret.to_vec(),
            seen: Mutex::new(HashMap::new()),
            max_nonces,
        }
    }

    /// Parse the four header values (any may be missing).
    pub fn parse(
        ts: Option<&str>,
        nonce: Option<&str>,
        sig: Option<&str>,
        receiver: Option<&str>,
    ) -> Result<Signature, AuthError> {
        let (Some(ts), Some(nonce), Some(sig)) = (ts, nonce, sig) else {
            return Err(AuthError::Missing);
        };
        let timestamp_ms = ts
            .trim()
            .parse()
            .map_err(|_| AuthError::Malformed(TIMESTAMP_HEADER))?;
        let nonce_ok =
            (16..=64).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric());
        if !nonce_ok {
            return Err(AuthError::Malformed(NONCE_HEADER));
        }
        let Some(tag) = tag_hex(sig) else {
            // A bare 64-digit hex value is a version 1 signature: say so.
            return Err(if sig.len() == 64 && unhex(sig).is_some() {
                AuthError::Version
            } else {
                AuthError::Malformed(SIGNATURE_HEADER)
            });
        };
        if tag.len() != 64 || unhex(tag).is_none() {
            return Err(AuthError::Malformed(SIGNATURE_HEADER));
        }
        // Version 2 signatures always name a receiver.
        let receiver = receiver.ok_or(AuthError::Missing)?;
        let receiver_ok = receiver == ANY_RECEIVER
            || ((1..=MAX_RECEIVER_LEN).contains(&receiver.len())
                && receiver
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':')));
        if !receiver_ok {
            return Err(AuthError::Malformed(RECEIVER_HEADER));
        }
        Ok(Signature {
            timestamp_ms,
            nonce: nonce.to_string(),
            receiver: receiver.to_string(),
            signature: format!("{VERSION}={}", tag.to_ascii_lowercase()),
        })
    }

    /// What can be judged before the body is read: the timestamp window and whether the
    /// nonce was used already. Remembers nothing.
    pub fn check_headers(&self, sig: &Signature, now_ms: u64) -> Result<(), AuthError> {
        let skew = now_ms.abs_diff(sig.timestamp_ms);
        if skew > WINDOW_MS {
            return Err(AuthError::Stale(skew));
        }
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains_key(&sig.nonce) {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }

    /// Accept or refuse a request. On success its nonce is remembered, so the very same
    /// request is refused next time, by every node sharing this verifier.
    pub fn verify(
        &self,
        method: &str,
        path: &str,
        sig: &Signature,
        body: &[u8],
        now_ms: u64,
    ) -> Result<(), AuthError> {
        let skew = now_ms.abs_diff(sig.timestamp_ms);
        if skew > WINDOW_MS {
            return Err(AuthError::Stale(skew));
        }
        let tag = tag_hex(&sig.signature)
            .and_then(unhex)
            .ok_or(AuthError::Malformed(SIGNATURE_HEADER))?;
        mac(
            &self.secret,
            method,
            path,
            &sig.receiver,
            sig.timestamp_ms,
            &sig.nonce,
            body,
        )
        .verify_slice(&tag)
        .map_err(|_| AuthError::BadSignature)?;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= self.max_nonces / 2 {
            // Nonces older than the window can never be accepted again anyway.
            seen.retain(|_, ts| now_ms.abs_diff(*ts) <= WINDOW_MS);
        }
        if seen.len() >= self.max_nonces {
            return Err(AuthError::Overloaded);
        }
        if seen.insert(sig.nonce.clone(), sig.timestamp_ms).is_some() {
            return Err(AuthError::Replayed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"cluster secret";
    const NOW: u64 = 1_700_000_000_000;

    fn check(v: &Verifier, s: &Signature, body: &[u8], now: u64) -> Result<(), AuthError> {
        v.verify("POST", "/internal/v1/replicate", s, body, now)
    }

    #[test]
    fn a_correct_signature_passes_once() {
        let v = Verifier::new(KEY);
        let s = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW,
            b"body",
        );
        assert_eq!(check(&v, &s, b"body", NOW + 1_000), Ok(()));
        assert_eq!(
            check(&v, &s, b"body", NOW + 1_000),
            Err(AuthError::Replayed)
        );
        assert_eq!(AuthError::Replayed.status(), 403);
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let v = Verifier::new(KEY);
        let s = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW,
            b"body",
        );
        assert_eq!(check(&v, &s, b"bodY", NOW), Err(AuthError::BadSignature));
        let wrong_path = v.verify("POST", "/internal/v1/gossip", &s, b"body", NOW);
        assert_eq!(wrong_path, Err(AuthError::BadSignature));
        let other_key = sign(
            b"other",
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW,
            b"body",
        );
        assert_eq!(
            check(&v, &other_key, b"body", NOW),
            Err(AuthError::BadSignature)
        );
        let mut moved = s.clone();
        moved.timestamp_ms += 1;
        assert_eq!(
            check(&v, &moved, b"body", NOW),
            Err(AuthError::BadSignature)
        );
        // A refused request does not burn its nonce.
        assert_eq!(check(&v, &s, b"body", NOW), Ok(()));
    }

    #[test]
    fn stale_messages_are_refused_both_ways() {
        let v = Verifier::new(KEY);
        let old = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW - 30_001,
            b"",
        );
        assert_eq!(check(&v, &old, b"", NOW), Err(AuthError::Stale(30_001)));
        let future = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW + 31_000,
            b"",
        );
        assert_eq!(
            check(&v, &future, b"", NOW).map_err(|e| e.status()),
            Err(401)
        );
        let edge = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW - 30_000,
            b"",
        );
        assert_eq!(check(&v, &edge, b"", NOW), Ok(()));
    }

    #[test]
    fn headers_are_parsed_strictly() {
        let s = sign(KEY, "POST", "/p", "node-a", NOW, b"");
        let ts = s.timestamp_ms.to_string();
        assert_eq!(
            Verifier::parse(
                Some(&ts),
                Some(&s.nonce),
                Some(&s.signature),
                Some("node-a")
            ),
            Ok(s.clone())
        );
        assert_eq!(
            Verifier::parse(None, Some(&s.nonce), Some(&s.signature), Some("node-a")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            Verifier::parse(
                Some("soon"),
                Some(&s.nonce),
                Some(&s.signature),
                Some("node-a")
            ),
            Err(AuthError::Malformed(TIMESTAMP_HEADER))
        );
        assert_eq!(
            Verifier::parse(Some(&ts), Some("short"), Some(&s.signature), Some("node-a")),
            Err(AuthError::Malformed(NONCE_HEADER))
        );
        assert_eq!(
            Verifier::parse(Some(&ts), Some(&s.nonce), Some("zz"), Some("node-a")),
            Err(AuthError::Malformed(SIGNATURE_HEADER))
        );
        for not_hex in ["g".repeat(64), "+f".repeat(32), "-0".repeat(32)] {
            assert_eq!(
                Verifier::parse(
                    Some(&ts),
                    Some(&s.nonce),
                    Some(&format!("v2={not_hex}")),
                    Some("node-a")
                ),
                Err(AuthError::Malformed(SIGNATURE_HEADER))
            );
        }
    }

    #[test]
    fn a_full_nonce_cache_refuses_with_503_until_old_nonces_are_pruned() {
        const MAX: usize = 8;
        let v = Verifier::with_max_nonces(KEY, MAX);
        // Fill the cache within one window: the next signed request is refused (503).
        for i in 0..MAX as u64 {
            let s = sign(
                KEY,
                "POST",
                "/internal/v1/replicate",
                "node-a",
                NOW + i,
                b"",
            );
            assert_eq!(check(&v, &s, b"", NOW + i), Ok(()), "request {i}");
        }
        let s = sign(
            KEY,
            "POST",
            "/internal/v1/replicate",
            "node-a",
            NOW + 10,
            b"",
        );
        assert_eq!(check(&v, &s, b"", NOW + 10), Err(AuthError::Overloaded));
        assert_eq!(AuthError::Overloaded.status(), 503);
        // Once those nonces are older than the window they are pruned, making room.
        let later = NOW + MAX as u64 + WINDOW_MS + 1;
        let s = sign(KEY, "POST", "/internal/v1/replicate", "node-a", later, b"");
        assert_eq!(check(&v, &s, b"", later), Ok(()));
        assert_eq!(v.seen.lock().unwrap().len(), 1, "old nonces pruned");
        // A replay of a pruned nonce is still refused: it is stale by then.
        let old = sign(KEY, "POST", "/internal/v1/replicate", "node-a", NOW, b"");
        assert!(matches!(
            check(&v, &old, b"", later),
            Err(AuthError::Stale(_))
        ));
    }

    #[test]
    fn nonces_are_fresh() {
        let a = sign(KEY, "POST", "/p", "node-a", NOW, b"");
        let b = sign(KEY, "POST", "/p", "node-a", NOW, b"");
        assert_ne!(a.nonce, b.nonce);
        assert_eq!(a.signature.len(), 67);
    }

    #[test]
    fn the_receiver_is_signed_and_required() {
        let v = Verifier::new(KEY);
        let s = sign(KEY, "POST", "/p", "node-a", NOW, b"");
        let mut elsewhere = s.clone();
        elsewhere.receiver = "node-b".into();
        assert_eq!(
            v.verify("POST", "/p", &elsewhere, b"", NOW),
            Err(AuthError::BadSignature)
        );
        let ts = s.timestamp_ms.to_string();
        assert_eq!(
            Verifier::parse(Some(&ts), Some(&s.nonce), Some(&s.signature), None),
            Err(AuthError::Missing)
        );
        for bad in ["", "a b", "x/y", &"n".repeat(129)] {
            assert_eq!(
                Verifier::parse(Some(&ts), Some(&s.nonce), Some(&s.signature), Some(bad)),
                Err(AuthError::Malformed(RECEIVER_HEADER))
            );
        }
        let any = Verifier::parse(Some(&ts), Some(&s.nonce), Some(&s.signature), Some("*"));
        assert_eq!(any.map(|s| s.receiver), Ok(ANY_RECEIVER.to_string()));
    }

    #[test]
    fn a_version_1_signature_is_named_as_such() {
        let s = sign(KEY, "POST", "/p", "node-a", NOW, b"");
        let ts = s.timestamp_ms.to_string();
        let bare = s.signature.trim_start_matches("v2=");
        assert_eq!(
            Verifier::parse(Some(&ts), Some(&s.nonce), Some(bare), Some("node-a")),
            Err(AuthError::Version)
        );
        assert_eq!(AuthError::Version.status(), 401);
    }

    #[test]
    fn headers_alone_catch_stale_and_used_nonces_before_the_body() {
        let v = Verifier::new(KEY);
        let s = sign(KEY, "POST", "/p", "node-a", NOW, b"body");
        assert_eq!(
            v.check_headers(&s, NOW + 31_000),
            Err(AuthError::Stale(31_000))
        );
        assert_eq!(v.check_headers(&s, NOW), Ok(()));
        // Checking headers remembers nothing; a verified message does.
        assert_eq!(v.check_headers(&s, NOW), Ok(()));
        assert_eq!(v.verify("POST", "/p", &s, b"body", NOW), Ok(()));
        assert_eq!(v.check_headers(&s, NOW), Err(AuthError::Replayed));
    }
}
