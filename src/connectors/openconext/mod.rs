//! The `openconext` connector: one service's OpenConext deprovision API (EngineBlock, Teams,
//! Invite, …) over HTTP Basic auth.
//!
//! The API has no separate lookup that tells "known" from "unknown" without side effects, so the
//! DELETE is its own lookup: a removal calls `DELETE {base}deprovision/{id}` and reads from the
//! answer whether there was anything to erase. In dry-run, resolving calls the service's own
//! simulation, `DELETE {base}deprovision/{id}/dry-run`, and nothing else.
//!
//! The answer's data values are the personal data being erased: only the names of the data
//! categories and how many items each held reach the audit log.

pub mod config;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::ACCEPT;
use serde_json::{Value, json};

use super::http::{HttpClient, HttpResponse, encode_component, status_error, vendor_message};
use super::limit::Limiter;
use super::mask::{Mask, identifiers, personal};
use super::{
    Bound,
    BoxFuture, CallLog, ConnectorError, Fault, RemoteAccount, RemovalOutcome, Resolution, Target,
};
use crate::config::Rate;
use crate::connectors::openconext::config::OpenconextConfig;

/// The default rate: the deprovision API documents no limit; this keeps a batch gentle on the
/// federation's shared services.
pub const DEFAULT_RATE: Rate = Rate {
    calls: 10,
    per: Duration::from_secs(1),
};

/// Every collab person id starts with this.
pub const COLLAB_PERSON_PREFIX: &str = "urn:collab:person:";

/// The longest collab person id EngineBlock accepts, in bytes.
pub const MAX_COLLAB_PERSON_ID: usize = 255;

/// The reason given when an answer is not the documented contract.
pub const CONTRACT_VIOLATION: &str = "response does not follow the deprovision contract";

/// A collab person id nobody has, for the probe's authenticated read.
const PROBE_ID: &str = "urn:collab:person:offboard.invalid:probe";

/// Checks a collab person id as EngineBlock and User Lifecycle do: it starts with
/// `urn:collab:person:`, has something after it, and is at most 255 bytes. The reason never
/// repeats the id.
pub fn check_collab_person_id(id: &str) -> Result<(), String> {
    if !id.starts_with(COLLAB_PERSON_PREFIX) || id.len() == COLLAB_PERSON_PREFIX.len() {
        return Err(format!(
            "an OpenConext collab person id must start with \"{COLLAB_PERSON_PREFIX}\" followed by the \
             organisation and uid, e.g. \"urn:collab:person:example.org:{{collab_uid}}\""
        ));
    }
    if id.len() > MAX_COLLAB_PERSON_ID {
        return Err(format!(
            "the collab person id is {} bytes long; OpenConext accepts at most {MAX_COLLAB_PERSON_ID}",
            id.len()
        ));
    }
    Ok(())
}

/// A deprovision answer that follows the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `status: OK`: the service held these data categories (empty: it did not know the user).
    Ok {
        /// The service's name (`name`).
        service: String,
        /// Category name → number of items (an array value counts its elements, `null` counts
        /// 0, any other value 1; entries with the same name add up).
        categories: BTreeMap<String, u64>,
    },
    /// `status: FAILED` with its message (entries joined with ", ").
    Failed {
        /// The service's name.
        service: String,
        /// What the service said.
        message: String,
    },
}

/// Parses an HTTP 200 body against the deprovision contract: `{status: "OK"|"FAILED", name,
/// data: [{name, value}], message}` where `value` may be any JSON and `message` is a string or a
/// list of strings, required with `FAILED` and absent or empty with `OK`. `Err` says which rule
/// was broken, never a value from the body.
pub fn parse_answer(body: &[u8]) -> Result<Answer, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_string())?;
    let Value::Object(map) = value else {
        return Err("the body is not a JSON object".into());
    };
    let status = match map.get("status") {
        Some(Value::String(s)) if s == "OK" || s == "FAILED" => s.as_str(),
        Some(_) => return Err("`status` is neither \"OK\" nor \"FAILED\"".into()),
        None => return Err("`status` is missing".into()),
    };
    let service = match map.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err("`name` is missing or not a non-empty string".into()),
    };
    let Some(Value::Array(data)) = map.get("data") else {
        return Err("`data` is missing or not an array".into());
    };
    let mut categories: BTreeMap<String, u64> = BTreeMap::new();
    for (i, entry) in data.iter().enumerate() {
        let Value::Object(entry) = entry else {
            return Err(format!("`data[{i}]` is not an object"));
        };
        let name = match entry.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name,
            _ => return Err(format!("`data[{i}].name` is missing or not a string")),
        };
        let count = match entry.get("value") {
            None => return Err(format!("`data[{i}].value` is missing")),
            Some(Value::Array(items)) => items.len() as u64,
            Some(Value::Null) => 0,
            Some(_) => 1,
        };
        *categories.entry(name.clone()).or_default() += count;
    }
    let message = match map.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(Value::Array(items)) => {
            let mut parts = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) => parts.push(s.as_str()),
                    _ => return Err("`message` holds something other than strings".into()),
                }
            }
            Some(parts.join(", ")).filter(|s| !s.is_empty())
        }
        Some(_) => return Err("`message` is neither a string nor a list of strings".into()),
    };
    match (status, message) {
        ("OK", None) => Ok(Answer::Ok {
            service,
            categories,
        }),
        ("OK", Some(_)) => Err("`status` is \"OK\" but `message` is not empty".into()),
        (_, Some(message)) => Ok(Answer::Failed { service, message }),
        (_, None) => Err("`status` is \"FAILED\" without a `message`".into()),
    }
}

/// Whether a FAILED message says the service does not know the user.
fn says_not_found(message: &str) -> bool {
    message.to_ascii_lowercase().contains("not found")
}

/// Which deprovision call to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `DELETE …/dry-run`: the service's simulation, deletes nothing.
    DryRun,
    /// `DELETE …`: erases the user.
    Delete,
}

/// What a deprovision call found.
enum Found {
    /// Nothing stored about the user (OK with empty data, or FAILED "not found").
    Nothing { service: String },
    /// The service held (dry-run) or erased (delete) these categories.
    Data {
        service: String,
        categories: BTreeMap<String, u64>,
    },
}

/// Calls one service's deprovision API.
pub struct OpenconextConnector {
    config: OpenconextConfig,
    dry_run: bool,
    http: HttpClient,
    health_url: Url,
    /// The Basic credentials, masked in every reason.
    mask: Mask,
}

impl OpenconextConnector {
    /// A connector for this service; `dry_run` makes resolving call the service's `/dry-run`.
    pub fn new(
        config: OpenconextConfig,
        dry_run: bool,
        limiter: Arc<Limiter>,
    ) -> anyhow::Result<Self> {
        let base = Url::parse(&config.base_url)?;
        // `/health` is absolute: it lives at the host root, whatever the API's base path.
        let health_url = base.join("/health")?;
        let mask = Mask::new()
            .with_user(config.username.expose())
            .with_secret(config.password.expose())
            .with_basic(config.username.expose(), config.password.expose());
        Ok(Self {
            mask,
            http: HttpClient::new(config.timeout, limiter)?,
            config,
            dry_run,
            health_url,
        })
    }

    fn url(&self, id: &str, mode: Mode) -> Result<Url, ConnectorError> {
        let suffix = match mode {
            Mode::DryRun => "/dry-run",
            Mode::Delete => "",
        };
        let text = format!(
            "{}deprovision/{}{suffix}",
            self.config.base_url,
            encode_component(id)
        );
        Url::parse(&text)
            .map_err(|e| ConnectorError::new(Fault::Unsendable, format!("bad request URL: {e}")))
    }

    fn request(&self, method: reqwest::Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .client()
            .request(method, url)
            .basic_auth(
                self.config.username.expose(),
                Some(self.config.password.expose()),
            )
            .header(ACCEPT, "application/json")
    }

    async fn deprovision(&self, target: &Target, mode: Mode) -> Result<Found, ConnectorError> {
        let operation = match mode {
            Mode::DryRun => "DELETE deprovision/{id}/dry-run",
            Mode::Delete => "DELETE deprovision/{id}",
        };
        let url = self.url(&target.account, mode)?;
        let response = self
            .http
            .send(
                &target.calls,
                operation,
                self.request(reqwest::Method::DELETE, url),
            )
            .await?;
        let found = self
            .interpret(target, operation, &response)
            .map_err(|e| self.mask.error_for(e, target))?;
        let evidence = match &found {
            Found::Nothing { service } => json!({
                "service": service,
                "dry_run": mode == Mode::DryRun,
                "categories": {},
            }),
            Found::Data {
                service,
                categories,
            } => json!({
                "service": service,
                "dry_run": mode == Mode::DryRun,
                "categories": categories,
            }),
        };
        target.calls.annotate_last(evidence);
        Ok(found)
    }

    /// Turns an answer into what it found, or the classified error (design §3 and the contract).
    fn interpret(
        &self,
        target: &Target,
        operation: &str,
        response: &HttpResponse,
    ) -> Result<Found, ConnectorError> {
        let message = || vendor_message(&response.body).map(|m| personal(&m, identifiers(target)));
        match response.status {
            200 => match parse_answer(&response.body) {
                Ok(Answer::Ok {
                    categories,
                    service,
                }) => Ok(if categories.is_empty() {
                    Found::Nothing { service }
                } else {
                    Found::Data {
                        service,
                        categories,
                    }
                }),
                Ok(Answer::Failed { service, message }) if says_not_found(&message) => {
                    Ok(Found::Nothing { service })
                }
                Ok(Answer::Failed { service, message }) => Err(ConnectorError::new(
                    Fault::NotApplied,
                    format!(
                        "{operation}: {service} answered FAILED: {}",
                        personal(&message, identifiers(target))
                    ),
                )),
                Err(why) => Err(ConnectorError::new(
                    Fault::Malformed,
                    format!("{operation}: {CONTRACT_VIOLATION} ({why})"),
                )),
            },
            401 | 403 => {
                let reason = match message() {
                    Some(m) => format!(
                        "{operation}: HTTP {}: the service refused the credentials: {m}",
                        response.status
                    ),
                    None => format!(
                        "{operation}: HTTP {}: the service refused the credentials",
                        response.status
                    ),
                };
                Err(ConnectorError::new(Fault::CredentialRefused, reason))
            }
            // EngineBlock answers 404 with a bare JSON string for an invalid id or a disabled API;
            // an unknown user is a 200. Either way retrying cannot help.
            404 => Err(ConnectorError::new(
                Fault::Status {
                    status: 404,
                    retry_after: None,
                },
                match message() {
                    Some(m) => format!("{operation}: HTTP 404: {m}"),
                    None => format!(
                        "{operation}: HTTP 404: no deprovision API at this base_url (check the URL and that the API is enabled)"
                    ),
                },
            )),
            _ if response.is_success() => Err(ConnectorError::new(
                Fault::Malformed,
                format!(
                    "{operation}: {CONTRACT_VIOLATION} (HTTP {} instead of 200)",
                    response.status
                ),
            )),
            _ => Err(status_error(response, operation, message().as_deref())),
        }
    }

    async fn probe_service(&self) -> Result<String, ConnectorError> {
        let calls = CallLog::default();
        let health = self
            .http
            .send(
                &calls,
                "GET /health",
                self.http.client().get(self.health_url.clone()),
            )
            .await?;
        if health.status != 200 {
            return Err(status_error(&health, "GET /health", None));
        }
        // An authenticated read of an id nobody has: proves the base URL, the credentials and that
        // the API is enabled, and changes nothing.
        let url = self.url(PROBE_ID, Mode::Delete)?;
        let response = self
            .http
            .send(
                &calls,
                "GET deprovision/{id}",
                self.request(reqwest::Method::GET, url),
            )
            .await?;
        let operation = "GET deprovision/{id}";
        match response.status {
            200 => match parse_answer(&response.body) {
                Ok(Answer::Ok { service, .. }) => Ok(format!(
                    "health OK; {service} answered the deprovision API with the credentials accepted"
                )),
                Ok(Answer::Failed { service, message }) if says_not_found(&message) => Ok(format!(
                    "health OK; {service} answered the deprovision API with the credentials accepted"
                )),
                Ok(Answer::Failed { service, message }) => Err(ConnectorError::new(
                    Fault::NotApplied,
                    format!("{operation}: {service} answered FAILED: {message}"),
                )),
                Err(why) => Err(ConnectorError::new(
                    Fault::Malformed,
                    format!("{operation}: {CONTRACT_VIOLATION} ({why})"),
                )),
            },
            _ => Err(status_error(
                &response,
                operation,
                vendor_message(&response.body).as_deref(),
            )),
        }
    }
}

/// "user (1), consent (3)".
fn describe_categories(categories: &BTreeMap<String, u64>) -> String {
    categories
        .iter()
        .map(|(name, count)| format!("{name} ({count})"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl super::Connector for OpenconextConnector {
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        Box::pin(async move {
            if !self.dry_run {
                // The real DELETE is the lookup: its answer says whether anything was stored.
                return Ok(Resolution::Found(RemoteAccount {
                    id: target.account.clone(),
                    summary: BTreeMap::new(),
                    found_by: None,
                }));
            }
            match self.deprovision(target, Mode::DryRun).await? {
                Found::Nothing { .. } => Ok(Resolution::NotFound),
                Found::Data {
                    service,
                    categories,
                } => Ok(Resolution::Found(RemoteAccount {
                    id: target.account.clone(),
                    summary: BTreeMap::from([
                        ("service".to_string(), service),
                        ("categories".to_string(), describe_categories(&categories)),
                    ]),
                    found_by: None,
                })),
            }
        })
    }

    fn resolve_bound<'a>(
        &'a self,
        _target: &'a Target,
        bound: &'a Bound,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        // The id is the account key; the DELETE that follows says whether anything was left. Dry-run
        // never binds (it makes no call that acts).
        Box::pin(async move {
            Ok(Resolution::Found(RemoteAccount {
                id: bound.id.clone(),
                summary: BTreeMap::new(),
                found_by: None,
            }))
        })
    }

    fn remove<'a>(
        &'a self,
        target: &'a Target,
        _account: &'a RemoteAccount,
    ) -> BoxFuture<'a, Result<RemovalOutcome, ConnectorError>> {
        Box::pin(async move {
            if self.dry_run {
                return Err(ConnectorError::new(
                    Fault::Protected,
                    "refusing to deprovision: this connector is in dry-run",
                ));
            }
            Ok(match self.deprovision(target, Mode::Delete).await? {
                Found::Nothing { .. } => RemovalOutcome::AlreadyAbsent,
                Found::Data { .. } => RemovalOutcome::Removed,
            })
        })
    }

    fn describe_removal(&self, _target: &Target, account: &RemoteAccount) -> String {
        match (
            account.summary.get("service"),
            account.summary.get("categories"),
        ) {
            (Some(service), Some(categories)) => format!(
                "would deprovision the user at {service}, erasing: {categories} (the service's own dry-run)"
            ),
            _ => "would call DELETE deprovision/{id}".to_string(),
        }
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>> {
        Box::pin(async move { self.probe_service().await.map_err(|e| self.mask.error(e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collab_person_ids_are_checked_without_echoing_them() {
        assert!(check_collab_person_id("urn:collab:person:example.org:jdoe").is_ok());
        let err = check_collab_person_id("jdoe@example.org").unwrap_err();
        assert!(err.contains("must start with"), "{err}");
        assert!(!err.contains("jdoe"));
        assert!(check_collab_person_id("urn:collab:person:").is_err());
        assert!(check_collab_person_id("urn:collab:org:example.org").is_err());
        let long = format!("urn:collab:person:example.org:{}", "x".repeat(226));
        assert_eq!(long.len(), 256);
        assert!(
            check_collab_person_id(&long)
                .unwrap_err()
                .contains("256 bytes")
        );
        assert!(check_collab_person_id(&long[..255]).is_ok());
    }

    #[test]
    fn the_contract_counts_categories_and_accepts_any_value() {
        let body = br#"{"status":"OK","name":"EngineBlock","data":[
            {"name":"user","value":{"collab_person_id":"urn:collab:person:example.org:jdoe"}},
            {"name":"saml_persistent_id","value":[{"a":1},{"a":2}]},
            {"name":"consent","value":[]},
            {"name":"email","value":"jdoe@example.org"},
            {"name":"email","value":"j@example.org"}]}"#;
        let Answer::Ok {
            service,
            categories,
        } = parse_answer(body).unwrap()
        else {
            panic!("expected OK");
        };
        assert_eq!(service, "EngineBlock");
        assert_eq!(
            categories,
            BTreeMap::from([
                ("user".to_string(), 1),
                ("saml_persistent_id".to_string(), 2),
                ("consent".to_string(), 0),
                ("email".to_string(), 2),
            ])
        );
    }

    #[test]
    fn failed_needs_a_message_and_ok_must_not_have_one() {
        assert_eq!(
            parse_answer(br#"{"status":"FAILED","name":"T","data":[],"message":["a","b"]}"#)
                .unwrap(),
            Answer::Failed {
                service: "T".into(),
                message: "a, b".into()
            }
        );
        for (body, why) in [
            (
                &br#"{"status":"FAILED","name":"T","data":[]}"#[..],
                "without a `message`",
            ),
            (
                br#"{"status":"FAILED","name":"T","data":[],"message":[]}"#,
                "without a `message`",
            ),
            (
                br#"{"status":"OK","name":"T","data":[],"message":"x"}"#,
                "is not empty",
            ),
            (
                br#"{"status":"ok","name":"T","data":[]}"#,
                "neither \"OK\" nor \"FAILED\"",
            ),
            (br#"{"status":"OK","name":"","data":[]}"#, "`name`"),
            (br#"{"status":"OK","name":"T","data":{}}"#, "`data`"),
            (
                br#"{"status":"OK","name":"T","data":[{"name":"x"}]}"#,
                "`data[0].value` is missing",
            ),
            (
                br#"{"status":"OK","name":"T","data":[{"value":"x"}]}"#,
                "`data[0].name`",
            ),
            (
                br#"{"status":"FAILED","name":"T","data":[],"message":[1]}"#,
                "other than strings",
            ),
            (br#""User ID is not valid""#, "not a JSON object"),
            (b"<html>", "not JSON"),
        ] {
            let err = parse_answer(body).unwrap_err();
            assert!(err.contains(why), "{err} should say {why}");
        }
        assert!(
            parse_answer(br#"{"status":"OK","name":"T","data":[],"message":[]}"#).is_ok(),
            "an empty message is allowed with OK"
        );
    }
}
