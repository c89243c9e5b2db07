//! JSON pointers (RFC 6901): parsing the configured ones, escaping the ones a record is reported at.

use std::borrow::Cow;

/// Splits a JSON pointer (RFC 6901) into its unescaped reference tokens: `""` is the whole value,
/// otherwise it starts with '/', and '~' may only appear as `~0` ('~') or `~1` ('/').
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "{pointer:?} is not a JSON pointer: it must start with '/' (e.g. \"/Employee_ID\")"
        ));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(format!(
                                "{pointer:?} is not a JSON pointer: '~' must be followed by 0 or 1"
                            ));
                        }
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Escapes one reference token for a JSON pointer: '~' as `~0`, '/' as `~1`.
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index token: "0" or digits without a leading zero (RFC 6901 §4).
pub(super) fn array_index(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    let canonical = bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes.len() == 1 || bytes.first() != Some(&b'0'));
    if canonical { token.parse().ok() } else { None }
}
