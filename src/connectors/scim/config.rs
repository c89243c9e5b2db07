//! `kind = "scim"` settings: the SCIM base URL, bearer or Anaplan authentication, the attribute a leaver is
//! looked up by, and the removal's steps.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::ScimConnector;
use crate::clock::Clock;
use crate::config::{ConnectorConfig, Rate, Secret, Validator, WorkersConfig};
use crate::connectors::limit::Limiter;
use crate::connectors::{Connector, KindConfig};

/// Default scim `timeout`.
pub const DEFAULT_SCIM_TIMEOUT: Duration = Duration::from_secs(30);

/// Default scim `entitlements_path`.
pub const DEFAULT_SCIM_ENTITLEMENTS_PATH: &str = "entitlements";

/// Default scim `auth.auth_url` for the anaplan flavour.
pub const DEFAULT_ANAPLAN_AUTH_URL: &str = "https://auth.anaplan.com";

/// `kind = "scim"`: finds the user on a SCIM 2.0 service (RFC 7644) and deactivates, strips or deletes it.
#[derive(Debug, Clone)]
pub struct ScimConfig {
    /// The SCIM base URL without a trailing slash, e.g. `https://api.anaplan.com/scim/1/0/v2`.
    pub base_url: String,
    /// How requests are authenticated.
    pub auth: ScimAuth,
    /// Which user attribute the rendered account key is compared with.
    pub match_on: ScimMatch,
    /// What removal means, in the order it is done (deactivate, remove_entitlements, delete); never empty.
    pub actions: Vec<ScimAction>,
    /// The PATCH `remove` path for `remove_entitlements`, e.g. `entitlements[type eq "WORKSPACE"]`.
    pub entitlements_path: String,
    /// Limit for one whole HTTP request.
    pub timeout: Duration,
    /// A rehire after this connector deactivated the account makes it active again (PATCH active=true).
    pub reactivate_on_rehire: bool,
}

/// How a scim connector authenticates.
#[derive(Debug, Clone)]
pub enum ScimAuth {
    /// `Authorization: Bearer <token>` with a static token.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// Anaplan: log in with Basic credentials at `auth_url`, then send `Authorization: AnaplanAuthToken <token>`.
    Anaplan {
        /// The login (an email address) of the service user.
        username: Secret,
        /// Its password.
        password: Secret,
        /// The authentication service without a trailing slash, e.g. `https://auth.anaplan.com`.
        auth_url: String,
    },
}

/// The SCIM attribute a scim connector looks the account key up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimMatch {
    /// `filter=userName eq "<account>"`.
    UserName,
    /// `filter=externalId eq "<account>"`.
    ExternalId,
    /// `GET /Users/<account>`: the account key is the service's own user id.
    Id,
}

impl ScimMatch {
    /// The attribute name as SCIM spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserName => "userName",
            Self::ExternalId => "externalId",
            Self::Id => "id",
        }
    }
}

/// One step of a scim removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScimAction {
    /// PATCH `replace active false`.
    Deactivate,
    /// PATCH `remove` on the configured entitlements path.
    RemoveEntitlements,
    /// DELETE the user.
    Delete,
}

impl ScimAction {
    /// The action named `name` as in `actions` (and a stage's `action`).
    pub fn parse(name: &str) -> Option<ScimAction> {
        [Self::Deactivate, Self::RemoveEntitlements, Self::Delete]
            .into_iter()
            .find(|a| a.as_str() == name)
    }

    /// The action as written in `actions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::RemoveEntitlements => "remove_entitlements",
            Self::Delete => "delete",
        }
    }
}

/// The scim keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawScim {
    base_url: Option<String>,
    /// Boxed: the auth table is large next to the other kinds.
    auth: Option<Box<RawScimAuth>>,
    #[serde(rename = "match")]
    match_on: Option<String>,
    actions: Option<Vec<String>>,
    entitlements_path: Option<String>,
    timeout: Option<String>,
    reactivate_on_rehire: Option<bool>,
}

/// The scim `auth` table as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawScimAuth {
    kind: Option<String>,
    token_file: Option<String>,
    token_env: Option<String>,
    username: Option<String>,
    username_file: Option<String>,
    username_env: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    auth_url: Option<String>,
}

impl KindConfig for ScimConfig {
    type Raw = RawScim;

    const DEFAULT_RATE: Option<Rate> = Some(super::DEFAULT_RATE);

    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: RawScim,
        workers: &WorkersConfig,
    ) -> Option<ScimConfig> {
        let before = cx.problem_count();
        let base_key = format!("{prefix}.base_url");
        let base_url = match raw.base_url.as_deref() {
            None => {
                cx.problem(
                    &base_key,
                    "missing; set the SCIM base URL, e.g. \"https://api.anaplan.com/scim/1/0/v2\"",
                );
                None
            }
            Some(url) => scim_service_url(cx, &base_key, url),
        };
        let auth = match raw.auth {
            None => {
                cx.problem(
                    &format!("{prefix}.auth"),
                    "missing; set auth = { kind = \"bearer\", token_file = \"…\" } or kind = \"anaplan\"",
                );
                None
            }
            Some(auth) => scim_auth(cx, &format!("{prefix}.auth"), *auth),
        };
        let match_on = match raw.match_on.as_deref() {
            None => ScimMatch::UserName,
            Some(m) if m.eq_ignore_ascii_case("userName") => ScimMatch::UserName,
            Some(m) if m.eq_ignore_ascii_case("externalId") => ScimMatch::ExternalId,
            Some(m) if m.eq_ignore_ascii_case("id") => ScimMatch::Id,
            Some(other) => {
                cx.problem(
                    &format!("{prefix}.match"),
                    format!("unknown attribute {other:?}; expected \"userName\", \"externalId\" or \"id\""),
                );
                ScimMatch::UserName
            }
        };
        let actions = scim_actions(cx, &format!("{prefix}.actions"), raw.actions);
        let path_key = format!("{prefix}.entitlements_path");
        let entitlements_path = match raw.entitlements_path {
            None => DEFAULT_SCIM_ENTITLEMENTS_PATH.to_string(),
            Some(path) => {
                let path = path.trim().to_string();
                let attribute = path
                    .split(['[', '.'])
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if attribute != "entitlements" && attribute != "roles" {
                    cx.problem(
                        &path_key,
                        format!("{path:?} does not name entitlements or roles; e.g. \"entitlements\" or \"entitlements[type eq \\\"WORKSPACE\\\"]\""),
                    );
                } else if path.chars().any(char::is_control) {
                    cx.problem(&path_key, "contains a control character");
                }
                if !actions.contains(&ScimAction::RemoveEntitlements) {
                    cx.warn(format!(
                        "{path_key} is set but {prefix}.actions has no \"remove_entitlements\": it is not used"
                    ));
                }
                path
            }
        };
        let timeout = cx.call_timeout(
            prefix,
            raw.timeout.as_deref(),
            DEFAULT_SCIM_TIMEOUT,
            workers,
        );
        if matches!(auth, Some(ScimAuth::Anaplan { .. })) && actions.contains(&ScimAction::Delete) {
            cx.warn(format!(
                "{prefix}.actions has \"delete\", but Anaplan answers DELETE /Users with 501 Not Implemented, so every removal would fail; use [\"deactivate\", \"remove_entitlements\"]"
            ));
        }
        if cx.problem_count() > before {
            return None;
        }
        Some(ScimConfig {
            base_url: base_url?,
            auth: auth?,
            match_on,
            actions,
            entitlements_path,
            timeout,
            reactivate_on_rehire: raw.reactivate_on_rehire.unwrap_or(false),
        })
    }

    fn stage_actions(&self) -> Vec<&'static str> {
        vec!["deactivate", "remove_entitlements", "delete"]
    }

    fn deletes(&self) -> bool {
        self.actions.contains(&ScimAction::Delete)
    }

    fn reactivates(&self) -> bool {
        self.reactivate_on_rehire
    }

    fn limit_scope(&self) -> Option<String> {
        // A SCIM service counts per token (or per Anaplan user).
        let identity = match &self.auth {
            ScimAuth::Bearer { token } => token.expose(),
            ScimAuth::Anaplan { username, .. } => username.expose(),
        };
        Some(crate::connectors::kind::limit_scope(&self.base_url, identity))
    }

    fn build(
        &self,
        _connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>> {
        Ok(Arc::new(ScimConnector::new(
            self.clone(),
            limiter,
            clock.clone(),
        )?))
    }
}

fn scim_auth(cx: &mut Validator<'_>, key: &str, raw: RawScimAuth) -> Option<ScimAuth> {
    let RawScimAuth {
        kind,
        token_file,
        token_env,
        username,
        username_file,
        username_env,
        password_file,
        password_env,
        auth_url,
    } = raw;
    let unused = |cx: &mut Validator<'_>, kind: &str, keys: &[(&str, bool)]| {
        for (name, set) in keys {
            if *set {
                cx.problem(
                    &format!("{key}.{name}"),
                    format!("is not used with kind = \"{kind}\""),
                );
            }
        }
    };
    match kind.as_deref() {
        Some("bearer") => {
            unused(
                cx,
                "bearer",
                &[
                    ("username", username.is_some()),
                    ("username_file", username_file.is_some()),
                    ("username_env", username_env.is_some()),
                    ("password_file", password_file.is_some()),
                    ("password_env", password_env.is_some()),
                    ("auth_url", auth_url.is_some()),
                ],
            );
            let token = cx.secret(key, "token", token_file, token_env)?;
            Some(ScimAuth::Bearer { token })
        }
        Some("anaplan") => {
            unused(
                cx,
                "anaplan",
                &[
                    ("token_file", token_file.is_some()),
                    ("token_env", token_env.is_some()),
                ],
            );
            let username = match (username, username_file.is_some() || username_env.is_some()) {
                (Some(_), true) => {
                    cx.problem(
                        &format!("{key}.username"),
                        "set one of username, username_file and username_env",
                    );
                    None
                }
                (Some(name), false) if name.trim().is_empty() => {
                    cx.problem(&format!("{key}.username"), "is empty");
                    None
                }
                (Some(name), false) => Some(Secret::new(name.trim().to_string())),
                (None, _) => cx.secret(key, "username", username_file, username_env),
            };
            let password = cx.secret(key, "password", password_file, password_env);
            let url_key = format!("{key}.auth_url");
            let auth_url = scim_service_url(
                cx,
                &url_key,
                auth_url.as_deref().unwrap_or(DEFAULT_ANAPLAN_AUTH_URL),
            );
            Some(ScimAuth::Anaplan {
                username: username?,
                password: password?,
                auth_url: auth_url?,
            })
        }
        Some(other) => {
            cx.problem(
                &format!("{key}.kind"),
                format!("unknown auth kind {other:?}; expected \"bearer\" or \"anaplan\""),
            );
            None
        }
        None => {
            cx.problem(
                &format!("{key}.kind"),
                "missing; set kind = \"bearer\" or kind = \"anaplan\"",
            );
            None
        }
    }
}

fn scim_actions(cx: &mut Validator<'_>, key: &str, raw: Option<Vec<String>>) -> Vec<ScimAction> {
    let Some(raw) = raw else {
        return vec![ScimAction::Deactivate];
    };
    if raw.is_empty() {
        cx.problem(
            key,
            "must list at least one of \"deactivate\", \"remove_entitlements\", \"delete\"",
        );
    }
    let mut actions: Vec<ScimAction> = Vec::new();
    for name in &raw {
        let action = match name.as_str() {
            "deactivate" => ScimAction::Deactivate,
            "remove_entitlements" => ScimAction::RemoveEntitlements,
            "delete" => ScimAction::Delete,
            other => {
                cx.problem(
                        key,
                        format!("unknown action {other:?}; expected \"deactivate\", \"remove_entitlements\" or \"delete\""),
                    );
                continue;
            }
        };
        if actions.contains(&action) {
            cx.problem(key, format!("{name:?} is listed twice"));
        } else if actions.last().is_some_and(|last| *last > action) {
            cx.problem(
                    key,
                    format!("{name:?} is out of order: actions run as deactivate, remove_entitlements, delete; list them in that order"),
                );
        } else {
            actions.push(action);
        }
    }
    actions
}

/// `Validator::service_url` for a scim URL (trimmed), returned without a trailing slash.
fn scim_service_url(cx: &mut Validator<'_>, key: &str, url: &str) -> Option<String> {
    cx.service_url(key, Some(url.trim()))
        .map(|u| u.trim_end_matches('/').to_string())
}
