//! Warnings for a spec that FluxOS would accept but that still holds the example's
//! placeholders, or values that will not do what their owner wants.
//!
//! - `owner`: FluxOS verifies the registration signature against it
//!   (`signatureVerifier.js`): an Ethereum address (`0x` + 40 hex digits), a public key
//!   in hex (longer than 36 characters), or else a Bitcoin-style P2PKH address (a ZelID:
//!   base58check of version byte 0 and a 20-byte key hash, so `1…`, 26-34 characters).
//!   Anything else can never be signed for.
//! - The example image and domain: the Flux Domain Manager routes a custom domain to the
//!   oldest app that claims it, so every copy of the example claims `fade.repram.io`.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::generate::{EXAMPLE_DOMAIN, EXAMPLE_IMAGE};
use super::validate::Violation;

/// Placeholder and pitfall warnings for `spec` (public or decrypted form).
pub fn placeholder_warnings(spec: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut warn = |path: String, message: String| out.push(Violation { path, message });
    if let Some(owner) = spec.get("owner").and_then(Value::as_str) {
        if !is_owner_address(owner) {
            warn(
                "owner".into(),
                format!(
                    "{} is not an address FluxOS can verify a signature for: your ZelID (a \
                     Bitcoin-style address, 1..., base58check) or an Ethereum address \
                     (0x + 40 hex digits)",
                    super::names::shown(owner)
                ),
            );
        }
    }
    let compose = spec.get("compose").and_then(Value::as_array);
    for (i, c) in compose.into_iter().flatten().enumerate() {
        if let Some(image) = c.get("repotag").and_then(Value::as_str) {
            if image == EXAMPLE_IMAGE {
                warn(
                    format!("compose[{i}].repotag"),
                    format!(
                        "{image} is the example image: build and push your own (README, \
                         Deploying on Flux, step 1) and name it with its tag"
                    ),
                );
            } else if image.ends_with(":latest") {
                warn(
                    format!("compose[{i}].repotag"),
                    "the tag latest moves: instances started at different times run \
                     different builds; pin a version"
                        .into(),
                );
            }
        }
        let domains = c.get("domains").and_then(Value::as_array);
        if domains
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|d| d.trim().eq_ignore_ascii_case(EXAMPLE_DOMAIN))
        {
            warn(
                format!("compose[{i}].domains"),
                format!(
                    "{EXAMPLE_DOMAIN} is the example domain: the Flux Domain Manager gives a \
                     domain to the oldest app that claims it, so use one you own, or none"
                ),
            );
        }
    }
    out
}

/// True if `owner` has the shape of an address FluxOS verifies signatures for.
pub fn is_owner_address(owner: &str) -> bool {
    if let Some(hex) = owner.strip_prefix("0x") {
        return hex.len() == 40 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    if owner.len() > 36 {
        // A public key in hex: 33 bytes compressed (02/03) or 65 uncompressed (04).
        let prefix_ok = match owner.len() {
            66 => owner.starts_with("02") || owner.starts_with("03"),
            130 => owner.starts_with("04"),
            _ => false,
        };
        return prefix_ok && owner.bytes().all(|b| b.is_ascii_hexdigit());
    }
    match base58_decode(owner) {
        Some(bytes) if bytes.len() == 25 && bytes[0] == 0 => {
            let check = Sha256::digest(Sha256::digest(&bytes[..21]));
            check[..4] == bytes[21..]
        }
        _ => false,
    }
}

/// Bitcoin's base58 (no 0, O, I, l); leading `1`s are leading zero bytes.
fn base58_decode(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    if s.is_empty() || s.len() > 64 {
        return None;
    }
    let mut num: Vec<u8> = Vec::new(); // big-endian
    for c in s.bytes() {
        let mut carry = ALPHABET.iter().position(|a| *a == c)? as u32;
        for byte in num.iter_mut().rev() {
            carry += u32::from(*byte) * 58;
            *byte = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            num.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    let zeros = s.bytes().take_while(|b| *b == b'1').count();
    let mut out = vec![0u8; zeros];
    out.extend(num);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flux::spec::{generate, SpecOptions};

    /// The Bitcoin genesis block's address: a well-known valid P2PKH address.
    const GENESIS: &str = "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa";

    #[test]
    fn owner_shapes() {
        assert!(is_owner_address(GENESIS));
        assert!(is_owner_address("1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"));
        assert!(is_owner_address(
            "0x52908400098527886E0F7030069857D2E4169EE7"
        ));
        assert!(is_owner_address(&format!("02{}", "ab".repeat(32))));
        for bad in [
            "1ReplaceWithYourFluxZelID",          // I and l are not base58
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", // checksum
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", // P2SH, version 5
            "0x1234",
            "",
            "zelid",
            &"1".repeat(64),
        ] {
            assert!(!is_owner_address(bad), "{bad}");
        }
    }

    #[test]
    fn example_values_warn_and_own_values_do_not() {
        let fade = serde_json::to_value(generate(&SpecOptions::fade()).unwrap()).unwrap();
        let paths: Vec<String> = placeholder_warnings(&fade)
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(paths, ["owner", "compose[0].repotag", "compose[0].domains"]);
        let own = SpecOptions {
            owner: GENESIS.into(),
            image: "me/repram-flux:1.2.0".into(),
            domain: "kv.example.com".into(),
            ..SpecOptions::fade()
        };
        let own = serde_json::to_value(generate(&own).unwrap()).unwrap();
        assert_eq!(placeholder_warnings(&own), []);
        let mut latest = own.clone();
        latest["compose"][0]["repotag"] = "me/repram-flux:latest".into();
        assert_eq!(placeholder_warnings(&latest)[0].path, "compose[0].repotag");
    }
}
