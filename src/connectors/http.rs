//! The HTTP client shared by vendor connectors: the rate limit and 429 pause, a record of every
//! call, `Retry-After`, transport error reasons without URLs, and status classification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::limit::Limiter;
use super::{CallLog, ConnectorError, VendorCall, classify_http_status};

/// The largest response body read from a vendor.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a connector pauses after a 429 that carries no `Retry-After`.
pub const DEFAULT_429_PAUSE: Duration = Duration::from_secs(30);

/// A vendor's answer, read whole.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body bytes (at most [`MAX_BODY_BYTES`]).
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `Content-Type` without parameters, lower-cased.
    pub fn content_type(&self) -> String {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// One connector's HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    limiter: Arc<Limiter>,
}

impl HttpClient {
    /// A client with a whole-request `timeout`, limited by `limiter`.
    pub fn new(timeout: Duration, limiter: Arc<Limiter>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, limiter })
    }

    /// The underlying client, to build requests.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The connector's limiter.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Sends a request after the limiter allows it, reads the whole answer, and records the call as
    /// `operation` (a label without personal data, e.g. `GET /Users`). A 429 pauses every worker of
    /// this connector for its `Retry-After`. Transport failures are retryable errors; any HTTP
    /// status comes back as a response for the connector to interpret.
    pub async fn send(
        &self,
        calls: &CallLog,
        operation: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<HttpResponse, ConnectorError> {
        self.limiter.acquire().await;
        let started = Instant::now();
        let result = read(request).await;
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match result {
            Ok(response) => {
                calls.push(VendorCall {
                    operation: operation.to_string(),
                    http_status: Some(response.status),
                    exit_code: None,
                    duration_ms,
                    error: None,
                    evidence: None,
                });
                if response.status == 429 {
                    let wait =
                        retry_after(&response.headers, Utc::now()).unwrap_or(DEFAULT_429_PAUSE);
                    self.limiter.pause(wait);
                }
                Ok(response)
            }
            Err(reason) => {
                calls.push(VendorCall {
                    operation: operation.to_string(),
                    http_status: None,
                    exit_code: None,
                    duration_ms,
                    error: Some(reason.clone()),
                    evidence: None,
                });
                Err(ConnectorError::retryable(
                    format!("{operation}: {reason}"),
                    None,
                ))
            }
        }
    }
}

async fn read(request: reqwest::RequestBuilder) -> Result<HttpResponse, String> {
    let mut response = request.send().await.map_err(|e| transport_reason(&e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_reason(&e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(format!("response body larger than {MAX_BODY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// A transport error in words, without the URL (which can carry personal data or credentials).
pub fn transport_reason(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut source = e.source();
    let mut deepest = None;
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the response failed"
    } else if e.is_request() {
        "sending the request failed"
    } else {
        "HTTP error"
    };
    match deepest {
        Some(d) => format!("{kind}: {d}"),
        None => kind.to_string(),
    }
}

/// The wait a vendor asks for in `Retry-After`: seconds, or an HTTP date (RFC 9110 IMF-fixdate).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The error for a non-success answer: classified by status (design §3) with the vendor's own
/// message, and its `Retry-After` when it retries.
pub fn status_error(
    response: &HttpResponse,
    operation: &str,
    vendor_message: Option<&str>,
) -> ConnectorError {
    let after = retry_after(&response.headers, Utc::now());
    let reason = match vendor_message.filter(|m| !m.trim().is_empty()) {
        Some(message) => format!("{operation}: HTTP {}: {}", response.status, message.trim()),
        None => format!("{operation}: HTTP {}", response.status),
    };
    ConnectorError {
        class: classify_http_status(response.status, after),
        reason,
    }
}

/// The start of a body as printable text, for a reason when the body is not what was expected.
pub fn body_excerpt(body: &[u8]) -> String {
    const KEEP: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(KEEP)]);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if body.len() > KEEP {
        out.push('…');
    }
    out.trim().to_string()
}

/// Percent-encodes one path segment or form value the way PHP's `urlencode` does (ASCII letters,
/// digits, `-`, `_` and `.` stay; everything else becomes `%XX` of its UTF-8 bytes), except that a
/// space is `%20`, since `+` means a plus sign in a URL path.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Replaces every occurrence of `account` (personal data) in a vendor's text with `{account}`, so
/// the text can go to the audit log and `last_error`.
pub fn redact_account(text: &str, account: &str) -> String {
    if account.is_empty() {
        return text.to_string();
    }
    text.replace(account, "{account}")
        .replace(&encode_component(account), "{account}")
}

/// Credentials to mask in a vendor's text before it becomes a reason (and so reaches logs,
/// `last_error` and the audit log): a service that refuses a request may repeat what it received.
/// Each secret is matched as written and percent-encoded, a Basic `user:password` pair as the
/// Base64 sent in its header, all ignoring ASCII case; tokens issued at run time are added as they
/// arrive (the most recent few are kept). A user name is masked only as a whole word, since it may
/// be an ordinary word ("deprov" in "deprovision").
#[derive(Debug, Default)]
pub struct SecretMask {
    /// Each form and whether it is masked only as a whole word.
    fixed: Vec<(String, bool)>,
    issued: std::sync::Mutex<std::collections::VecDeque<String>>,
}

/// Issued tokens a [`SecretMask`] keeps.
const KEEP_ISSUED: usize = 8;

impl SecretMask {
    /// A mask of nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret (as written and percent-encoded), masked wherever it appears.
    pub fn with_secret(mut self, value: &str) -> Self {
        self.add(value.to_string(), false);
        self.add(encode_component(value), false);
        self
    }

    /// Adds a user name (as written and percent-encoded), masked where it stands as a whole word.
    pub fn with_user(mut self, value: &str) -> Self {
        self.add(value.to_string(), true);
        self.add(encode_component(value), true);
        self
    }

    /// Adds the Base64 form of a Basic `user:password` pair (the parts themselves are added with
    /// [`SecretMask::with_user`] and [`SecretMask::with_secret`]).
    pub fn with_basic(mut self, user: &str, password: &str) -> Self {
        self.add(basic_credentials(user, password), false);
        self
    }

    fn add(&mut self, form: String, whole_word: bool) {
        if !form.is_empty() && !self.fixed.iter().any(|(f, _)| *f == form) {
            self.fixed.push((form, whole_word));
        }
    }

    /// Adds a token the vendor issued.
    pub fn remember(&self, token: &str) {
        if token.is_empty() {
            return;
        }
        if let Ok(mut issued) = self.issued.lock() {
            if !issued.iter().any(|t| t == token) {
                issued.push_back(token.to_string());
            }
            while issued.len() > KEEP_ISSUED {
                issued.pop_front();
            }
        }
    }

    /// `text` with every known credential replaced by `<redacted>`.
    pub fn mask(&self, text: &str) -> String {
        let mut forms = self.fixed.clone();
        if let Ok(issued) = self.issued.lock() {
            forms.extend(issued.iter().map(|t| (t.clone(), false)));
        }
        // Longest first, so a Base64 pair is masked whole before a secret inside it.
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        forms
            .iter()
            .fold(text.to_string(), |out, (form, whole_word)| {
                replace_ignoring_case(&out, form, *whole_word)
            })
    }

    /// The error with its reason masked.
    pub fn error(&self, mut e: ConnectorError) -> ConnectorError {
        e.reason = self.mask(&e.reason);
        e
    }
}

/// Replaces `needle` in `text` with `<redacted>`, ignoring ASCII case; with `whole_word`, only
/// where no letter or digit touches it.
fn replace_ignoring_case(text: &str, needle: &str, whole_word: bool) -> String {
    // ASCII lower-casing keeps byte offsets, so matches found in the copy apply to the original.
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in lower_text.match_indices(&lower_needle) {
        let end = at + needle.len();
        if at < rest
            || (whole_word
                && (is_word(text[..at].chars().next_back()) || is_word(text[end..].chars().next())))
        {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str("<redacted>");
        rest = end;
    }
    out.push_str(&text[rest..]);
    out
}

/// The Base64 of `user:password` as an `Authorization: Basic` header carries it (RFC 7617), without
/// the `=` padding, so that it also matches where a vendor repeats it without.
pub fn basic_credentials(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::new();
    for chunk in input.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// A vendor's own error message from a body: a bare JSON string, or an object's `message`,
/// `error_description`, `error` or `errors` (a string or a list of strings); else plain text.
/// Shortened to a printable excerpt.
pub fn vendor_message(body: &[u8]) -> Option<String> {
    fn text(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            serde_json::Value::Array(items) => {
                let parts: Vec<&str> = items.iter().filter_map(|i| i.as_str()).collect();
                (!parts.is_empty()).then(|| parts.join(", "))
            }
            _ => None,
        }
    }
    let found = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => ["message", "error_description", "error", "errors"]
            .iter()
            .find_map(|key| map.get(*key).and_then(text)),
        Ok(value) => text(&value),
        Err(_) => {
            let excerpt = body_excerpt(body);
            (!excerpt.is_empty()).then_some(excerpt)
        }
    }?;
    Some(body_excerpt(found.as_bytes()))
}

/// How long a connector waits before its one retry after the vendor refused its credentials.
pub const AUTH_RETRY_DELAY: Duration = Duration::from_secs(5 * 60);

/// Remembers which removals already had their credentials refused (401/403), so that a refusal is
/// retried once, after [`AUTH_RETRY_DELAY`] (a credential rotation may be under way), and is
/// permanent the next time. Kept in memory: after a restart a removal gets its one retry again.
#[derive(Debug, Default)]
pub struct AuthStrikes(std::sync::Mutex<std::collections::HashSet<i64>>);

impl AuthStrikes {
    /// The error for a refusal of `removal_id`'s call; `reason` says what was refused.
    pub fn refused(&self, removal_id: i64, reason: String) -> ConnectorError {
        let first = self
            .0
            .lock()
            .map(|mut seen| seen.insert(removal_id))
            .unwrap_or(true);
        if first {
            ConnectorError::retryable(
                format!("{reason} (retrying once, in case the credentials are being rotated)"),
                Some(AUTH_RETRY_DELAY),
            )
        } else {
            ConnectorError::permanent(format!(
                "{reason}; refused again after a retry: fix the connector's credentials or permissions, then run `offboard retry`"
            ))
        }
    }

    /// Forgets a removal's refusal once one of its calls was accepted.
    pub fn clear(&self, removal_id: i64) {
        if let Ok(mut seen) = self.0.lock() {
            seen.remove(&removal_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Mon, 23 Nov 2026 10:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Mon, 23 Nov 2026 09:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn components_are_encoded_like_php_urlencode_but_with_percent_20() {
        assert_eq!(
            encode_component("urn:collab:person:example.org:j.doe_example.org"),
            "urn%3Acollab%3Aperson%3Aexample.org%3Aj.doe_example.org"
        );
        assert_eq!(encode_component("a b@c~é"), "a%20b%40c%7E%C3%A9");
    }

    #[test]
    fn vendor_messages_are_found_in_the_usual_shapes() {
        assert_eq!(
            vendor_message(br#""Deprovision API is disabled""#).as_deref(),
            Some("Deprovision API is disabled")
        );
        assert_eq!(
            vendor_message(br#"{"errors":["a","b"]}"#).as_deref(),
            Some("a, b")
        );
        assert_eq!(
            vendor_message(br#"{"error":"invalid_client"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(vendor_message(b"busy").as_deref(), Some("busy"));
        assert_eq!(vendor_message(b"{}"), None);
        assert_eq!(vendor_message(b""), None);
    }

    #[test]
    fn the_account_is_redacted_plain_and_encoded() {
        assert_eq!(
            redact_account("user a@b.org (a%40b.org) not found", "a@b.org"),
            "user {account} ({account}) not found"
        );
    }

    #[test]
    fn a_credential_refusal_is_retried_once_then_permanent() {
        let strikes = AuthStrikes::default();
        let first = strikes.refused(7, "HTTP 401".into());
        assert_eq!(
            first.class,
            super::super::ErrorClass::Retryable {
                after: Some(AUTH_RETRY_DELAY)
            }
        );
        let second = strikes.refused(7, "HTTP 401".into());
        assert_eq!(second.class, super::super::ErrorClass::Permanent);
        strikes.clear(7);
        assert!(matches!(
            strikes.refused(7, "HTTP 401".into()).class,
            super::super::ErrorClass::Retryable { .. }
        ));
    }

    #[test]
    fn basic_credentials_are_the_header_base64_without_padding() {
        // base64("deprov:oc-password-91f2") is "ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI=".
        assert_eq!(
            basic_credentials("deprov", "oc-password-91f2"),
            "ZGVwcm92Om9jLXBhc3N3b3JkLTkxZjI"
        );
        assert_eq!(basic_credentials("a", "b"), "YTpi");
        assert_eq!(basic_credentials("ab", "c"), "YWI6Yw");
    }

    #[test]
    fn the_mask_hides_secrets_in_every_form_they_travel_in() {
        let mask = SecretMask::new()
            .with_secret("S3cret/Pw")
            .with_user("svc")
            .with_basic("svc", "S3cret/Pw");
        mask.remember("issued-token-1");
        let text =
            "got s3cret/pw, S3cret%2FPw, Basic c3ZjOlMzY3JldC9Qdw== and Bearer ISSUED-TOKEN-1";
        assert_eq!(
            mask.mask(text),
            "got <redacted>, <redacted>, Basic <redacted>== and Bearer <redacted>"
        );
        let e = mask.error(ConnectorError::permanent("HTTP 401: bad svc for svcs"));
        assert_eq!(
            e.reason, "HTTP 401: bad <redacted> for svcs",
            "a user name only as a whole word"
        );
    }

    #[test]
    fn body_excerpt_is_short_and_printable() {
        let body = format!("<html>\n{}</html>", "x".repeat(500));
        let e = body_excerpt(body.as_bytes());
        assert!(e.starts_with("<html> x"));
        assert!(e.ends_with('…'));
        assert!(e.chars().count() <= 201);
    }
}
