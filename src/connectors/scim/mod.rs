//! The `scim` connector: finds a user on a SCIM 2.0 service (RFC 7643/7644) and deactivates it, removes its
//! entitlements and/or deletes it, authenticating with a bearer token or with Anaplan's token service.
//!
//! Lookup is `filter=<userName|externalId> eq "<account>"` (the value written as a JSON string, so quotes and
//! backslashes are escaped) or `GET /Users/<id>`. Every answer is checked for the SCIM shape; an answer that
//! names a different user than the one asked for is refused rather than acted on. Vendor text that reaches a
//! reason (SCIM `detail`, body excerpts) is scrubbed of credentials and of the person's identifiers.

pub mod config;
mod wire;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use serde_json::{Value, json};

use super::classify::refuses_credential;
use super::http::{CachedToken, HttpClient, HttpResponse, TokenSlot, encode_component};
use super::limit::Limiter;
use super::mask::Mask;
use super::{
    Bound,
    BoxFuture, CallLog, ConnectorError, Fault, RemoteAccount, RemovalOutcome, Resolution, Target,
};
use crate::clock::Clock;
use crate::config::{Rate, Secret};
use crate::connectors::scim::config::{ScimAction, ScimAuth, ScimConfig, ScimMatch};
use wire::*;
pub use wire::{eq_filter, read_answers};

/// The SCIM media type, sent as `Accept` and `Content-Type`.
pub const SCIM_MEDIA_TYPE: &str = "application/scim+json";

/// The call rate used when a scim connector sets no `rate` (Anaplan asks for at most 5 requests a second).
pub const DEFAULT_RATE: Rate = Rate {
    calls: 5,
    per: Duration::from_secs(1),
};

/// An Anaplan token is refreshed when it has less than this left.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The token lifetime assumed when Anaplan's answer gives no usable `expiresAt` (its documented 30 minutes).
pub const ANAPLAN_DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Summary keys of a resolved account (no personal data: a flag and a count).
const SUMMARY_ACTIVE: &str = "active";
const SUMMARY_ACCESS_VALUES: &str = "access_values";

/// A SCIM 2.0 connector.
pub struct ScimConnector {
    config: ScimConfig,
    http: HttpClient,
    clock: Clock,
    /// The Anaplan token shared by every worker; the lock is held while logging in, so there is never more
    /// than one login at a time.
    token: TokenSlot<Token>,
    /// The configured credentials and the tokens issued lately, masked in any vendor text.
    mask: Mask,
}

#[derive(Clone)]
struct Token {
    value: Secret,
    valid_until: DateTime<Utc>,
}

impl CachedToken for Token {
    fn secret(&self) -> &Secret {
        &self.value
    }
}

/// What one removal step did.
enum Step {
    /// The service changed the user.
    Done,
    /// Nothing to do: the user was already in that state.
    Skipped,
    /// The service no longer knows the user.
    Gone,
}

impl ScimConnector {
    /// A connector for this config; its calls are limited by `limiter`, and Anaplan token expiry is measured
    /// on `clock`.
    pub fn new(
        config: ScimConfig,
        limiter: std::sync::Arc<Limiter>,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let http = HttpClient::new(config.timeout, limiter)?;
        let mask = match &config.auth {
            ScimAuth::Bearer { token } => Mask::new().with_secret(token.expose()),
            // The login's user name is an email: masked wherever it appears, like the password.
            ScimAuth::Anaplan {
                username, password, ..
            } => Mask::new()
                .with_secret(username.expose())
                .with_secret(password.expose())
                .with_basic(username.expose(), password.expose()),
        };
        Ok(Self {
            config,
            http,
            clock,
            token: TokenSlot::default(),
            mask,
        })
    }

    // -----------------------------------------------------------------------------------------------------
    // Authentication
    // -----------------------------------------------------------------------------------------------------

    /// The credential for the next request: the static token, or a valid Anaplan token.
    async fn credential(&self, calls: &CallLog) -> Result<Secret, ConnectorError> {
        match &self.config.auth {
            ScimAuth::Bearer { token } => Ok(token.clone()),
            ScimAuth::Anaplan { .. } => self.anaplan_token(calls).await,
        }
    }

    fn authorization(&self, credential: &Secret) -> Result<HeaderValue, ConnectorError> {
        let scheme = match &self.config.auth {
            ScimAuth::Bearer { .. } => "Bearer",
            ScimAuth::Anaplan { .. } => "AnaplanAuthToken",
        };
        let mut value = HeaderValue::from_str(&format!("{scheme} {}", credential.expose()))
            .map_err(|_| {
                ConnectorError::new(
                    Fault::Unsendable,
                    "the token holds characters that cannot be sent in an HTTP header",
                )
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// A valid Anaplan token: the cached one, refreshed when it is close to expiry, or a new login.
    async fn anaplan_token(&self, calls: &CallLog) -> Result<Secret, ConnectorError> {
        let mut cache = self.token.lock().await;
        let now = self.clock.now();
        if let Some(token) = cache.as_ref() {
            if now + margin() < token.valid_until {
                return Ok(token.value.clone());
            }
            if now < token.valid_until {
                match self.refresh(calls, &token.value).await {
                    Ok(fresh) => {
                        let value = fresh.value.clone();
                        *cache = Some(fresh);
                        return Ok(value);
                    }
                    Err(e) => tracing::info!(
                        error = %self.mask.mask(&e.reason),
                        "Refreshing the Anaplan token failed; logging in again."
                    ),
                }
            }
        }
        *cache = None;
        let token = self.login(calls).await?;
        let value = token.value.clone();
        *cache = Some(token);
        Ok(value)
    }


    async fn login(&self, calls: &CallLog) -> Result<Token, ConnectorError> {
        let ScimAuth::Anaplan {
            username,
            password,
            auth_url,
        } = &self.config.auth
        else {
            return Err(ConnectorError::new(
                Fault::Unsendable,
                "no Anaplan credentials are configured",
            ));
        };
        const OP: &str = "POST /token/authenticate";
        let request = self
            .http
            .client()
            .post(format!("{auth_url}/token/authenticate"))
            .basic_auth(username.expose(), Some(password.expose()))
            .header(ACCEPT, "application/json");
        let response = self.http.send(calls, OP, request).await?;
        let token = self.read_token(&response, OP)?;
        tracing::info!(
            valid_for_s = (token.valid_until - self.clock.now()).num_seconds(),
            "Logged in to Anaplan."
        );
        Ok(token)
    }

    async fn refresh(&self, calls: &CallLog, current: &Secret) -> Result<Token, ConnectorError> {
        let ScimAuth::Anaplan { auth_url, .. } = &self.config.auth else {
            return Err(ConnectorError::new(
                Fault::Unsendable,
                "no Anaplan credentials are configured",
            ));
        };
        const OP: &str = "POST /token/refresh";
        let request = self
            .http
            .client()
            .post(format!("{auth_url}/token/refresh"))
            .header(AUTHORIZATION, self.authorization(current)?)
            .header(ACCEPT, "application/json");
        let response = self.http.send(calls, OP, request).await?;
        self.read_token(&response, OP)
    }

    /// Reads Anaplan's token answer (`tokenInfo.tokenValue`, `tokenInfo.expiresAt` in epoch milliseconds).
    fn read_token(&self, response: &HttpResponse, op: &str) -> Result<Token, ConnectorError> {
        let now = self.clock.now();
        let (value, lifetime) = token_answer(response, op, now)?;
        self.remember_token(&value);
        Ok(Token {
            value: Secret::new(value),
            valid_until: now + chrono::Duration::from_std(lifetime).unwrap_or_default(),
        })
    }

    fn remember_token(&self, value: &str) {
        self.mask.remember(value);
    }

    // -----------------------------------------------------------------------------------------------------
    // Requests
    // -----------------------------------------------------------------------------------------------------

    /// Sends one SCIM request with its credential. A refusal (401, 403) is an error, for the worker's
    /// one credential policy ([`crate::connectors::classify`]); a refused Anaplan token is dropped
    /// first, so that the call the worker makes once more logs in afresh.
    async fn request(
        &self,
        calls: &CallLog,
        op: &str,
        method: Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<HttpResponse, ConnectorError> {
        let credential = self.credential(calls).await?;
        let mut request = self
            .http
            .client()
            .request(method, url.clone())
            .header(ACCEPT, SCIM_MEDIA_TYPE)
            .header(AUTHORIZATION, self.authorization(&credential)?);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, SCIM_MEDIA_TYPE)
                .body(body.to_string());
        }
        let response = self.http.send(calls, op, request).await?;
        if !refuses_credential(response.status) {
            return Ok(response);
        }
        if matches!(self.config.auth, ScimAuth::Anaplan { .. }) {
            self.token.forget(&credential).await;
        }
        if response.status == 403 {
            // The SCIM error's own words (a missing role, typically).
            return Err(self.http_error(&response, op));
        }
        let why = match self.config.auth {
            ScimAuth::Anaplan { .. } => {
                "the service refused the Anaplan token (the caller must be an active non-SSO user with the USER_ADMIN role)"
            }
            ScimAuth::Bearer { .. } => {
                "the service refused the bearer token; check the connector's auth.token"
            }
        };
        let detail = scim_error_message(&response.body)
            .map(|m| format!(" ({m})"))
            .unwrap_or_default();
        Err(ConnectorError::new(
            Fault::CredentialRefused,
            format!("{op}: HTTP 401: {why}{detail}"),
        ))
    }

    fn users_url(&self) -> Result<Url, ConnectorError> {
        Url::parse(&format!("{}/Users", self.config.base_url))
            .map_err(|e| ConnectorError::new(Fault::Unsendable, format!("invalid base_url: {e}")))
    }

    fn user_url(&self, id: &str) -> Result<Url, ConnectorError> {
        if id.is_empty() || id.chars().all(|c| c == '.') {
            return Err(ConnectorError::new(
                Fault::Unsendable,
                "the user id is empty or only dots, which cannot name a user",
            ));
        }
        Url::parse(&format!(
            "{}/Users/{}",
            self.config.base_url,
            encode_component(id)
        ))
        .map_err(|e| ConnectorError::new(Fault::Unsendable, format!("invalid base_url: {e}")))
    }

    // -----------------------------------------------------------------------------------------------------
    // Resolve
    // -----------------------------------------------------------------------------------------------------

    /// `GET /Users/{id}`: the user with this id, or none.
    async fn find_by_id(&self, target: &Target, id: &str) -> Result<Resolution, ConnectorError> {
        const OP: &str = "GET /Users/{id}";
        let url = self.user_url(id)?;
        let response = self
            .request(&target.calls, OP, Method::GET, &url, None)
            .await?;
        match response.status {
            404 => Ok(Resolution::NotFound),
            200 => {
                let user = read_resource(&response, OP)?;
                let found = user_id(&user, OP)?;
                if !same_value(found, id) {
                    return Err(ConnectorError::new(
                        Fault::WrongAccount,
                        format!(
                            "{OP}: the service answered with a different user id than the one asked for; refusing to act"
                        ),
                    ));
                }
                Ok(Resolution::Found(self.remote(&user, found)))
            }
            _ => Err(self.http_error(&response, OP)),
        }
    }

    async fn find(&self, target: &Target) -> Result<Resolution, ConnectorError> {
        let account = target.account.as_str();
        if account.trim().is_empty() {
            return Err(ConnectorError::new(
                Fault::Unsendable,
                "the account key is empty",
            ));
        }
        match self.config.match_on {
            ScimMatch::Id => self.find_by_id(target, account).await,
            ScimMatch::UserName | ScimMatch::ExternalId => {
                const OP: &str = "GET /Users?filter";
                let attribute = self.config.match_on.as_str();
                let mut url = self.users_url()?;
                url.set_query(Some(&format!(
                    "filter={}&startIndex=1&count=2",
                    encode_component(&eq_filter(attribute, account))
                )));
                let response = self
                    .request(&target.calls, OP, Method::GET, &url, None)
                    .await?;
                if response.status != 200 {
                    return Err(self.http_error(&response, OP));
                }
                let list = read_list(&response, OP)?;
                // A service that ignores the filter would hand back someone else: never act on that.
                if list.resources.iter().any(|u| {
                    !attr(u, attribute)
                        .and_then(Value::as_str)
                        .is_some_and(|v| same_value(v, account))
                }) {
                    return Err(ConnectorError::new(
                        Fault::WrongAccount,
                        format!(
                            "{OP}: the service answered with a user whose {attribute} is not the account key (does it ignore filters?); refusing to act"
                        ),
                    ));
                }
                match list.total.max(list.resources.len()) {
                    0 => Ok(Resolution::NotFound),
                    1 => {
                        let Some(user) = list.resources.first() else {
                            return Err(ConnectorError::new(
                                Fault::Malformed,
                                format!("{OP}: totalResults is 1 but no user was returned"),
                            ));
                        };
                        let id = user_id(user, OP)?;
                        Ok(Resolution::Found(self.remote(user, id)))
                    }
                    n => Ok(Resolution::Ambiguous(n)),
                }
            }
        }
    }

    /// The account as the worker keeps it: the SCIM id, whether it is active, and how many access values
    /// (entitlements or roles) it holds.
    fn remote(&self, user: &Value, id: &str) -> RemoteAccount {
        remote_account(user, id, self.access_attribute())
    }

    /// The attribute `entitlements_path` works on (`entitlements` for `entitlements[type eq "WORKSPACE"]`).
    fn access_attribute(&self) -> &str {
        self.config
            .entitlements_path
            .split(['[', '.'])
            .next()
            .unwrap_or("entitlements")
    }

    // -----------------------------------------------------------------------------------------------------
    // Remove
    // -----------------------------------------------------------------------------------------------------

    /// What a removal does: a stage its one action, a connector without stages its `actions`.
    fn actions_for(&self, target: &Target) -> Vec<ScimAction> {
        match ScimAction::parse(&target.stage) {
            Some(action) => vec![action],
            None => self.config.actions.clone(),
        }
    }

    async fn strip(
        &self,
        target: &Target,
        account: &RemoteAccount,
    ) -> Result<RemovalOutcome, ConnectorError> {
        if target.stage == super::REACTIVATE {
            return match self.set_active(target, &account.id, true).await? {
                Step::Gone => Err(ConnectorError::new(
                    Fault::Unsendable,
                    "the account to reactivate is gone: restore access by hand".to_string(),
                )),
                Step::Done | Step::Skipped => Ok(RemovalOutcome::Reactivated),
            };
        }
        let actions = &self.actions_for(target);
        let goal = if actions.contains(&ScimAction::Delete) {
            RemovalOutcome::Removed
        } else {
            RemovalOutcome::Deactivated
        };
        let mut changed = false;
        for action in actions {
            let step = match action {
                ScimAction::Deactivate if summary(account, SUMMARY_ACTIVE) == Some("false") => {
                    Step::Skipped
                }
                ScimAction::Deactivate => self.deactivate(target, &account.id).await?,
                ScimAction::RemoveEntitlements
                    if summary(account, SUMMARY_ACCESS_VALUES) == Some("0") =>
                {
                    Step::Skipped
                }
                ScimAction::RemoveEntitlements => {
                    self.remove_entitlements(target, &account.id).await?
                }
                ScimAction::Delete => self.delete(target, &account.id).await?,
            };
            match step {
                Step::Done => changed = true,
                Step::Skipped => {}
                Step::Gone if changed => return Ok(goal),
                Step::Gone => return Ok(RemovalOutcome::AlreadyAbsent),
            }
        }
        Ok(goal)
    }

    async fn deactivate(&self, target: &Target, id: &str) -> Result<Step, ConnectorError> {
        self.set_active(target, id, false).await
    }

    /// PATCH `replace active` to `active`; the answer's user, when there is one, must say so.
    async fn set_active(
        &self,
        target: &Target,
        id: &str,
        active: bool,
    ) -> Result<Step, ConnectorError> {
        const OP: &str = "PATCH /Users/{id} active";
        let body = json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "replace", "path": "active", "value": active}],
        });
        let url = self.user_url(id)?;
        let response = self
            .request(&target.calls, OP, Method::PATCH, &url, Some(&body))
            .await?;
        match response.status {
            204 => Ok(Step::Done),
            207 => Err(partial(OP)),
            200..=299 => {
                if let Some(user) = read_optional_resource(&response, OP)?
                    && attr(&user, "active").and_then(parse_bool) == Some(!active)
                {
                    return Err(ConnectorError::new(
                        Fault::NotApplied,
                        format!(
                            "{OP}: HTTP {} but the user is still {}",
                            response.status,
                            if active { "inactive" } else { "active" }
                        ),
                    ));
                }
                Ok(Step::Done)
            }
            404 => Ok(Step::Gone),
            _ => Err(self.action_error(&response, OP)),
        }
    }

    async fn remove_entitlements(&self, target: &Target, id: &str) -> Result<Step, ConnectorError> {
        const OP: &str = "PATCH /Users/{id} entitlements";
        let path = self.config.entitlements_path.as_str();
        let body = json!({
            "schemas": [PATCH_OP_SCHEMA],
            "Operations": [{"op": "remove", "path": path}],
        });
        let url = self.user_url(id)?;
        let response = self
            .request(&target.calls, OP, Method::PATCH, &url, Some(&body))
            .await?;
        match response.status {
            204 => Ok(Step::Done),
            207 => Err(partial(OP)),
            200..=299 => {
                let plain = !path.contains(['[', '.']);
                if let Some(user) = read_optional_resource(&response, OP)?
                    && plain
                {
                    let left = attr(&user, path)
                        .and_then(Value::as_array)
                        .map_or(0, Vec::len);
                    if left > 0 {
                        return Err(ConnectorError::new(
                            Fault::NotApplied,
                            format!(
                                "{OP}: HTTP {} but the user still has {left} {path}",
                                response.status
                            ),
                        ));
                    }
                }
                Ok(Step::Done)
            }
            404 => Ok(Step::Gone),
            // RFC 7644 §3.5.2.2: removing values a user does not have is "noTarget"; there is nothing to remove.
            400 if scim_type(&response.body).as_deref() == Some("noTarget") => Ok(Step::Skipped),
            _ => Err(self.action_error(&response, OP)),
        }
    }

    async fn delete(&self, target: &Target, id: &str) -> Result<Step, ConnectorError> {
        const OP: &str = "DELETE /Users/{id}";
        let url = self.user_url(id)?;
        let response = self
            .request(&target.calls, OP, Method::DELETE, &url, None)
            .await?;
        match response.status {
            204 => Ok(Step::Done),
            207 => Err(partial(OP)),
            200..=299 => {
                // No body is defined for a DELETE answer, but an error dressed as success is still an error.
                if let Ok(body) = serde_json::from_slice::<Value>(&response.body)
                    && let Some(e) = error_in_body(&body, OP)
                {
                    return Err(e);
                }
                Ok(Step::Done)
            }
            404 => Ok(Step::Gone),
            _ => Err(self.action_error(&response, OP)),
        }
    }

    // -----------------------------------------------------------------------------------------------------
    // Errors
    // -----------------------------------------------------------------------------------------------------

    /// A failed action: 405 and 501 mean the service does not offer it; otherwise as [`Self::http_error`].
    fn action_error(&self, response: &HttpResponse, op: &str) -> ConnectorError {
        if matches!(response.status, 405 | 501) {
            let detail = scim_error_message(&response.body)
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            return ConnectorError::new(
                Fault::RequestRejected,
                format!(
                    "{op}: HTTP {}: not supported by this service{detail}",
                    response.status
                ),
            );
        }
        self.http_error(response, op)
    }

    /// A non-success answer, classified by status (design §3) with the SCIM error's `scimType` and `detail`.
    fn http_error(&self, response: &HttpResponse, op: &str) -> ConnectorError {
        http_error(response, op)
    }

    async fn check(&self) -> Result<String, ConnectorError> {
        const OP: &str = "GET /Users?count=1";
        let calls = CallLog::default();
        let mut url = self.users_url()?;
        url.set_query(Some("startIndex=1&count=1"));
        let response = self.request(&calls, OP, Method::GET, &url, None).await?;
        if response.status != 200 {
            return Err(self.http_error(&response, OP));
        }
        let list = read_list(&response, OP)?;
        let how = match self.config.auth {
            ScimAuth::Anaplan { .. } => "logged in to Anaplan",
            ScimAuth::Bearer { .. } => "bearer token accepted",
        };
        Ok(format!(
            "{how}; GET /Users answered a SCIM list of {} user(s)",
            list.total.max(list.resources.len())
        ))
    }
}

impl super::Connector for ScimConnector {
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        Box::pin(async move {
            self.find(target)
                .await
                .map_err(|e| self.mask.error_for(e, target))
        })
    }

    fn resolve_bound<'a>(
        &'a self,
        target: &'a Target,
        bound: &'a Bound,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        Box::pin(async move {
            self.find_by_id(target, &bound.id)
                .await
                .map_err(|e| self.mask.error_for(e, target))
        })
    }

    fn remove<'a>(
        &'a self,
        target: &'a Target,
        account: &'a RemoteAccount,
    ) -> BoxFuture<'a, Result<RemovalOutcome, ConnectorError>> {
        Box::pin(async move {
            self.strip(target, account)
                .await
                .map_err(|e| self.mask.error_for(e, target))
        })
    }

    fn describe_removal(&self, target: &Target, account: &RemoteAccount) -> String {
        if target.stage == super::REACTIVATE {
            return format!(
                "would reactivate (PATCH replace active=true) SCIM user {}",
                account.id
            );
        }
        let steps: Vec<String> = self
            .actions_for(target)
            .iter()
            .map(|action| match action {
                ScimAction::Deactivate if summary(account, SUMMARY_ACTIVE) == Some("false") => {
                    "skip deactivate (already inactive)".to_string()
                }
                ScimAction::Deactivate => "deactivate (PATCH replace active=false)".to_string(),
                ScimAction::RemoveEntitlements
                    if summary(account, SUMMARY_ACCESS_VALUES) == Some("0") =>
                {
                    format!("skip remove_entitlements (no {})", self.access_attribute())
                }
                ScimAction::RemoveEntitlements => {
                    format!("remove {} (PATCH remove)", self.config.entitlements_path)
                }
                ScimAction::Delete => "delete (DELETE /Users/{id})".to_string(),
            })
            .collect();
        format!(
            "would {} for SCIM user {}",
            steps.join(", then "),
            account.id
        )
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>> {
        Box::pin(async move { self.check().await.map_err(|e| self.mask.error(e)) })
    }
}

// ---------------------------------------------------------------------------------------------------------
// SCIM shapes
// ---------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::connectors::Connector;
    use crate::connectors::ConnectorKind;
    use crate::connectors::ErrorClass;
    use crate::domain::Person;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const CONNECTOR_HEAD: &str = "[[connector]]\nname = \"anaplan\"\nkind = \"scim\"\n";

    fn load(dir: &Path, connector: &str) -> Result<Config, crate::config::ConfigError> {
        for name in ["token", "password"] {
            let path = dir.join(name);
            std::fs::write(&path, "s3cret-value\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Config::from_toml_str(
            &format!("{CONNECTOR_HEAD}{connector}"),
            &dir.join("offboard.toml"),
        )
    }

    fn scim_config(config: &Config) -> &ScimConfig {
        match &config.connectors[0].kind {
            ConnectorKind::Scim(scim) => scim,
            other => panic!("not a scim connector: {}", other.as_str()),
        }
    }

    #[test]
    fn filter_values_are_json_strings() {
        assert_eq!(
            eq_filter("userName", "ann@example.org"),
            r#"userName eq "ann@example.org""#
        );
        assert_eq!(
            eq_filter("userName", r#"o"brien\x"#),
            r#"userName eq "o\"brien\\x""#
        );
        assert_eq!(
            eq_filter("externalId", "a\tb\u{1}"),
            r#"externalId eq "a\tb\u0001""#
        );
        // A value cannot close the string early and smuggle in another condition.
        let sneaky = eq_filter("userName", r#"x" or userName pr or "y"#);
        assert_eq!(sneaky, r#"userName eq "x\" or userName pr or \"y""#);
    }

    #[test]
    fn a_filter_is_sent_percent_encoded_with_spaces_as_percent_20() {
        assert_eq!(
            encode_component(&eq_filter("userName", "a b+c@d/é")),
            "userName%20eq%20%22a%20b%2Bc%40d%2F%C3%A9%22"
        );
    }

    #[test]
    fn token_lifetime_is_measured_on_the_services_clock() {
        let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let ms = |t: DateTime<Utc>| Some(t.timestamp_millis() as f64);
        // 35 minutes from the service's Date, even though our clock is 10 minutes ahead of it.
        let server = at("2026-11-23T09:50:00Z");
        assert_eq!(
            token_lifetime(ms(at("2026-11-23T10:25:00Z")), Some(server), now),
            Duration::from_secs(35 * 60)
        );
        assert_eq!(
            token_lifetime(ms(at("2026-11-23T10:35:00Z")), None, now),
            Duration::from_secs(35 * 60)
        );
        // Missing, already expired or absurdly long: the documented 30 minutes.
        for expires in [
            None,
            ms(at("2026-11-23T09:00:00Z")),
            ms(at("2027-01-01T00:00:00Z")),
        ] {
            assert_eq!(
                token_lifetime(expires, None, now),
                ANAPLAN_DEFAULT_TOKEN_LIFETIME
            );
        }
    }

    #[test]
    fn booleans_may_be_strings() {
        assert_eq!(parse_bool(&json!(false)), Some(false));
        assert_eq!(parse_bool(&json!("True")), Some(true));
        assert_eq!(parse_bool(&json!(" false ")), Some(false));
        assert_eq!(parse_bool(&json!("no")), None);
        assert_eq!(parse_bool(&json!(0)), None);
    }

    #[test]
    fn attributes_are_found_ignoring_case() {
        let v = json!({"resources": [], "TotalResults": 0, "id": "x"});
        assert!(attr(&v, "Resources").is_some());
        assert!(attr(&v, "totalResults").is_some());
        assert!(attr(&v, "ID").is_some());
        assert!(attr(&v, "userName").is_none());
    }

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn read_answers_applies_every_reader_to_one_answer() {
        let now = Utc::now();
        let list = read_answers(
            &response(
                200,
                r#"{"totalResults": 1, "Resources": [{"id": "u1", "userName": "ann", "active": "False", "entitlements": [{}, {}]}]}"#,
            ),
            now,
        );
        assert_eq!(list.len(), 6);
        let first = list[0].as_ref().unwrap();
        assert!(first.starts_with("list of 1 (1 returned)"), "{first}");
        assert!(
            first.contains(
                r#"user u1 {\"access_values\": \"2\", \"active\": \"false\"} named=true"#
            ),
            "{first}"
        );
        // The same body is not a resource (no id at the top) and not a token answer.
        assert!(list[1].is_err());
        assert!(
            list[5]
                .as_ref()
                .unwrap_err()
                .reason
                .contains("no tokenInfo")
        );

        let error = read_answers(
            &response(
                409,
                r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "409", "scimType": "uniqueness", "detail": "taken"}"#,
            ),
            now,
        );
        let e = error[3].as_ref().unwrap_err();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert_eq!(e.reason, "error: HTTP 409: uniqueness: taken");
        assert_eq!(error[4].as_ref().unwrap(), "scimType Some(\"uniqueness\")");
    }

    #[test]
    fn list_responses_are_checked_for_shape() {
        let ok = read_list(
            &response(200, r#"{"totalResults": 0, "Resources": []}"#),
            "op",
        )
        .unwrap();
        assert_eq!((ok.total, ok.resources.len()), (0, 0));
        // Resources may be left out when nothing matches.
        let ok = read_list(&response(200, r#"{"totalResults": 0}"#), "op").unwrap();
        assert_eq!(ok.total, 0);
        for bad in [
            "[]",
            r#"{"users": []}"#,
            r#"{"totalResults": "1"}"#,
            r#"{"Resources": {}}"#,
            r#"{"Resources": [1]}"#,
        ] {
            let e = read_list(&response(200, bad), "op").err().unwrap();
            assert!(matches!(e.class, ErrorClass::Retryable { .. }), "{bad}");
            assert!(e.reason.contains("not a SCIM ListResponse"), "{}", e.reason);
        }
        let e = read_list(&response(200, "<html>login</html>"), "op")
            .err()
            .unwrap();
        assert!(e.reason.contains("not JSON"), "{}", e.reason);
        let e = read_list(
            &response(
                200,
                r#"{"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400", "scimType": "invalidFilter", "detail": "bad"}"#,
            ),
            "op",
        )
        .err()
        .unwrap();
        assert_eq!(e.class, ErrorClass::Permanent);
        assert!(e.reason.ends_with("SCIM error 400: invalidFilter: bad"));
    }

    #[test]
    fn a_bearer_connector_gets_its_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(
            dir.path(),
            "base_url = \"https://scim.example.org/scim/v2/\"\nauth = { kind = \"bearer\", token_file = \"token\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let scim = scim_config(&config);
        assert_eq!(scim.base_url, "https://scim.example.org/scim/v2");
        assert_eq!(scim.match_on, ScimMatch::UserName);
        assert_eq!(scim.actions, vec![ScimAction::Deactivate]);
        assert_eq!(scim.entitlements_path, "entitlements");
        assert_eq!(scim.timeout, Duration::from_secs(30));
        assert!(
            matches!(&scim.auth, ScimAuth::Bearer { token } if token.expose() == "s3cret-value")
        );
        assert_eq!(
            config.connectors[0].rate, None,
            "the connector applies DEFAULT_RATE"
        );
    }

    #[test]
    fn anaplan_with_delete_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let config = load(
            dir.path(),
            "base_url = \"https://api.anaplan.com/scim/1/0/v2\"\nmatch = \"id\"\nactions = [\"deactivate\", \"delete\"]\n\
             auth = { kind = \"anaplan\", username = \"svc@example.com\", password_file = \"password\" }\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let scim = scim_config(&config);
        assert_eq!(scim.match_on, ScimMatch::Id);
        let ScimAuth::Anaplan { auth_url, .. } = &scim.auth else {
            panic!("not anaplan")
        };
        assert_eq!(auth_url, "https://auth.anaplan.com");
        assert!(
            config.warnings.iter().any(
                |w| w.contains("connector.anaplan.actions has \"delete\"") && w.contains("501")
            ),
            "{:?}",
            config.warnings
        );
        assert!(!format!("{config:?}").contains("s3cret-value"));
    }

    #[test]
    fn bad_scim_settings_are_each_reported_with_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(
            dir.path(),
            "base_url = \"https://u:p@scim.example.org\"\nmatch = \"email\"\nactions = [\"delete\", \"deactivate\", \"wipe\"]\n\
             entitlements_path = \"emails\"\ntimeout = \"0s\"\nauth = { kind = \"bearer\", token_file = \"token\", username = \"x\" }\n",
        )
        .err()
        .unwrap();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "connector.anaplan.base_url",
            "connector.anaplan.match",
            "connector.anaplan.actions",
            "connector.anaplan.entitlements_path",
            "connector.anaplan.timeout",
            "connector.anaplan.auth.username",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let text = err.to_string();
        assert!(text.contains("out of order"), "{text}");
        assert!(text.contains("unknown action \"wipe\""), "{text}");
        assert!(!text.contains("u:p@"), "credentials are not echoed: {text}");
    }

    #[test]
    fn unknown_scim_keys_and_missing_auth_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(
            dir.path(),
            "base_url = \"https://scim.example.org\"\nfilter = \"userName\"\n",
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(text.contains("unknown field `filter`"), "{text}");
        assert!(text.contains("connector.anaplan.auth: missing"), "{text}");
        let err = load(
            dir.path(),
            "base_url = \"ftp://scim.example.org\"\nauth = { kind = \"anaplan\", password_file = \"password\", token_env = \"T\" }\n",
        )
        .err()
        .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("connector.anaplan.base_url: must start with http"),
            "{text}"
        );
        assert!(
            text.contains("connector.anaplan.auth.username_file: missing"),
            "{text}"
        );
        assert!(
            text.contains("connector.anaplan.auth.token_env: is not used"),
            "{text}"
        );
    }

    fn connector(actions: Vec<ScimAction>, path: &str) -> ScimConnector {
        ScimConnector::new(
            ScimConfig {
                base_url: "http://127.0.0.1:9/scim".into(),
                auth: ScimAuth::Anaplan {
                    username: Secret::new("svc@example.com".into()),
                    password: Secret::new("pa55word-xyz".into()),
                    auth_url: "http://127.0.0.1:9".into(),
                },
                match_on: ScimMatch::UserName,
                actions,
                entitlements_path: path.into(),
                timeout: Duration::from_secs(1),
                reactivate_on_rehire: false,
            },
            std::sync::Arc::new(Limiter::unlimited()),
            Clock::system(),
        )
        .unwrap()
    }

    #[test]
    fn vendor_text_loses_credentials_and_personal_identifiers() {
        let c = connector(vec![ScimAction::Deactivate], "entitlements");
        c.remember_token("tok-abcdef123456");
        let target = Target {
            removal_id: 1,
            attempt: 1,
            account: "ann.smith@example.org".into(),
            person: Person {
                employee_id: "E100".into(),
                email: Some("ann.smith@example.org".into()),
                username: Some("asmith".into()),
                display_name: Some("Ann Smith".into()),
                ..Person::default()
            },
            bound: None,
            stage: String::new(),
            calls: CallLog::default(),
        };
        let text = "user ANN.SMITH@example.org (Ann Smith, asmith, E100) with tok-abcdef123456 by svc@example.com:pa55word-xyz";
        assert_eq!(
            c.mask
                .mask_with_person(text, crate::connectors::mask::identifiers(&target)),
            "user <person> (<person>, <person>, E100) with <redacted> by <redacted>:<redacted>"
        );
    }

    #[test]
    fn dry_run_descriptions_say_what_each_step_would_do() {
        let c = connector(
            vec![
                ScimAction::Deactivate,
                ScimAction::RemoveEntitlements,
                ScimAction::Delete,
            ],
            "entitlements[type eq \"WORKSPACE\"]",
        );
        let target = Target {
            removal_id: 1,
            attempt: 1,
            account: "a@example.org".into(),
            person: Person::default(),
            bound: None,
            stage: String::new(),
            calls: CallLog::default(),
        };
        let mut account = c.remote(
            &json!({"id": "u1", "active": "False", "entitlements": []}),
            "u1",
        );
        assert_eq!(
            c.describe_removal(&target, &account),
            "would skip deactivate (already inactive), then skip remove_entitlements (no entitlements), then delete (DELETE /Users/{id}) for SCIM user u1"
        );
        account = c.remote(
            &json!({"id": "u1", "active": true, "entitlements": [{"value": "w"}]}),
            "u1",
        );
        assert_eq!(
            c.describe_removal(&target, &account),
            "would deactivate (PATCH replace active=false), then remove entitlements[type eq \"WORKSPACE\"] (PATCH remove), then delete (DELETE /Users/{id}) for SCIM user u1"
        );
    }

    #[test]
    fn the_example_scim_blocks_load_once_uncommented() {
        let example = include_str!("../../../config/offboard.example.toml");
        let start = example
            .find("# --- SCIM connectors")
            .expect("the example has a SCIM section");
        let text: String = example[start..]
            .lines()
            .skip(1)
            .filter_map(|l| l.strip_prefix("# "))
            .map(|l| format!("{l}\n"))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        for name in ["anaplan-password", "wiki-scim-token"] {
            let path = dir.path().join(name);
            std::fs::write(&path, "s3cret-value\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = Config::from_toml_str(&text, &dir.path().join("offboard.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let anaplan = scim_config(&config);
        assert_eq!(
            anaplan.entitlements_path,
            "entitlements[type eq \"WORKSPACE\"]"
        );
        assert_eq!(
            anaplan.actions,
            vec![ScimAction::Deactivate, ScimAction::RemoveEntitlements]
        );
        assert!(
            matches!(&anaplan.auth, ScimAuth::Anaplan { auth_url, .. } if auth_url == "https://auth.anaplan.com")
        );
        let ConnectorKind::Scim(wiki) = &config.connectors[1].kind else {
            panic!("not scim")
        };
        assert!(matches!(wiki.auth, ScimAuth::Bearer { .. }));
        for key in [
            "base_url",
            "match",
            "actions",
            "entitlements_path",
            "timeout",
            "auth_url",
            "username",
            "password_file",
        ] {
            assert!(text.contains(&format!("{key} =")), "{key} is not shown");
        }
    }

    #[test]
    fn token_answers_are_read_and_a_cut_off_one_does_not_leak_the_token() {
        let c = connector(vec![ScimAction::Deactivate], "entitlements");
        let op = "POST /token/authenticate";
        let e = c
            .read_token(
                &response(201, r#"{"tokenInfo": {"tokenValue": "tok-cut-off-9f8e"#),
                op,
            )
            .err()
            .unwrap();
        assert!(!e.reason.contains("tok-cut-off"), "{}", e.reason);
        assert!(matches!(e.class, ErrorClass::Retryable { after: None }));
        let e = c
            .read_token(&response(201, r#"{"tokenInfo": {"tokenValue": ""}}"#), op)
            .err()
            .unwrap();
        assert_eq!(
            e.reason,
            "POST /token/authenticate: HTTP 201 but no tokenValue"
        );

        let expires = Utc::now().timestamp_millis() + 35 * 60 * 1000;
        let token = c
            .read_token(
                &response(
                    201,
                    &format!(r#"{{"tokenInfo": {{"tokenValue": "tok-good-1234", "expiresAt": {expires}}}}}"#),
                ),
                op,
            )
            .unwrap();
        assert_eq!(token.value.expose(), "tok-good-1234");
        let left = token.valid_until - Utc::now();
        assert!(left > chrono::Duration::minutes(34) && left <= chrono::Duration::minutes(35));
        assert_eq!(c.mask.mask("x tok-good-1234 y"), "x <redacted> y");
    }
}
