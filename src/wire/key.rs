//! The check of a decoded key.

use super::MAX_KEY_BYTES;

/// Check a decoded key: 1-250 bytes, no `/`, no control characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes; at most {MAX_KEY_BYTES} allowed",
            key.len()
        ));
    }
    if key.contains('/') {
        return Err("key must not contain '/'".into());
    }
    if key.chars().any(char::is_control) {
        return Err("key must not contain control characters".into());
    }
    Ok(())
}
