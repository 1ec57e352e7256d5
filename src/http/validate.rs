//! Pure checks of client input: keys, TTLs and query strings.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

pub use crate::wire::{check_key, MAX_KEY_BYTES};

/// Decode a key from its URL path segment (percent-encoded UTF-8) and check it. Borrows
/// the segment when it holds no escapes.
pub fn decode_key(segment: &str) -> Result<Cow<'_, str>, String> {
    let key = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| "key is not valid UTF-8".to_string())?;
    check_key(&key)?;
    Ok(key)
}

/// A whole number written in ASCII digits only: no sign, no spaces, nothing else. One too
/// large for `u64` is `u64::MAX` (every caller clamps or range-checks it).
pub fn parse_whole(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(raw.parse().unwrap_or(u64::MAX))
}

/// Parse a TTL given by a client: a whole number of seconds, at least 1.
pub fn parse_ttl(raw: &str) -> Result<u64, String> {
    match parse_whole(raw) {
        Some(0) => Err("ttl must be at least 1 second".into()),
        Some(n) => Ok(n),
        None if raw.starts_with('-') => Err("ttl must be at least 1 second".into()),
        None => Err(format!(
            "ttl must be a whole number of seconds, got {:?}",
            truncate(raw, 32)
        )),
    }
}

/// The decoded value of `name` in a query string (`a=1&b=2`), if present.
/// `+` means space, as in HTML forms. Returns an error for invalid UTF-8.
pub fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, String> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k == name {
            let v = v.replace('+', " ");
            return percent_decode_str(&v)
                .decode_utf8()
                .map(|s| Some(s.into_owned()))
                .map_err(|_| format!("query parameter {name} is not valid UTF-8"));
        }
    }
    Ok(None)
}

/// At most `max` characters of `s`, control characters escaped, for echoing input in
/// error messages.
pub fn truncate(s: &str, max: usize) -> String {
    crate::text::one_line(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_decoded_and_checked() {
        assert_eq!(decode_key("greeting"), Ok("greeting".into()));
        assert_eq!(decode_key("hello%20world"), Ok("hello world".into()));
        assert_eq!(decode_key("caf%C3%A9"), Ok("café".into()));
        assert_eq!(decode_key("a%25b"), Ok("a%b".into()));
        assert!(decode_key("").is_err());
        assert!(decode_key("a%2Fb").unwrap_err().contains('/'));
        assert!(decode_key("a%0Ab").unwrap_err().contains("control"));
        assert!(decode_key("%FF").unwrap_err().contains("UTF-8"));
        assert!(decode_key(&"k".repeat(250)).is_ok());
        assert_eq!(
            decode_key(&"k".repeat(251)),
            Err("key is 251 bytes; at most 250 allowed".into())
        );
    }

    #[test]
    fn ttls_are_positive_whole_seconds() {
        assert_eq!(parse_ttl("600"), Ok(600));
        assert_eq!(parse_ttl("99999999999999999999999"), Ok(u64::MAX));
        // Digits only: no sign, no white space (not even Unicode's, like U+0085).
        for bad in [" 5 ", "+5", "5\u{85}", "\u{85}5", "٥"] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("-5").is_err());
        assert!(parse_ttl("1.5").is_err());
        assert!(parse_ttl("abc").unwrap_err().contains("whole number"));
        assert!(parse_ttl("").is_err());
    }

    #[test]
    fn query_params_are_found_and_decoded() {
        let q = Some("ttl=600&prefix=a%20b&x&plus=a+b");
        assert_eq!(query_param(q, "ttl"), Ok(Some("600".into())));
        assert_eq!(query_param(q, "prefix"), Ok(Some("a b".into())));
        assert_eq!(query_param(q, "plus"), Ok(Some("a b".into())));
        assert_eq!(query_param(q, "x"), Ok(Some(String::new())));
        assert_eq!(query_param(q, "missing"), Ok(None));
        assert_eq!(query_param(None, "ttl"), Ok(None));
        assert!(query_param(Some("k=%FF"), "k").is_err());
    }
}
