//! The `echo360` connector: EchoVideo users through the public REST API, authenticated with an
//! OAuth2 client-credentials token that the connector's workers share.
//!
//! Lookup is by email (`GET users/{email}`), or by `ssoId` / `externalId` through an index built
//! by paging the user list and kept for `index_ttl`, so a batch of leavers costs one scan. Removal
//! is `DELETE users/{id}`, or a deactivation: read the user, set the configured fields, write it
//! back with `PUT`. Echo360's system anonymous accounts are never touched.

pub mod config;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::Value;

use super::classify::refuses_credential;
use super::http::{CachedToken, HttpClient, HttpResponse, TokenSlot, encode_component, status_error, vendor_message};
use super::limit::Limiter;
use super::mask::{Mask, identifiers, personal};
use super::{
    Bound,
    BoxFuture, CallLog, ConnectorError, Fault, RemoteAccount, RemovalOutcome, Resolution, Target,
};
use crate::clock::Clock;
use crate::config::{Rate, Secret};
use crate::connectors::echo360::config::{Echo360Action, Echo360Config, Echo360Match};

/// Echo360 allows 120 calls per minute per institution.
pub const DEFAULT_RATE: Rate = Rate {
    calls: 2,
    per: Duration::from_secs(1),
};

/// The email of Echo360's system anonymous user, which backs public section links.
pub const ANONYMOUS_EMAIL: &str = "anonymous@echo360.com";

/// Names of Echo360's per-section anonymous users start with this.
pub const ANONYMOUS_NAME_PREFIX: &str = "Anon-";

/// A token is replaced this long before it expires (at most half its lifetime).
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Token lifetime assumed when the token response gives none (Echo360's tokens last one hour).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// A scan stops with an error after this many pages (a `next` link that never ends).
const MAX_PAGES: usize = 100_000;

/// Checks an account key at planning time: an email for `match = "email"`, and never the
/// system anonymous account. The reason never repeats the key.
pub fn check_account(config: &Echo360Config, account: &str) -> Result<(), String> {
    if account.trim().eq_ignore_ascii_case(ANONYMOUS_EMAIL) {
        return Err(format!(
            "{ANONYMOUS_EMAIL} is Echo360's system anonymous account, which offboard never removes"
        ));
    }
    if config.match_by == Echo360Match::Email && !account.contains('@') {
        return Err(
            "match = \"email\" looks users up by email, and the account key is not an email".into(),
        );
    }
    Ok(())
}

/// The refusal for an anonymous account, if `user` is one.
fn anonymous_refusal(user: &User) -> Option<ConnectorError> {
    let email = user
        .email
        .as_deref()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(ANONYMOUS_EMAIL));
    let named = [&user.first_name, &user.last_name]
        .into_iter()
        .flatten()
        .any(|n| {
            n.trim()
                .to_ascii_lowercase()
                .starts_with(&ANONYMOUS_NAME_PREFIX.to_ascii_lowercase())
        });
    (email || named).then(|| {
        ConnectorError::new(Fault::Protected, format!(
            "refusing to remove Echo360 user {}: it is a system anonymous account ({ANONYMOUS_EMAIL} or a name \
             starting \"{ANONYMOUS_NAME_PREFIX}\"), which backs public section links and is never removed",
            user.id
        ))
    })
}

/// What the connector keeps of a user.
#[derive(Debug, Clone)]
struct User {
    id: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    sso_id: Option<String>,
    external_id: Option<String>,
}

impl User {
    /// Reads a user object; `None` when it has no id.
    fn from_json(value: &Value) -> Option<User> {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let id = match value.get("id")? {
            Value::String(s) if !s.is_empty() => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(User {
            id,
            email: text("email"),
            first_name: text("firstName"),
            last_name: text("lastName"),
            sso_id: text("ssoId"),
            external_id: text("externalId"),
        })
    }

    fn key(&self, match_by: Echo360Match) -> Option<&str> {
        match match_by {
            Echo360Match::Email => self.email.as_deref(),
            Echo360Match::SsoId => self.sso_id.as_deref(),
            Echo360Match::ExternalId => self.external_id.as_deref(),
        }
    }

    fn remote(&self) -> RemoteAccount {
        RemoteAccount {
            id: self.id.clone(),
            summary: BTreeMap::new(),
            found_by: None,
        }
    }
}

/// Keys compare after trimming, ignoring ASCII case: a case difference must not turn a leaver
/// into "already absent" (two users differing only in case come out ambiguous instead).
fn normalize(key: &str) -> String {
    key.trim().to_ascii_lowercase()
}

/// A cached access token.
struct Token {
    value: Secret,
    refresh_at: DateTime<Utc>,
}

impl CachedToken for Token {
    fn secret(&self) -> &Secret {
        &self.value
    }
}

/// Users by the configured key, from one scan of the user list.
struct UserIndex {
    built_at: DateTime<Utc>,
    by_key: HashMap<String, Vec<User>>,
}

/// Removes EchoVideo users.
pub struct Echo360Connector {
    config: Echo360Config,
    http: HttpClient,
    clock: Clock,
    token: TokenSlot<Token>,
    index: tokio::sync::Mutex<Option<UserIndex>>,
    /// The client credentials and issued tokens, masked in every reason.
    mask: Mask,
}

impl Echo360Connector {
    /// A connector for this config; token expiry and the index age are read from `clock`.
    pub fn new(config: Echo360Config, limiter: Arc<Limiter>, clock: Clock) -> anyhow::Result<Self> {
        Url::parse(&config.base_url)?;
        let mask = Mask::new()
            .with_secret(config.client_id.expose())
            .with_secret(config.client_secret.expose());
        Ok(Self {
            http: HttpClient::new(config.timeout, limiter)?,
            mask,
            config,
            clock,
            token: TokenSlot::default(),
            index: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> Result<Url, ConnectorError> {
        Url::parse(&format!("{}{path}", self.config.base_url))
            .map_err(|e| ConnectorError::new(Fault::Unsendable, format!("bad request URL: {e}")))
    }

    fn user_url(&self, id: &str) -> Result<Url, ConnectorError> {
        self.url(
            &self
                .config
                .paths
                .user
                .replace("{id}", &encode_component(id)),
        )
    }

    /// The operation label of a call on one user, e.g. `DELETE /public/api/v1/users/{id}`.
    fn user_operation(&self, method: &str, placeholder: &str) -> String {
        format!(
            "{method} {}",
            self.config.paths.user.replace("{id}", placeholder)
        )
    }

    /// The shared token, granting a new one when there is none or it is about to expire. The lock
    /// is held over the grant so that concurrent workers wait for one grant instead of each
    /// asking.
    async fn token(&self, target: &Target) -> Result<Secret, ConnectorError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && self.clock.now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let token = self.grant(&target.calls).await?;
        let value = token.value.clone();
        *cached = Some(token);
        Ok(value)
    }


    /// `POST {token path}` with a form body (never a query string, which ends up in logs).
    async fn grant(&self, calls: &CallLog) -> Result<Token, ConnectorError> {
        let operation = format!("POST {}", self.config.paths.token);
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            encode_component(self.config.client_id.expose()),
            encode_component(self.config.client_secret.expose())
        );
        let request = self
            .http
            .client()
            .post(self.url(&self.config.paths.token)?)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        let issued_at = self.clock.now();
        let response = self.http.send(calls, &operation, request).await?;
        match response.status {
            200 => {}
            400 | 401 | 403 => {
                // Only the OAuth error code: a description might repeat the client id.
                let code = serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                    .filter(|c| {
                        c.len() <= 64 && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                    });
                let reason = match code {
                    Some(code) => format!(
                        "{operation}: HTTP {}: the client credentials were refused ({code})",
                        response.status
                    ),
                    None => format!(
                        "{operation}: HTTP {}: the client credentials were refused",
                        response.status
                    ),
                };
                return Err(ConnectorError::new(Fault::CredentialRefused, reason));
            }
            _ => return Err(status_error(&response, &operation, None)),
        }
        // Never excerpt this body: it holds the token.
        let parsed: Value = serde_json::from_slice(&response.body).map_err(|_| {
            ConnectorError::new(
                Fault::Malformed,
                format!("{operation}: the token response is not JSON"),
            )
        })?;
        let value = parsed
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ConnectorError::new(
                    Fault::Malformed,
                    format!("{operation}: the token response has no access_token"),
                )
            })?;
        self.mask.remember(value);
        let lifetime = parsed
            .get("expires_in")
            .and_then(Value::as_u64)
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = TOKEN_REFRESH_MARGIN.min(lifetime / 2);
        let refresh_at = issued_at
            + chrono::Duration::from_std(lifetime - margin).unwrap_or(chrono::Duration::zero());
        Ok(Token {
            value: Secret::new(value.to_string()),
            refresh_at,
        })
    }

    /// Sends an authenticated request built by `build`. A refusal (401, 403) is an error, for the
    /// worker's one credential policy ([`crate::connectors::classify`]); the refused token is
    /// dropped first, so that the call the worker makes once more gets a fresh one.
    async fn call(
        &self,
        target: &Target,
        operation: &str,
        build: impl Fn() -> Result<reqwest::RequestBuilder, ConnectorError>,
    ) -> Result<HttpResponse, ConnectorError> {
        let token = self.token(target).await?;
        let response = self
            .http
            .send(
                &target.calls,
                operation,
                build()?.bearer_auth(token.expose()),
            )
            .await?;
        if refuses_credential(response.status) {
            self.token.forget(&token).await;
            return Err(self.failure(target, operation, &response));
        }
        Ok(response)
    }

    /// The error for an answer that is not a success, with the vendor's message.
    fn failure(&self, target: &Target, operation: &str, response: &HttpResponse) -> ConnectorError {
        let message = vendor_message(&response.body).map(|m| personal(&m, identifiers(target)));
        if refuses_credential(response.status) {
            let reason = match message {
                Some(m) => format!(
                    "{operation}: HTTP {}: the API refused the token: {m}",
                    response.status
                ),
                None => format!(
                    "{operation}: HTTP {}: the API refused the token",
                    response.status
                ),
            };
            return ConnectorError::new(Fault::CredentialRefused, reason);
        }
        status_error(response, operation, message.as_deref())
    }

    fn malformed(operation: &str, what: &str) -> ConnectorError {
        ConnectorError::new(
            Fault::Malformed,
            format!("{operation}: malformed response: {what}"),
        )
    }

    /// `GET users/{email}`: the one user with this email, or none.
    async fn find_by_email(&self, target: &Target) -> Result<Option<User>, ConnectorError> {
        let operation = self.user_operation("GET", "{email}");
        let user = self.get_user(target, &operation, &target.account).await?;
        // The endpoint takes an id or an email: make sure the answer is the user asked for.
        if let Some(user) = &user
            && user
                .email
                .as_deref()
                .is_none_or(|e| normalize(e) != normalize(&target.account))
        {
            return Err(ConnectorError::new(
                Fault::WrongAccount,
                format!(
                    "{operation}: Echo360 answered with user {}, whose email is not the account key; not removing it",
                    user.id
                ),
            ));
        }
        Ok(user)
    }

    /// `GET users/{id}`: the user with this id (a removal bound to it looks for nothing else).
    async fn find_by_id(&self, target: &Target, id: &str) -> Result<Resolution, ConnectorError> {
        let operation = self.user_operation("GET", "{id}");
        match self.get_user(target, &operation, id).await? {
            None => Ok(Resolution::NotFound),
            Some(user) if user.id != id => Err(ConnectorError::new(
                Fault::WrongAccount,
                format!(
                    "{operation}: Echo360 answered with user {}, not the user asked for; not removing it",
                    user.id
                ),
            )),
            Some(user) => match anonymous_refusal(&user) {
                Some(refusal) => Err(refusal),
                None => Ok(Resolution::Found(user.remote())),
            },
        }
    }

    /// `GET users/{id or email}`: the user, or none on a 404.
    async fn get_user(
        &self,
        target: &Target,
        operation: &str,
        id_or_email: &str,
    ) -> Result<Option<User>, ConnectorError> {
        let response = self
            .call(target, operation, || {
                Ok(self
                    .http
                    .client()
                    .get(self.user_url(id_or_email)?)
                    .header(ACCEPT, "application/json"))
            })
            .await?;
        match response.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.failure(target, operation, &response)),
        }
        let body: Value = serde_json::from_slice(&response.body)
            .map_err(|_| Self::malformed(operation, "the body is not JSON"))?;
        let user = User::from_json(&body).ok_or_else(|| {
            // A 200 carrying Echo360's error shape (`{"message": ...}`): name the message.
            match vendor_message(&response.body).map(|m| personal(&m, identifiers(target))) {
                Some(m) => Self::malformed(
                    operation,
                    &format!("the body is not a user with an id; Echo360 says: {m}"),
                ),
                None => Self::malformed(operation, "the body is not a user with an id"),
            }
        })?;
        Ok(Some(user))
    }

    /// The users whose configured key equals the account key, from the cached index or a new
    /// scan. The lock is held over a scan so that concurrent workers share it.
    async fn find_in_index(&self, target: &Target) -> Result<Vec<User>, ConnectorError> {
        let mut index = self.index.lock().await;
        let now = self.clock.now();
        let fresh = index.as_ref().is_some_and(|ix| {
            !self.config.index_ttl.is_zero()
                && (now - ix.built_at)
                    .to_std()
                    .is_ok_and(|age| age < self.config.index_ttl)
        });
        if !fresh {
            // A failed scan leaves no index rather than the stale one.
            *index = None;
            *index = Some(self.scan(target).await?);
        }
        Ok(index
            .as_ref()
            .and_then(|ix| ix.by_key.get(&normalize(&target.account)))
            .cloned()
            .unwrap_or_default())
    }

    /// Drops a removed user from the cached index.
    async fn forget_user(&self, id: &str) {
        if let Some(index) = self.index.lock().await.as_mut() {
            for users in index.by_key.values_mut() {
                users.retain(|u| u.id != id);
            }
        }
    }

    /// Pages through the user list, following each page's opaque `next` link.
    async fn scan(&self, target: &Target) -> Result<UserIndex, ConnectorError> {
        let operation = format!("GET {}", self.config.paths.users);
        let built_at = self.clock.now();
        let base = self.url(&self.config.paths.users)?;
        let mut url = base.clone();
        url.query_pairs_mut()
            .append_pair("limit", &self.config.page_size.to_string());
        let mut seen = HashSet::new();
        let mut by_key: HashMap<String, Vec<User>> = HashMap::new();
        for _ in 0..MAX_PAGES {
            seen.insert(url.to_string());
            let page_url = url.clone();
            let response = self
                .call(target, &operation, || {
                    Ok(self
                        .http
                        .client()
                        .get(page_url.clone())
                        .header(ACCEPT, "application/json"))
                })
                .await?;
            if response.status != 200 {
                return Err(self.failure(target, &operation, &response));
            }
            let body: Value = serde_json::from_slice(&response.body)
                .map_err(|_| Self::malformed(&operation, "the body is not JSON"))?;
            let Some(Value::Array(data)) = body.get("data") else {
                return Err(Self::malformed(&operation, "no `data` list of users"));
            };
            for item in data {
                let user = User::from_json(item)
                    .ok_or_else(|| Self::malformed(&operation, "a user without an id"))?;
                if let Some(key) = user.key(self.config.match_by) {
                    by_key.entry(normalize(key)).or_default().push(user);
                }
            }
            let next = match body.get("next") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.trim().is_empty() => None,
                Some(Value::String(s)) => Some(s.as_str()),
                Some(_) => return Err(Self::malformed(&operation, "`next` is not a string")),
            };
            let Some(next) = next.filter(|_| !data.is_empty()) else {
                return Ok(UserIndex { built_at, by_key });
            };
            let next = base
                .join(next)
                .map_err(|_| Self::malformed(&operation, "`next` is not a URL"))?;
            // Following the link sends the token: only to the configured host.
            if next.origin() != base.origin() {
                return Err(ConnectorError::new(
                    Fault::Unsendable,
                    format!(
                        "{operation}: the `next` link points to another host; not sending the token there"
                    ),
                ));
            }
            // The cursor ends when the link carries no offset.
            if !next
                .query_pairs()
                .any(|(k, v)| k == "offset" && !v.is_empty())
            {
                return Ok(UserIndex { built_at, by_key });
            }
            if seen.contains(next.as_str()) {
                return Err(Self::malformed(
                    &operation,
                    "`next` leads back to a page already read",
                ));
            }
            url = next;
        }
        Err(Self::malformed(
            &operation,
            &format!("more than {MAX_PAGES} pages"),
        ))
    }

    async fn resolve_user(&self, target: &Target) -> Result<Resolution, ConnectorError> {
        let users = match self.config.match_by {
            Echo360Match::Email => self.find_by_email(target).await?.into_iter().collect(),
            Echo360Match::SsoId | Echo360Match::ExternalId => self.find_in_index(target).await?,
        };
        match users.as_slice() {
            [] => Ok(Resolution::NotFound),
            [user] => match anonymous_refusal(user) {
                Some(refusal) => Err(refusal),
                None => Ok(Resolution::Found(user.remote())),
            },
            many => Ok(Resolution::Ambiguous(many.len())),
        }
    }

    async fn delete(&self, target: &Target, id: &str) -> Result<RemovalOutcome, ConnectorError> {
        let operation = self.user_operation("DELETE", "{id}");
        let response = self
            .call(target, &operation, || {
                Ok(self
                    .http
                    .client()
                    .delete(self.user_url(id)?)
                    .header(ACCEPT, "application/json"))
            })
            .await?;
        let outcome = match response.status {
            404 => RemovalOutcome::AlreadyAbsent,
            204 => RemovalOutcome::Removed,
            200 => {
                // Echo360 answers a delete with the JSON string "ok".
                let body: Option<Value> = serde_json::from_slice(&response.body).ok();
                if body.as_ref().and_then(Value::as_str) != Some("ok") {
                    return Err(Self::malformed(
                        &operation,
                        "the answer to a delete is not the JSON string \"ok\"",
                    ));
                }
                RemovalOutcome::Removed
            }
            _ => return Err(self.failure(target, &operation, &response)),
        };
        self.forget_user(id).await;
        Ok(outcome)
    }

    /// Reads the user, sets the configured fields, and writes the whole object back.
    async fn deactivate(
        &self,
        target: &Target,
        id: &str,
        set: &serde_json::Map<String, Value>,
    ) -> Result<RemovalOutcome, ConnectorError> {
        let get = self.user_operation("GET", "{id}");
        let response = self
            .call(target, &get, || {
                Ok(self
                    .http
                    .client()
                    .get(self.user_url(id)?)
                    .header(ACCEPT, "application/json"))
            })
            .await?;
        match response.status {
            200 => {}
            404 => return Ok(RemovalOutcome::AlreadyAbsent),
            _ => return Err(self.failure(target, &get, &response)),
        }
        let mut object = match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(object)) => object,
            _ => return Err(Self::malformed(&get, "the body is not a user object")),
        };
        let user = User::from_json(&Value::Object(object.clone()))
            .ok_or_else(|| Self::malformed(&get, "the user has no id"))?;
        if user.id != id {
            return Err(ConnectorError::new(
                Fault::WrongAccount,
                format!("{get}: Echo360 answered with another user; not changing it"),
            ));
        }
        if let Some(refusal) = anonymous_refusal(&user) {
            return Err(refusal);
        }
        if set.iter().all(|(k, v)| object.get(k) == Some(v)) {
            return Ok(RemovalOutcome::Deactivated);
        }
        for (k, v) in set {
            object.insert(k.clone(), v.clone());
        }
        let body = Value::Object(object).to_string();
        let put = self.user_operation("PUT", "{id}");
        let response = self
            .call(target, &put, || {
                Ok(self
                    .http
                    .client()
                    .put(self.user_url(id)?)
                    .header(CONTENT_TYPE, "application/json")
                    .header(ACCEPT, "application/json")
                    .body(body.clone()))
            })
            .await?;
        match response.status {
            200..=299 => Ok(RemovalOutcome::Deactivated),
            404 => Ok(RemovalOutcome::AlreadyAbsent),
            _ => Err(self.failure(target, &put, &response)),
        }
    }

    async fn probe_api(&self) -> Result<String, ConnectorError> {
        let calls = CallLog::default();
        let token = self.grant(&calls).await?;
        let operation = format!("GET {}", self.config.paths.users);
        let mut url = self.url(&self.config.paths.users)?;
        url.query_pairs_mut().append_pair("limit", "1");
        let response = self
            .http
            .send(
                &calls,
                &operation,
                self.http
                    .client()
                    .get(url)
                    .header(ACCEPT, "application/json")
                    .bearer_auth(token.value.expose()),
            )
            .await?;
        if response.status != 200 {
            return Err(status_error(
                &response,
                &operation,
                vendor_message(&response.body).as_deref(),
            ));
        }
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(body) if body.get("data").is_some_and(Value::is_array) => {
                Ok("token granted; the user list is readable".to_string())
            }
            _ => Err(Self::malformed(&operation, "no `data` list of users")),
        }
    }
}

impl super::Connector for Echo360Connector {
    fn resolve<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Resolution, ConnectorError>> {
        Box::pin(async move {
            self.resolve_user(target)
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
            match &self.config.action {
                Echo360Action::Delete => self.delete(target, &account.id).await,
                Echo360Action::Deactivate { set } => {
                    self.deactivate(target, &account.id, set).await
                }
            }
            .map_err(|e| self.mask.error_for(e, target))
        })
    }

    fn describe_removal(&self, _target: &Target, account: &RemoteAccount) -> String {
        match &self.config.action {
            Echo360Action::Delete => format!("would delete Echo360 user {}", account.id),
            Echo360Action::Deactivate { set } => format!(
                "would deactivate Echo360 user {} by setting {}",
                account.id,
                set.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    fn probe(&self) -> BoxFuture<'_, Result<String, ConnectorError>> {
        Box::pin(async move { self.probe_api().await.map_err(|e| self.mask.error(e)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str, first: &str) -> User {
        User::from_json(&serde_json::json!({
            "id": "u1", "email": email, "firstName": first, "lastName": "X"
        }))
        .unwrap()
    }

    #[test]
    fn anonymous_accounts_are_recognised_by_email_or_name() {
        assert!(anonymous_refusal(&user("Anonymous@Echo360.com", "Ann")).is_some());
        let by_name = anonymous_refusal(&user("a1@example.org", "Anon-4f2a")).unwrap();
        assert_eq!(by_name.class, super::super::ErrorClass::Permanent);
        assert!(by_name.reason.contains("never removed"));
        assert!(anonymous_refusal(&user("anna@example.org", "Anna")).is_none());
    }

    #[test]
    fn users_need_an_id_and_keys_compare_without_case() {
        assert!(User::from_json(&serde_json::json!({"email": "a@b.org"})).is_none());
        let u = User::from_json(&serde_json::json!({"id": 42, "ssoId": " JDoe "})).unwrap();
        assert_eq!(u.id, "42");
        assert_eq!(
            normalize(u.key(Echo360Match::SsoId).unwrap()),
            normalize("jdoe")
        );
    }
}
