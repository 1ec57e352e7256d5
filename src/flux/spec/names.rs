//! Name rules FluxOS applies to app names, component names, image references and
//! domains, shared by the generator and the validator.

/// A v8 app name: `^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$`, at most 63 characters,
/// not starting with `flux` or `zel`, not `watchtower`.
pub fn check_app_name(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid {
        return Err(
            "1 to 63 letters, digits and hyphens, not starting or ending with a hyphen".into(),
        );
    }
    if has_reserved_prefix(name) {
        return Err("a name that does not start with flux or zel".into());
    }
    if name.eq_ignore_ascii_case("watchtower") {
        return Err("a name other than watchtower".into());
    }
    Ok(())
}

pub(super) fn has_reserved_prefix(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("flux") || lower.starts_with("zel")
}

/// An image reference with an explicit tag: `[registry[:port]/]path:tag`, at most 200
/// characters, lower-case path, no digest.
pub fn check_repotag(repotag: &str) -> Result<(), String> {
    const EXPECTED: &str = "an image with an explicit tag, such as repram/repram-flux:0.1.0 \
                            (lower-case path, at most 200 characters)";
    if repotag.is_empty() || repotag.len() > 200 || repotag.contains('@') {
        return Err(EXPECTED.into());
    }
    let last_slash = repotag.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = repotag[last_slash..].rfind(':').map(|i| i + last_slash) else {
        return Err(EXPECTED.into());
    };
    let (path, tag) = (&repotag[..colon], &repotag[colon + 1..]);
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    let path_ok = !path.is_empty()
        && !path.starts_with('/')
        && !path.ends_with('/')
        && !path.contains("//")
        && path.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/' | ':')
        });
    if tag_ok && path_ok {
        Ok(())
    } else {
        Err(EXPECTED.into())
    }
}

/// A lower-case domain name with at least two labels.
pub(super) fn is_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// `s` on one line, at most 80 characters.
pub(super) fn shown(s: &str) -> String {
    crate::text::one_line(s, 80)
}
