//! The header values of the last GET answer a thread built, kept per thread.

use std::time::{Duration, UNIX_EPOCH};

use hyper::header::HeaderValue;

/// The header values of the last GET answer this thread built. Successive reads mostly
/// repeat them (the same TTLs, creation times within a second), and a clone of a value
/// costs a reference count where formatting one costs a formatter run and an allocation.
#[derive(Default)]
pub(super) struct Recent {
    pub(super) created: Memo<Option<HeaderValue>>,
    pub(super) original: Memo<HeaderValue>,
    pub(super) remaining: Memo<HeaderValue>,
}

/// One remembered `(input, value)`.
pub(super) struct Memo<V>(Option<(u64, V)>);

impl<V> Default for Memo<V> {
    fn default() -> Self {
        Memo(None)
    }
}

impl<V: Clone> Memo<V> {
    /// The value for `input`: the remembered one if it was made from `input`, else `make`'s.
    #[inline]
    pub(super) fn get(&mut self, input: u64, make: fn(u64) -> V) -> V {
        match &self.0 {
            Some((had, value)) if *had == input => value.clone(),
            _ => {
                let value = make(input);
                self.0 = Some((input, value.clone()));
                value
            }
        }
    }
}

thread_local! {
    pub(super) static RECENT: std::cell::RefCell<Recent> = std::cell::RefCell::default();
}

#[inline]
pub(super) fn number(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp, formatted on the stack (one
/// allocation: the header value itself).
/// `None` past what RFC 3339 can show (year 9999), which only a faulty peer could send.
pub(super) fn rfc3339_seconds(secs: u64) -> Option<HeaderValue> {
    use std::fmt::Write;
    /// A fixed buffer that refuses (rather than panics on) text that does not fit.
    struct Stack {
        buf: [u8; 32],
        len: usize,
    }
    impl Write for Stack {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            self.buf
                .get_mut(self.len..end)
                .ok_or(std::fmt::Error)?
                .copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let at = UNIX_EPOCH.checked_add(Duration::from_secs(secs))?;
    let mut out = Stack {
        buf: [0; 32],
        len: 0,
    };
    write!(out, "{}", humantime::format_rfc3339_seconds(at)).ok()?;
    HeaderValue::from_bytes(&out.buf[..out.len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_rfc3339_in_whole_utc_seconds() {
        let text = |s| rfc3339_seconds(s).map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(text(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(text(1_700_000_000).as_deref(), Some("2023-11-14T22:13:20Z"));
        // Beyond what the format can show: no header rather than a panic (the year 10000
        // and later make the formatter fail).
        assert_eq!(
            text(253_402_300_799).as_deref(),
            Some("9999-12-31T23:59:59Z")
        );
        assert_eq!(text(253_402_300_800), None);
        assert_eq!(text(u64::MAX), None);
    }

    #[test]
    fn a_memo_gives_the_value_of_its_input_only() {
        let mut memo = Memo::default();
        assert_eq!(memo.get(600, number), "600");
        assert_eq!(memo.get(600, |_| unreachable!("remembered")), "600");
        assert_eq!(memo.get(599, number), "599");
        assert_eq!(memo.get(600, number), "600");
    }
}
