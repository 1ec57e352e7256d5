//! Enterprise apps: the only v8 apps whose environment is not public.
//!
//! What FluxOS does (RunOnFlux/flux `ZelBack/src/services/utils/enterpriseHelper.js`,
//! `appRequirements/appValidator.js` `registerAppGlobalyApi`, and the web app's
//! `utils/enterpriseCrypto.js`):
//!
//! - The owner encrypts `JSON.stringify({contacts, compose})` with a fresh AES-256-GCM key
//!   (12-byte nonce, 16-byte tag) and wraps the key, as base64 text, with RSA-OAEP-SHA256
//!   under the app's RSA-2048 public key from `POST /apps/getpublickey {name, owner}` (a
//!   user-level call: it needs the owner's `zelidauth` login, and an ArcaneOS node).
//! - The public spec carries `compose: []`, `contacts: []` and
//!   `enterprise: base64(rsa_wrapped_key[256] || nonce[12] || ciphertext || tag[16])`.
//! - Only ArcaneOS nodes can decrypt it (`checkAndDecryptAppSpecs`); they validate the
//!   decrypted components with the ordinary rules. The signature covers the public spec
//!   as `specificationFormatter` writes it, blob included.
//!
//! Here: the plaintext to encrypt ([`EnterprisePlaintext`]) and a shape check of the blob.
//! The encryption itself needs the key only Flux hands out, online.

use std::fmt;

use serde::Serialize;

use super::error::SpecError;
use super::model::Component;

/// Bytes of the RSA-2048-wrapped AES key at the start of the blob.
pub const RSA_BLOCK_BYTES: usize = 256;
/// AES-GCM nonce bytes after it.
pub const NONCE_BYTES: usize = 12;
/// AES-GCM tag bytes at the end.
pub const TAG_BYTES: usize = 16;
/// Shortest plaintext: `{}`.
const MIN_PLAINTEXT_BYTES: usize = 2;

/// What an enterprise app keeps secret, in the shape FluxOS decrypts
/// (`{contacts, compose}`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnterprisePlaintext {
    /// Contact e-mails (none).
    pub contacts: Vec<String>,
    /// The components, secrets included.
    pub compose: Vec<Component>,
}

/// Longest secret: one environment string holds 400 characters, `REPRAM_CLUSTER_SECRET=`
/// included.
pub const MAX_SECRET_CHARS: usize = 400 - "REPRAM_CLUSTER_SECRET=".len();
/// Shortest secret accepted: a guessable one protects nothing.
pub const MIN_SECRET_CHARS: usize = 16;

/// The cluster secret on its way into an enterprise spec; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Accepts `raw` (surrounding spaces dropped) when it is 16 to 378 characters
    /// without whitespace or control characters. `source` names where it came from
    /// in the error, which never repeats the secret.
    pub fn new(raw: &str, source: &'static str) -> Result<Secret, SpecError> {
        let s = raw.trim();
        let n = s.chars().count();
        if (MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&n)
            && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Ok(Secret(s.to_string()));
        }
        Err(SpecError::Invalid {
            flag: source,
            value: format!("({n} characters)"),
            expected: format!(
                "{MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters without spaces, \
                 e.g. from openssl rand -hex 32"
            ),
        })
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Checks that `blob` can be what FluxOS decrypts: standard padded base64 of at least
/// the RSA block, nonce, tag and a minimal plaintext. Returns the decoded length.
pub fn check_blob(blob: &str) -> Result<usize, String> {
    let bytes = blob.as_bytes();
    let body = bytes.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let padding = bytes.len() - body;
    let alphabet_ok = bytes[..body]
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    if bytes.len() % 4 != 0 || padding > 2 || !alphabet_ok {
        return Err(
            "must be standard base64 (A-Z a-z 0-9 + /, = padding), as the Flux web app \
                    writes it"
                .into(),
        );
    }
    let decoded = bytes.len() / 4 * 3 - padding;
    let least = RSA_BLOCK_BYTES + NONCE_BYTES + MIN_PLAINTEXT_BYTES + TAG_BYTES;
    if decoded < least {
        return Err(format!(
            "decodes to {decoded} bytes; an encrypted enterprise field holds at least {least} \
             (a {RSA_BLOCK_BYTES}-byte RSA-wrapped key, a {NONCE_BYTES}-byte nonce, the \
             ciphertext and a {TAG_BYTES}-byte tag)"
        ));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_shapes() {
        let least = RSA_BLOCK_BYTES + NONCE_BYTES + 2 + TAG_BYTES; // 286 bytes
        let ok = "A".repeat(least.div_ceil(3) * 4);
        assert!(check_blob(&ok).unwrap() >= least);
        assert_eq!(check_blob(&format!("{}==", "A".repeat(382))), Ok(286));
        for bad in ["", "AAAA", "not base64!", "AAA", "AAAAA===", "A=AA"] {
            assert!(check_blob(bad).is_err(), "{bad:?}");
        }
        assert!(check_blob(&format!("{}-_", "A".repeat(400))).is_err());
        assert!(check_blob(&"A".repeat(380))
            .unwrap_err()
            .contains("at least 286"));
    }
}
