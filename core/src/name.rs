//! The one rule behind every name flowpack puts in keys and KFP documents.

/// Whether `s` is 1 to `max_len` ASCII letters, digits and bytes of `punct`, starting with a
/// letter or digit when `alnum_first`, and never with `.` (no hidden or relative names).
pub(crate) fn is_name(s: &str, max_len: usize, punct: &[u8], alnum_first: bool) -> bool {
    let Some(&first) = s.as_bytes().first() else {
        return false;
    };
    s.len() <= max_len
        && first != b'.'
        && (!alnum_first || first.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || punct.contains(&b))
}
