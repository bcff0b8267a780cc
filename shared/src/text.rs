//! Text cut to fit: a reason or an attribute value kept to a byte budget.

/// At most `max` bytes of `s` and an ellipsis, cut at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
