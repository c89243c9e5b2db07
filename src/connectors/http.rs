//! The HTTP client shared by vendor connectors: the rate limit and 429 pause, a record of every
//! call, `Retry-After`, transport error reasons without URLs, and status classification.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::limit::Limiter;
use super::{CallLog, ConnectorError, Fault, VendorCall};

/// The largest response body read from a vendor.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// How long a connector pauses after a 429 that carries no `Retry-After`.
pub const DEFAULT_429_PAUSE: Duration = Duration::from_secs(30);

/// A token a connector caches between calls (an OAuth2 access token, an Anaplan token).
pub trait CachedToken {
    /// The value sent with each call.
    fn secret(&self) -> &crate::config::Secret;
}

/// The token a connector's workers share. Whoever gets or renews it holds the lock meanwhile, so
/// concurrent workers wait for one login instead of each logging in.
pub struct TokenSlot<T>(tokio::sync::Mutex<Option<T>>);

impl<T> Default for TokenSlot<T> {
    fn default() -> Self {
        Self(tokio::sync::Mutex::new(None))
    }
}

impl<T: CachedToken> TokenSlot<T> {
    /// The slot, locked.
    pub async fn lock(&self) -> tokio::sync::MutexGuard<'_, Option<T>> {
        self.0.lock().await
    }

    /// Drops the cached token if it is still the one the vendor refused, so that the next call gets
    /// a fresh one (a token another worker got meanwhile stays).
    pub async fn forget(&self, refused: &crate::config::Secret) {
        let mut slot = self.0.lock().await;
        if slot
            .as_ref()
            .is_some_and(|t| t.secret().expose() == refused.expose())
        {
            *slot = None;
        }
    }
}

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
            Err((fault, reason)) => {
                calls.push(VendorCall {
                    operation: operation.to_string(),
                    http_status: None,
                    exit_code: None,
                    duration_ms,
                    error: Some(reason.clone()),
                    evidence: None,
                });
                Err(ConnectorError::new(fault, format!("{operation}: {reason}")))
            }
        }
    }
}

async fn read(request: reqwest::RequestBuilder) -> Result<HttpResponse, (Fault, String)> {
    let failed = |e: reqwest::Error| {
        let fault = if e.is_timeout() {
            Fault::Timeout
        } else {
            Fault::Transport
        };
        (fault, transport_reason(&e))
    };
    let mut response = request.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err((
                Fault::Malformed,
                format!("response body larger than {MAX_BODY_BYTES} bytes"),
            ));
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
    ConnectorError::new(
        Fault::Status {
            status: response.status,
            retry_after: after,
        },
        reason,
    )
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

/// What [`encode_component`] leaves as it is: RFC 3986's unreserved characters (ASCII letters,
/// digits, `-`, `.`, `_` and `~`).
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment, query value or form value: everything but RFC 3986's
/// unreserved characters becomes `%XX` of its UTF-8 bytes, so a space is `%20` (never `+`, which
/// means a plus sign in a URL path) and `/` cannot split a segment.
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, UNRESERVED).to_string()
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
        assert_eq!(encode_component("a b@c~é"), "a%20b%40c~%C3%A9");
        assert_eq!(encode_component("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(encode_component("../x%2e+"), "..%2Fx%252e%2B");
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
    fn body_excerpt_is_short_and_printable() {
        let body = format!("<html>\n{}</html>", "x".repeat(500));
        let e = body_excerpt(body.as_bytes());
        assert!(e.starts_with("<html> x"));
        assert!(e.ends_with('…'));
        assert!(e.chars().count() <= 201);
    }
}
