//! The `panopto` connector: finds the leaver with `IUserManagement.GetUserByKey` and deletes them
//! with `IUserManagement.DeleteUsers` over Panopto's SOAP 1.1 PublicAPI (4.6).
//!
//! Every call carries an `AuthenticationInfo` (children in schema order: `AuthCode`, `Password`,
//! `UserKey`) for the API user, either with its password (a Panopto-internal account) or with an
//! `AuthCode` derived from the identity provider's application key.
//!
//! Outcomes and classification:
//! - `GetUserByKey` answering no user, a nil user or the all-zero GUID: not found (already absent),
//!   after trying each configured fallback prefix in turn.
//! - An authentication or authorisation fault (or HTTP 401/403) is a refused credential, which the
//!   worker treats as every connector's (`connectors::classify`). A fault that says the user does
//!   not exist means already absent for `DeleteUsers`; for `GetUserByKey`, which reports a missing
//!   leaver as an empty answer, such a fault can only be about the API user, so it is handled as an
//!   authentication fault. A fault saying the server could not read the request is a rejected
//!   request (a bug or an API mismatch); every other fault follows its HTTP status.
//! - A 200 that is not a SOAP envelope is reported as "not a SOAP response" (malformed).
//!
//! Reasons never carry the password, the application key or the AuthCode, and the leaver's user key
//! is masked in the server's messages.

pub mod config;
pub mod soap;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use quick_xml::Writer;
use reqwest::header::CONTENT_TYPE;
use sha1::{Digest, Sha1};

use self::soap::{Envelope, Fault as SoapFault, ReadError};
use super::http::{HttpClient, HttpResponse, body_excerpt, retry_after, status_error};
use super::limit::Limiter;
use super::mask::Mask;
use super::{
    Bound,
    BoxFuture, CallLog, ConnectorError, Fault, RemoteAccount, RemovalOutcome, Resolution, Target,
};
use crate::config::Rate;
use crate::connectors::panopto::config::{PanoptoConfig, PanoptoCredential};

/// Namespace of the operation elements and their direct children.
pub const TEMPURI_NS: &str = "http://tempuri.org/";
/// Namespace of the data contracts (`AuthenticationInfo`, `User`).
pub const V40_NS: &str =
    "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";
/// Namespace of `ArrayOfguid`.
pub const ARRAYS_NS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
/// The GUID Panopto uses for "no user".
pub const EMPTY_GUID: &str = "00000000-0000-0000-0000-000000000000";
/// Calls per second when the connector sets no `rate` (Panopto publishes no SOAP limit).
pub const DEFAULT_RATE: Rate = Rate {
    calls: 5,
    per: Duration::from_secs(1),
};

/// Longest piece of a server message kept in a reason.
const MAX_MESSAGE_CHARS: usize = 300;

/// The two UserManagement operations the connector calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `IUserManagement.GetUserByKey`.
    GetUserByKey,
    /// `IUserManagement.DeleteUsers`.
    DeleteUsers,
}

impl Operation {
    /// The operation (and request element) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::GetUserByKey => "GetUserByKey",
            Self::DeleteUsers => "DeleteUsers",
        }
    }

    /// The label in the call records (no user keys: they are personal data).
    pub fn label(self) -> &'static str {
        match self {
            Self::GetUserByKey => "SOAP GetUserByKey",
            Self::DeleteUsers => "SOAP DeleteUsers",
        }
    }

    /// The `SOAPAction` header value, quoted as WCF expects.
    pub fn soap_action(self) -> String {
        format!("\"http://tempuri.org/IUserManagement/{}\"", self.name())
    }

    fn response_name(self) -> &'static str {
        match self {
            Self::GetUserByKey => "GetUserByKeyResponse",
            Self::DeleteUsers => "DeleteUsersResponse",
        }
    }
}

/// The AuthCode of an identity-provider user: the uppercase hex SHA-1 of
/// `user_key + "@" + host.lowercase + "|" + application_key.lowercase` (the user key as is).
pub fn auth_code(user_key: &str, host: &str, application_key: &str) -> String {
    let payload = format!(
        "{user_key}@{}|{}",
        host.to_lowercase(),
        application_key.to_lowercase()
    );
    hex::encode_upper(Sha1::digest(payload.as_bytes()))
}

/// What goes into `AuthenticationInfo` besides the user key.
enum Credential {
    Password(String),
    AuthCode(String),
}

/// A failed call, before the connector's rules turn it into a [`ConnectorError`].
#[derive(Debug)]
enum Failure {
    /// An authentication or authorisation failure (fault or HTTP 401/403).
    Auth(String),
    /// A fault saying the user does not exist.
    NoSuchUser(String),
    /// Anything else, already classified.
    Error(ConnectorError),
}

/// The Panopto SOAP connector.
pub struct PanoptoConnector {
    endpoint: String,
    api_user_key: String,
    credential: Credential,
    /// The credentials, masked in every reason.
    mask: Mask,
    fallback_prefixes: Vec<String>,
    http: HttpClient,
}

impl PanoptoConnector {
    /// A connector for this config; every call takes one call from `limiter`.
    pub fn new(config: PanoptoConfig, limiter: Arc<Limiter>) -> anyhow::Result<Self> {
        let http = HttpClient::new(config.timeout, limiter)?;
        let (credential, secrets) = match &config.credential {
            PanoptoCredential::Password(password) => (
                Credential::Password(password.expose().to_string()),
                vec![password.expose().to_string()],
            ),
            PanoptoCredential::ApplicationKey(key) => {
                let code = auth_code(&config.api_user_key, &config.host, key.expose());
                (
                    Credential::AuthCode(code.clone()),
                    vec![key.expose().to_string(), key.expose().to_lowercase(), code],
                )
            }
        };
        // As sent (XML-escaped in the envelope) and as written.
        let mask = secrets.iter().fold(Mask::new(), |mask, secret| {
            mask.with_secret(secret)
                .with_secret(&quick_xml::escape::escape(secret.as_str()))
        });
        Ok(Self {
            endpoint: config.endpoint,
            api_user_key: config.api_user_key,
            credential,
            mask,
            fallback_prefixes: config.fallback_prefixes,
            http,
        })
    }

    /// The `GetUserByKey` request envelope for `user_key`.
    pub fn get_user_by_key_request(&self, user_key: &str) -> Result<String, ConnectorError> {
        self.request(Operation::GetUserByKey, |w| {
            soap::text_element(w, "userKey", user_key)
        })
    }

    /// The `DeleteUsers` request envelope for one user id.
    pub fn delete_users_request(&self, user_id: &str) -> Result<String, ConnectorError> {
        self.request(Operation::DeleteUsers, |w| {
            w.create_element("userIds")
                .write_inner_content(|w| soap::text_element(w, "arr:guid", user_id))?;
            Ok(())
        })
    }

    /// An envelope holding `<Operation xmlns="http://tempuri.org/">`, its `auth` and then what `rest` writes.
    fn request(
        &self,
        operation: Operation,
        rest: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>,
    ) -> Result<String, ConnectorError> {
        soap::envelope(|w| {
            let mut element = w
                .create_element(operation.name())
                .with_attribute(("xmlns", TEMPURI_NS))
                .with_attribute(("xmlns:p", V40_NS));
            if operation == Operation::DeleteUsers {
                element = element.with_attribute(("xmlns:arr", ARRAYS_NS));
            }
            element.write_inner_content(|w| {
                // The schema's sequence is AuthCode, Password, UserKey; WCF drops members out of order.
                w.create_element("auth").write_inner_content(|w| {
                    match &self.credential {
                        Credential::AuthCode(code) => soap::text_element(w, "p:AuthCode", code)?,
                        Credential::Password(password) => {
                            soap::text_element(w, "p:Password", password)?
                        }
                    }
                    soap::text_element(w, "p:UserKey", &self.api_user_key)
                })?;
                rest(w)
            })?;
            Ok(())
        })
        .map_err(|e| {
            ConnectorError::new(
                Fault::Unsendable,
                format!("building the SOAP request failed: {e}"),
            )
        })
    }

    /// Sends one call and reads its answer; `personal` are values to mask in server messages.
    async fn call(
        &self,
        calls: &CallLog,
        operation: Operation,
        envelope: String,
        personal: &[&str],
    ) -> Result<soap::Element, Failure> {
        let request = self
            .http
            .client()
            .post(&self.endpoint)
            .header(CONTENT_TYPE, soap::CONTENT_TYPE)
            .header("SOAPAction", operation.soap_action())
            .body(envelope);
        let response = self
            .http
            .send(calls, operation.label(), request)
            .await
            .map_err(Failure::Error)?;
        // Server messages and body excerpts may echo credentials or the user key: mask every reason.
        let result = self
            .interpret(operation, &response, personal)
            .map_err(|failure| {
                failure.map_reason(|reason| {
                    self.mask.mask_with_person(reason, personal.iter().copied())
                })
            });
        if let Err(failure) = &result {
            note_call_error(calls, failure.reason());
        }
        result
    }

    fn interpret(
        &self,
        operation: Operation,
        response: &HttpResponse,
        personal: &[&str],
    ) -> Result<soap::Element, Failure> {
        let label = operation.label();
        if response.status == 429 {
            // Whatever the body says, the Retry-After is what matters.
            return Err(Failure::Error(status_error(response, label, None)));
        }
        match soap::read_envelope(&response.body) {
            Ok(Envelope::Fault(fault)) => {
                Err(self.fault_failure(operation, response, &fault, personal))
            }
            Ok(Envelope::Response(element)) if response.is_success() => {
                if element.is(Some(TEMPURI_NS), operation.response_name()) {
                    Ok(element)
                } else {
                    Err(Failure::Error(ConnectorError::new(
                        Fault::Malformed,
                        format!(
                            "{label}: unexpected response element <{}> (expected {})",
                            element.name,
                            operation.response_name()
                        ),
                    )))
                }
            }
            _ if matches!(response.status, 401 | 403) => {
                Err(Failure::Auth(format!("{label}: HTTP {}", response.status)))
            }
            _ if response.status == 404 => Err(Failure::Error(status_error(
                response,
                label,
                Some("no Panopto UserManagement service at this URL; check host and endpoint"),
            ))),
            _ if !response.is_success() => Err(Failure::Error(status_error(response, label, None))),
            Err(ReadError::NotSoap(why)) => {
                let content_type = response.content_type();
                // Mask before cutting, so a secret at the cut cannot survive in part.
                let head = &response.body[..response.body.len().min(4096)];
                let excerpt = body_excerpt(
                    self.mask
                        .mask_with_person(&String::from_utf8_lossy(head), personal.iter().copied())
                        .as_bytes(),
                );
                Err(Failure::Error(ConnectorError::new(
                    Fault::Malformed,
                    format!(
                        "{label}: not a SOAP response (HTTP {}, content type {}; {why}): {excerpt}",
                        response.status,
                        if content_type.is_empty() {
                            "none"
                        } else {
                            content_type.as_str()
                        },
                    ),
                )))
            }
            Err(ReadError::Malformed(why)) => Err(Failure::Error(ConnectorError::new(
                Fault::Malformed,
                format!("{label}: malformed SOAP response: {why}"),
            ))),
            Ok(Envelope::Response(_)) => Err(Failure::Error(status_error(response, label, None))),
        }
    }

    fn fault_failure(
        &self,
        operation: Operation,
        response: &HttpResponse,
        fault: &SoapFault,
        personal: &[&str],
    ) -> Failure {
        let message = truncate(
            &self
                .mask
                .mask_with_person(&fault.string, personal.iter().copied()),
            MAX_MESSAGE_CHARS,
        );
        let code = truncate(
            &self
                .mask
                .mask_with_person(&fault.code, personal.iter().copied()),
            80,
        );
        let reason = format!(
            "{}: SOAP fault (HTTP {}) {}: {}",
            operation.label(),
            response.status,
            if code.is_empty() {
                "without faultcode"
            } else {
                code.as_str()
            },
            if message.is_empty() {
                "(no faultstring)"
            } else {
                message.as_str()
            },
        );
        match classify_fault(fault) {
            FaultKind::Auth => Failure::Auth(reason),
            FaultKind::NoSuchUser => Failure::NoSuchUser(reason),
            FaultKind::Unreadable => Failure::Error(ConnectorError::new(
                Fault::RequestRejected,
                format!(
                    "{reason} (the server could not read the request: a bug or an API version mismatch)"
                ),
            )),
            // Any other fault follows its HTTP status: a refusal is an authentication failure, a
            // 404 a wrong endpoint, and a retry keeps the server's Retry-After.
            FaultKind::Other => match response.status {
                401 | 403 => Failure::Auth(reason),
                404 => Failure::Error(ConnectorError::new(
                    Fault::Status {
                        status: 404,
                        retry_after: None,
                    },
                    format!(
                        "{reason} (no Panopto UserManagement service at this URL; check host and endpoint)"
                    ),
                )),
                200..=299 => Failure::Error(ConnectorError::new(Fault::NotApplied, reason)),
                status => Failure::Error(ConnectorError::new(
                    Fault::Status {
                        status,
                        retry_after: retry_after(&response.headers, Utc::now()),
                    },
                    reason,
                )),
            },
        }
    }

    /// The keys to look up, in order: the account key, then each fallback prefix in place of its own.
    fn candidate_keys(&self, account: &str) -> Vec<String> {
        let name = account.split_once('\\').map_or(account, |(_, name)| name);
        let mut keys = vec![account.to_string()];
        for prefix in &self.fallback_prefixes {
            let key = format!("{prefix}\\{name}");
            if !keys.iter().any(|k| k.to_lowercase() == key.to_lowercase()) {
                keys.push(key);
            }
        }
        keys
    }

    /// Looks the leaver up under each of `keys` in turn; authentication failures are left to the
    /// caller.
    async fn lookup(&self, target: &Target, keys: Vec<String>) -> Result<Resolution, Failure> {
        if keys
            .iter()
            .any(|k| k.to_lowercase() == self.api_user_key.to_lowercase())
        {
            return Err(Failure::Error(ConnectorError::new(
                Fault::Protected,
                "the leaver's user key is the API user's own: refusing to delete the account offboard authenticates as",
            )));
        }
        let personal: Vec<&str> = keys.iter().map(String::as_str).collect();
        for key in &keys {
            if let Some(c) = soap::unsafe_xml_char(key) {
                return Err(Failure::Error(ConnectorError::new(
                    Fault::Unsendable,
                    format!("the user key contains the character {c:?}, which XML cannot carry"),
                )));
            }
            let envelope = self.get_user_by_key_request(key).map_err(Failure::Error)?;
            let response = match self
                .call(&target.calls, Operation::GetUserByKey, envelope, &personal)
                .await
            {
                Ok(response) => response,
                // GetUserByKey answers a missing leaver with an empty result, so a "no such user"
                // fault is about the caller.
                Err(Failure::NoSuchUser(reason)) => return Err(Failure::Auth(reason)),
                Err(failure) => return Err(failure),
            };
            if let Some(mut account) = read_user(&response, key).map_err(Failure::Error)? {
                let matched = if key.eq_ignore_ascii_case(&target.account) {
                    "account key".to_string()
                } else {
                    format!("fallback prefix {}", prefix_of(key))
                };
                account.summary.insert("matched".into(), matched);
                return Ok(Resolution::Found(account));
            }
        }
        Ok(Resolution::NotFound)
    }

    /// Deletes the resolved user; authentication failures are left to the caller.
    async fn delete(
        &self,
        target: &Target,
        account: &RemoteAccount,
    ) -> Result<RemovalOutcome, Failure> {
        if !is_guid(&account.id) || account.id == EMPTY_GUID {
            return Err(Failure::Error(ConnectorError::new(
                Fault::Unsendable,
                "the resolved Panopto user id is not a user's GUID",
            )));
        }
        let keys = self.candidate_keys(&target.account);
        let personal: Vec<&str> = keys.iter().map(String::as_str).collect();
        let envelope = self
            .delete_users_request(&account.id)
            .map_err(Failure::Error)?;
        match self
            .call(&target.calls, Operation::DeleteUsers, envelope, &personal)
            .await
        {
            Ok(_) => Ok(RemovalOutcome::Removed),
            // The same credentials just found the user, so the fault is about the leaver: gone meanwhile.
            Err(Failure::NoSuchUser(_)) => Ok(RemovalOutcome::AlreadyAbsent),
            Err(failure) => Err(failure),
        }
    }
}

impl super::Connector for PanoptoConnector {
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        Box::pin(async move {
            self.lookup(target, self.candidate_keys(&target.account))
                .await
                .map_err(|failure| self.mask.error_for(failure.into_error(), target))
        })
    }

    fn resolve_bound<'a>(
        &'a self,
        target: &'a Target,
        bound: &'a Bound,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        // The one key the bound user was found under: no fallback prefix is tried.
        let key = bound.key.clone().unwrap_or_else(|| target.account.clone());
        Box::pin(async move {
            self.lookup(target, vec![key])
                .await
                .map_err(|failure| self.mask.error_for(failure.into_error(), target))
        })
    }

    fn remove<'a>(
        &'a self,
        target: &'a Target,
        account: &'a RemoteAccount,
    ) -> BoxFuture<'a, Result<RemovalOutcome, ConnectorError>> {
        Box::pin(async move {
            self.delete(target, account)
                .await
                .map_err(|failure| self.mask.error_for(failure.into_error(), target))
        })
    }

    fn describe_removal(&self, _target: &Target, account: &RemoteAccount) -> String {
        format!(
            "would delete Panopto user {} with DeleteUsers; Panopto gives the user's sessions to the API user {}",
            account.id, self.api_user_key
        )
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>> {
        Box::pin(async move {
            let calls = CallLog::default();
            let envelope = self.get_user_by_key_request(&self.api_user_key)?;
            let response = self
                .call(&calls, Operation::GetUserByKey, envelope, &[])
                .await
                .map_err(|failure| match failure {
                    Failure::Auth(reason) | Failure::NoSuchUser(reason) => ConnectorError::new(
                        Fault::CredentialRefused,
                        format!("{reason} (check host, api_user_key and the password or application key)"),
                    ),
                    Failure::Error(e) => e,
                })?;
            match read_user(&response, &self.api_user_key)? {
                Some(user) => Ok(format!(
                    "authenticated as {}: Panopto user {}, system role {}",
                    self.api_user_key,
                    user.id,
                    user.summary
                        .get("system_role")
                        .map_or("unknown", String::as_str)
                )),
                None => Err(ConnectorError::new(
                    Fault::CredentialRefused,
                    format!(
                        "GetUserByKey does not find the API user {} itself",
                        self.api_user_key
                    ),
                )),
            }
        })
    }
}

/// Reads a `GetUserByKeyResponse`: `None` when Panopto has no such user (no result, a nil result or
/// the all-zero GUID).
fn read_user(
    response: &soap::Element,
    requested_key: &str,
) -> Result<Option<RemoteAccount>, ConnectorError> {
    let Some(user) = response.child(Some(TEMPURI_NS), "GetUserByKeyResult") else {
        return Ok(None);
    };
    if user.is_nil() {
        return Ok(None);
    }
    let Some(id) = user.child(Some(V40_NS), "UserId").filter(|e| !e.is_nil()) else {
        return Err(ConnectorError::new(
            Fault::Malformed,
            "SOAP GetUserByKey: the answer holds a user without a UserId",
        ));
    };
    let id = id.text.trim().to_ascii_lowercase();
    if !is_guid(&id) {
        return Err(ConnectorError::new(
            Fault::Malformed,
            "SOAP GetUserByKey: the answer's UserId is not a GUID",
        ));
    }
    if id == EMPTY_GUID {
        return Ok(None);
    }
    // Never delete someone other than the person asked for.
    if let Some(key) = user.child(Some(V40_NS), "UserKey").filter(|e| !e.is_nil())
        && key.text.trim().to_lowercase() != requested_key.to_lowercase()
    {
        return Err(ConnectorError::new(
            Fault::WrongAccount,
            format!(
                "SOAP GetUserByKey: Panopto answered user {id} whose user key differs from the one asked for; not deleting, needs a human"
            ),
        ));
    }
    let mut summary = BTreeMap::new();
    summary.insert("user_id".to_string(), id.clone());
    if let Some(role) = user
        .child(Some(V40_NS), "SystemRole")
        .filter(|e| !e.is_nil())
    {
        summary.insert("system_role".to_string(), role.text.trim().to_string());
    }
    Ok(Some(RemoteAccount {
        id,
        summary,
        found_by: Some(requested_key.to_string()),
    }))
}

/// What a fault means for the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    /// The caller is not authenticated or not allowed.
    Auth,
    /// The user does not exist.
    NoSuchUser,
    /// The server could not read the request.
    Unreadable,
    /// Anything else the server reports.
    Other,
}

fn classify_fault(fault: &SoapFault) -> FaultKind {
    let code = fault.code.to_lowercase();
    let text = fault.string.to_lowercase();
    let any = |words: &[&str], s: &str| words.iter().any(|w| s.contains(w));
    const AUTH_CODES: &[&str] = &[
        "security",
        "authentication",
        "authorization",
        "accessdenied",
    ];
    const AUTH_WORDS: &[&str] = &[
        "does not have access",
        "access denied",
        "access is denied",
        "not authorized",
        "not authorised",
        "unauthorized",
        "unauthorised",
        "credential",
        "authenticat",
        "authcode",
        "auth code",
        "password",
        "permission",
        "not allowed",
        "log on",
        "logon",
    ];
    const UNREADABLE: &[&str] = &[
        "deserializ",
        "contractfilter",
        "actionnotsupported",
        "cannot be processed at the receiver",
    ];
    const MISSING: &[&str] = &[
        "does not exist",
        "doesn't exist",
        "not found",
        "could not be found",
        "no such user",
        "no user",
    ];
    if any(AUTH_CODES, &code) || any(AUTH_WORDS, &text) {
        FaultKind::Auth
    } else if any(UNREADABLE, &code) || any(UNREADABLE, &text) {
        FaultKind::Unreadable
    } else if text.contains("user") && any(MISSING, &text) {
        FaultKind::NoSuchUser
    } else {
        FaultKind::Other
    }
}

/// Whether `s` is a GUID written as 8-4-4-4-12 hex digits.
fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

impl Failure {
    /// The error the worker sees: an authentication fault is a refused credential.
    fn into_error(self) -> ConnectorError {
        match self {
            Self::Auth(reason) | Self::NoSuchUser(reason) => {
                ConnectorError::new(Fault::CredentialRefused, reason)
            }
            Self::Error(e) => e,
        }
    }

    fn reason(&self) -> &str {
        match self {
            Self::Auth(r) | Self::NoSuchUser(r) => r,
            Self::Error(e) => &e.reason,
        }
    }

    fn map_reason(self, f: impl FnOnce(&str) -> String) -> Self {
        match self {
            Self::Auth(r) => Self::Auth(f(&r)),
            Self::NoSuchUser(r) => Self::NoSuchUser(f(&r)),
            Self::Error(e) => Self::Error(e.map_reason(f)),
        }
    }
}

/// The identity-provider prefix of a user key (empty without one).
fn prefix_of(key: &str) -> &str {
    key.split_once('\\').map_or("", |(prefix, _)| prefix)
}

/// Adds the interpreted error to the record of the call just made (the HTTP layer records only the status).
fn note_call_error(calls: &CallLog, reason: &str) {
    let mut all = calls.take();
    if let Some(last) = all.last_mut()
        && last.error.is_none()
    {
        last.error = Some(reason.to_string());
    }
    for call in all {
        calls.push(call);
    }
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_code_matches_the_published_test_vector() {
        assert_eq!(
            auth_code(
                "MyIdP\\jdoe",
                "Demo.Hosted.Panopto.com",
                "8D2B5E4A-1C3F-4E5D-9A7B-0C1D2E3F4A5B"
            ),
            "2ACB7BDE0D751EF9E55043484EF7FC25A0503CCC"
        );
    }

    #[test]
    fn auth_code_lowercases_host_and_key_but_not_the_user_key() {
        let lower = auth_code(
            "Unified\\Svc-Offboard",
            "example.cloud.panopto.eu",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        );
        let mixed = auth_code(
            "Unified\\Svc-Offboard",
            "Example.CLOUD.Panopto.EU",
            "0F1E2D3C-4b5A-6978-8796-A5b4C3D2E1F0",
        );
        assert_eq!(lower, mixed);
        // Computed independently: sha1 of the lower-cased payload, upper-case hex.
        assert_eq!(
            lower, "C665FDCE69E32500662451952FDFC87040AFAC40",
            "payload Unified\\Svc-Offboard@example.cloud.panopto.eu|0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        );
        assert_eq!(lower.len(), 40);
        assert!(
            lower
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_ne!(
            lower,
            auth_code(
                "unified\\svc-offboard",
                "example.cloud.panopto.eu",
                "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
            ),
            "the user key keeps its case"
        );
    }

    fn fault(code: &str, string: &str) -> SoapFault {
        SoapFault {
            code: code.into(),
            string: string.into(),
        }
    }

    #[test]
    fn faults_are_classified() {
        for (code, string, kind) in [
            (
                "s:Client",
                "The current user does not have access to call this method.",
                FaultKind::Auth,
            ),
            ("s:Client", "Invalid credentials", FaultKind::Auth),
            (
                "a:InvalidSecurity",
                "An error occurred when verifying security for the message.",
                FaultKind::Auth,
            ),
            (
                "a:DeserializationFailed",
                "An error occurred deserializing the message. See server logs for details",
                FaultKind::Unreadable,
            ),
            (
                "a:ActionNotSupported",
                "The message with Action '' cannot be processed at the receiver, due to a ContractFilter mismatch at the EndpointDispatcher.",
                FaultKind::Unreadable,
            ),
            (
                "s:Client",
                "The user does not exist.",
                FaultKind::NoSuchUser,
            ),
            ("s:Client", "User not found", FaultKind::NoSuchUser),
            (
                "a:InternalServiceFault",
                "Object reference not set to an instance of an object.",
                FaultKind::Other,
            ),
            (
                "s:Server",
                "Timeout expired while waiting for the database.",
                FaultKind::Other,
            ),
        ] {
            assert_eq!(
                classify_fault(&fault(code, string)),
                kind,
                "{code} {string}"
            );
        }
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn guids_are_recognised() {
        assert!(is_guid("3d6d15b1-1234-1234-1234-12345f44224d"));
        assert!(is_guid(EMPTY_GUID));
        assert!(!is_guid("3d6d15b1-1234-1234-1234-12345f44224"));
        assert!(!is_guid("not-a-guid"));
    }
}
