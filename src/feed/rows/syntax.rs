//! The syntax of identifiers: employee ids, and the email and UPN addresses.

/// ASCII letters, digits, '.', '_', '-', starting with a letter or digit: ids end up in URLs, logs and
/// SQL, so anything that could be read as syntax there is refused at the door.
pub(super) fn is_employee_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The email/UPN syntax of the rules: deliberately narrower than RFC 5322 (no quoted local parts, no
/// IDN), because the address is matched against SaaS accounts, not delivered to.
pub(super) fn is_address(address: &str) -> bool {
    if !address.is_ascii() {
        return false;
    }
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_graphic());
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    // split_once takes the first '@', so a second one lands in the domain, whose labels refuse it.
    local_ok && domain.contains('.') && domain.split('.').all(label_ok)
}
