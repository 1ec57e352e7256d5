//! Text helpers for messages that quote untrusted input.

/// `value` made safe to quote in a one-line message: control characters escaped, at most
/// `max` characters (then `…`). For echoing untrusted input in errors and logs.
pub fn one_line(value: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
