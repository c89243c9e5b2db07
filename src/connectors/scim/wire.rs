//! Reading SCIM answers (RFC 7644): lists, resources, SCIM errors inside success answers, Anaplan's
//! token answer, and the small value helpers the connector uses on them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::DATE;
use serde_json::Value;

use super::{
    ANAPLAN_DEFAULT_TOKEN_LIFETIME, ERROR_SCHEMA, SUMMARY_ACCESS_VALUES, SUMMARY_ACTIVE,
    TOKEN_REFRESH_MARGIN,
};
use crate::connectors::http::{HttpResponse, body_excerpt, status_error};
use crate::connectors::{ConnectorError, Fault, RemoteAccount};

/// A `ListResponse`.
pub(super) struct List {
    pub(super) total: usize,
    pub(super) resources: Vec<Value>,
}

/// The account as the worker keeps it (see [`ScimConnector::remote`]), counting the values of `access`.
pub(super) fn remote_account(user: &Value, id: &str, access: &str) -> RemoteAccount {
    let mut summary = BTreeMap::new();
    let active = match attr(user, "active").and_then(parse_bool) {
        Some(true) => "true",
        Some(false) => "false",
        None => "unknown",
    };
    summary.insert(SUMMARY_ACTIVE.to_string(), active.to_string());
    let count = attr(user, access)
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    summary.insert(SUMMARY_ACCESS_VALUES.to_string(), count.to_string());
    RemoteAccount {
        id: id.to_string(),
        summary,
        found_by: None,
    }
}

/// A non-success answer, classified by status (design §3) with the SCIM error's `scimType` and `detail`.
pub(super) fn http_error(response: &HttpResponse, op: &str) -> ConnectorError {
    let message = scim_error_message(&response.body).or_else(|| {
        let excerpt = body_excerpt(&response.body);
        (!excerpt.is_empty()).then_some(excerpt)
    });
    status_error(response, op, message.as_deref())
}

/// What each reader of a SCIM answer makes of one answer: a list (with the checks a lookup applies to
/// each returned user), a resource, an optional resource, a non-success answer, and an Anaplan token
/// answer read at `now`. Each entry is a short description of what was read, or the classified error.
/// For the fuzz target (`fuzz/`) and its regression tests; the connector calls the readers directly.
#[doc(hidden)]
pub fn read_answers(
    response: &HttpResponse,
    now: DateTime<Utc>,
) -> Vec<Result<String, ConnectorError>> {
    let describe = |user: &Value| -> Result<String, ConnectorError> {
        let id = user_id(user, "read")?;
        let account = remote_account(user, id, "entitlements");
        Ok(format!("user {} {:?}", account.id, account.summary))
    };
    let list = read_list(response, "list").and_then(|list| {
        let users = list
            .resources
            .iter()
            .map(|u| {
                let named = attr(u, "userName").and_then(Value::as_str).is_some();
                describe(u).map(|d| format!("{d} named={named}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "list of {} ({} returned): {users:?}",
            list.total,
            list.resources.len()
        ))
    });
    let resource = read_resource(response, "resource").and_then(|u| describe(&u));
    let optional = read_optional_resource(response, "optional").and_then(|u| match u {
        Some(u) => describe(&u),
        None => Ok("no body".into()),
    });
    let error = Err(http_error(response, "error"));
    let scim_type = Ok(format!("scimType {:?}", scim_type(&response.body)));
    let token = token_answer(response, "token", now)
        .map(|(value, lifetime)| format!("token of {} bytes for {lifetime:?}", value.len()));
    vec![list, resource, optional, error, scim_type, token]
}

/// The body as JSON, or a retryable error: a proxy's HTML page or a cut-off answer may be gone next time.
pub(super) fn read_json(response: &HttpResponse, op: &str) -> Result<Value, ConnectorError> {
    serde_json::from_slice(&response.body).map_err(|_| {
        ConnectorError::new(
            Fault::Malformed,
            format!(
                "{op}: HTTP {} but the body is not JSON (Content-Type {:?}): {}",
                response.status,
                response.content_type(),
                body_excerpt(&response.body)
            ),
        )
    })
}

pub(super) fn read_list(response: &HttpResponse, op: &str) -> Result<List, ConnectorError> {
    let body = read_json(response, op)?;
    if let Some(e) = error_in_body(&body, op) {
        return Err(e);
    }
    let not_a_list = || {
        ConnectorError::new(
            Fault::Malformed,
            format!(
                "{op}: HTTP {} but the body is not a SCIM ListResponse: {}",
                response.status,
                body_excerpt(&response.body)
            ),
        )
    };
    if !body.is_object() {
        return Err(not_a_list());
    }
    let total = attr(&body, "totalResults").map(|t| t.as_u64());
    let resources = attr(&body, "Resources").map(|r| r.as_array());
    let (total, resources) = match (total, resources) {
        (None, None) | (Some(None), _) | (_, Some(None)) => return Err(not_a_list()),
        (total, resources) => (
            total.flatten().unwrap_or(0),
            resources.flatten().cloned().unwrap_or_default(),
        ),
    };
    if resources.iter().any(|r| !r.is_object()) {
        return Err(not_a_list());
    }
    Ok(List {
        total: usize::try_from(total).unwrap_or(usize::MAX),
        resources,
    })
}

/// A single resource (a User).
pub(super) fn read_resource(response: &HttpResponse, op: &str) -> Result<Value, ConnectorError> {
    let body = read_json(response, op)?;
    if let Some(e) = error_in_body(&body, op) {
        return Err(e);
    }
    if !body.is_object() || attr(&body, "id").is_none() {
        return Err(ConnectorError::new(
            Fault::Malformed,
            format!(
                "{op}: HTTP {} but the body is not a SCIM resource: {}",
                response.status,
                body_excerpt(&response.body)
            ),
        ));
    }
    Ok(body)
}

/// A resource when the answer carries a body (a 200 to PATCH), `None` for an empty body.
pub(super) fn read_optional_resource(
    response: &HttpResponse,
    op: &str,
) -> Result<Option<Value>, ConnectorError> {
    if response.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    read_resource(response, op).map(Some)
}

pub(super) fn user_id<'a>(user: &'a Value, op: &str) -> Result<&'a str, ConnectorError> {
    attr(user, "id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            ConnectorError::new(Fault::Malformed, format!("{op}: a returned user has no id"))
        })
}

/// A SCIM error (RFC 7644 §3.12) inside a success answer, classified by its own `status`.
pub(super) fn error_in_body(body: &Value, op: &str) -> Option<ConnectorError> {
    let is_error = attr(body, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u.as_str() == Some(ERROR_SCHEMA)))
        || (attr(body, "id").is_none()
            && attr(body, "status").is_some()
            && attr(body, "detail").is_some());
    if !is_error {
        return None;
    }
    let status = attr(body, "status").and_then(|s| match s {
        Value::String(s) => s.trim().parse::<u16>().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        _ => None,
    });
    let message = error_message(body).unwrap_or_else(|| "no detail".into());
    Some(match status {
        Some(status) => ConnectorError::new(
            Fault::Status {
                status,
                retry_after: None,
            },
            format!("{op}: the service answered success with a SCIM error {status}: {message}"),
        ),
        None => ConnectorError::new(
            Fault::NotApplied,
            format!("{op}: the service answered success with a SCIM error: {message}"),
        ),
    })
}

/// `scimType: detail` (or either) of a SCIM error body.
pub(super) fn scim_error_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    error_message(&body)
}

pub(super) fn error_message(body: &Value) -> Option<String> {
    let text = |name: &str| {
        attr(body, name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    match (text("scimType"), text("detail")) {
        (Some(t), Some(d)) => Some(format!("{t}: {d}")),
        (t, d) => t.or(d),
    }
}

pub(super) fn scim_type(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    attr(&body, "scimType")
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub(super) fn partial(op: &str) -> ConnectorError {
    ConnectorError::new(
        Fault::NotApplied,
        format!("{op}: HTTP 207: the service applied the change only in part"),
    )
}

/// A top-level attribute; SCIM attribute names are case-insensitive (RFC 7643 §2.1).
pub(super) fn attr<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    let object = value.as_object()?;
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// A SCIM boolean; some services send `"True"`/`"false"` strings.
pub(super) fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

pub(super) fn summary<'a>(account: &'a RemoteAccount, key: &str) -> Option<&'a str> {
    account.summary.get(key).map(String::as_str)
}

/// Whether two identifiers are the same ignoring case (userName, externalId and Anaplan's id are not
/// case-exact).
pub(super) fn same_value(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

pub(super) fn margin() -> chrono::Duration {
    chrono::Duration::from_std(TOKEN_REFRESH_MARGIN).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------------------

/// `attribute eq "value"` with the value written as a JSON string (RFC 7644 §3.4.2.2: compValue is JSON),
/// so `"` and `\` and control characters are escaped.
pub fn eq_filter(attribute: &str, value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_else(|_| format!("\"{value}\""));
    format!("{attribute} eq {quoted}")
}

/// Anaplan's token answer: the token and how long it lasts from `now`, or the classified failure.
pub(super) fn token_answer(
    response: &HttpResponse,
    op: &str,
    now: DateTime<Utc>,
) -> Result<(String, Duration), ConnectorError> {
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|b| attr(b, name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    // Anaplan's own error shape: `status` (FAILURE_BAD_CREDENTIAL, ...) and `statusMessage`.
    let message = match (field("status"), field("statusMessage")) {
        (Some(s), Some(m)) => Some(format!("{s}: {m}")),
        (s, m) => s.or(m),
    };
    // A success status carrying Anaplan's failure shape is a refused login all the same.
    let refused_in_body = response.is_success()
        && parsed
            .as_ref()
            .is_some_and(|b| attr(b, "tokenInfo").is_none())
        && field("status").is_some_and(|s| s.starts_with("FAILURE"));
    if !response.is_success() || refused_in_body {
        if matches!(response.status, 401 | 403) || refused_in_body {
            let detail = message.map(|m| format!(": {m}")).unwrap_or_default();
            return Err(ConnectorError::new(
                Fault::CredentialRefused,
                format!(
                    "{op}: HTTP {}{detail}: Anaplan refused the login; check the connector's auth credentials",
                    response.status
                ),
            ));
        }
        return Err(status_error(response, op, message.as_deref()));
    }
    // No body excerpt here: a cut-off token answer would put the token itself into the reason.
    let malformed = |what: &str| {
        ConnectorError::new(
            Fault::Malformed,
            format!("{op}: HTTP {} but {what}", response.status),
        )
    };
    let body = parsed.ok_or_else(|| malformed("the body is not JSON"))?;
    let info = attr(&body, "tokenInfo").ok_or_else(|| match &message {
        Some(m) => malformed(&format!("there is no tokenInfo (Anaplan says {m})")),
        None => malformed("there is no tokenInfo"),
    })?;
    let value = attr(info, "tokenValue")
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConnectorError::new(
                Fault::Malformed,
                format!("{op}: HTTP {} but no tokenValue", response.status),
            )
        })?;
    let server_now = response
        .headers
        .get(DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.with_timezone(&Utc));
    let expires_at = attr(info, "expiresAt").and_then(Value::as_f64);
    Ok((
        value.to_string(),
        token_lifetime(expires_at, server_now, now),
    ))
}

/// How long a token lasts: `expires_at_ms` measured against the service's own clock (its `Date`) when it
/// sent one, so clock skew between us and the service does not matter; implausible values fall back to
/// [`ANAPLAN_DEFAULT_TOKEN_LIFETIME`].
pub(super) fn token_lifetime(
    expires_at_ms: Option<f64>,
    server_now: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    let Some(ms) = expires_at_ms.filter(|ms| ms.is_finite()) else {
        return ANAPLAN_DEFAULT_TOKEN_LIFETIME;
    };
    let reference = server_now.unwrap_or(now).timestamp_millis() as f64;
    let left = (ms - reference) / 1000.0;
    let plausible = TOKEN_REFRESH_MARGIN.as_secs_f64() + 60.0..=24.0 * 3600.0;
    if plausible.contains(&left) {
        Duration::from_secs_f64(left)
    } else {
        ANAPLAN_DEFAULT_TOKEN_LIFETIME
    }
}
