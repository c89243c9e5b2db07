//! `kind = "echo360"` settings: the regional base URL, the OAuth2 client, how a leaver's user is found and what
//! is done to it, paging and the request paths.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::Echo360Connector;
use crate::clock::Clock;
use crate::config::{
    ConnectorConfig, DEFAULT_VENDOR_TIMEOUT, Rate, Secret, Validator, WorkersConfig,
};
use crate::connectors::limit::Limiter;
use crate::connectors::{Connector, KindConfig};

/// Default echo360 `page_size` when listing users.
pub const DEFAULT_ECHO360_PAGE_SIZE: u32 = 100;

/// Default echo360 `index_ttl`: how long a user index built by paging stays in use.
pub const DEFAULT_ECHO360_INDEX_TTL: Duration = Duration::from_secs(15 * 60);

/// Default echo360 `paths.token`.
pub const DEFAULT_ECHO360_TOKEN_PATH: &str = "/oauth2/access_token";

/// Default echo360 `paths.users` (the user list).
pub const DEFAULT_ECHO360_USERS_PATH: &str = "/public/api/v1/users";

/// Default echo360 `paths.user` (one user; `{id}` is the URL-encoded id or email).
pub const DEFAULT_ECHO360_USER_PATH: &str = "/public/api/v1/users/{id}";

/// `kind = "echo360"`: removes EchoVideo users through the public REST API.
#[derive(Debug, Clone)]
pub struct Echo360Config {
    /// Regional base URL without a trailing slash, e.g. `https://echo360.org.uk`.
    pub base_url: String,
    /// OAuth2 client id (kept secret: with the secret it mints tokens).
    pub client_id: Secret,
    /// OAuth2 client secret.
    pub client_secret: Secret,
    /// Which user field the account key is compared with.
    pub match_by: Echo360Match,
    /// Delete or deactivate.
    pub action: Echo360Action,
    /// Users per page when building the index.
    pub page_size: u32,
    /// How long an index built by paging stays in use (`0s`: rebuilt for every lookup).
    pub index_ttl: Duration,
    /// Limit for one HTTP call.
    pub timeout: Duration,
    /// Request paths.
    pub paths: Echo360Paths,
}

/// How the echo360 connector finds a leaver's user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo360Match {
    /// The account key is the user's email: one `GET users/{email}`.
    Email,
    /// The account key is the user's `ssoId`: found in an index built by paging the user list.
    SsoId,
    /// The account key is the user's `externalId`: found in an index built by paging the user list.
    ExternalId,
}

impl Echo360Match {
    /// The `match` value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::SsoId => "sso_id",
            Self::ExternalId => "external_id",
        }
    }

    /// The user field compared with the account key.
    pub fn user_field(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::SsoId => "ssoId",
            Self::ExternalId => "externalId",
        }
    }
}

/// What the echo360 connector does to a found user.
#[derive(Debug, Clone, PartialEq)]
pub enum Echo360Action {
    /// `DELETE users/{id}`: permanent.
    Delete,
    /// Read the user, set these fields, and write it back with `PUT users/{id}` (the account and
    /// its analytics stay, access goes).
    Deactivate {
        /// Field name → JSON value to set.
        set: serde_json::Map<String, serde_json::Value>,
    },
}

/// Request paths of the Echo360 API, kept in one place because parts of the user API are not
/// publicly documented; each can be overridden in `[connector.paths]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Echo360Paths {
    /// OAuth2 token endpoint.
    pub token: String,
    /// The user list (paged with `limit` and the `offset` cursor).
    pub users: String,
    /// One user; `{id}` is replaced by the URL-encoded id or email.
    pub user: String,
}

/// The echo360 keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawEcho360 {
    base_url: Option<String>,
    client_id_file: Option<String>,
    client_id_env: Option<String>,
    client_secret_file: Option<String>,
    client_secret_env: Option<String>,
    #[serde(rename = "match")]
    match_by: Option<String>,
    action: Option<String>,
    deactivate_fields: Option<serde_json::Map<String, serde_json::Value>>,
    page_size: Option<i64>,
    index_ttl: Option<String>,
    timeout: Option<String>,
    paths: Option<RawEcho360Paths>,
}

/// The echo360 `[connector.paths]` keys as serde reads them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawEcho360Paths {
    token: Option<String>,
    users: Option<String>,
    user: Option<String>,
}

impl KindConfig for Echo360Config {
    type Raw = RawEcho360;

    const DEFAULT_RATE: Option<Rate> = Some(super::DEFAULT_RATE);

    fn validate(
        cx: &mut Validator<'_>,
        prefix: &str,
        raw: RawEcho360,
        workers: &WorkersConfig,
    ) -> Option<Echo360Config> {
        let before = cx.problem_count();
        let base_url = cx
            .service_url(&format!("{prefix}.base_url"), raw.base_url.as_deref())
            .map(|url| url.trim_end_matches('/').to_string());
        let client_id = cx.secret(prefix, "client_id", raw.client_id_file, raw.client_id_env);
        let client_secret = cx.secret(
            prefix,
            "client_secret",
            raw.client_secret_file,
            raw.client_secret_env,
        );
        let match_by = match raw.match_by.as_deref() {
            None | Some("email") => Echo360Match::Email,
            Some("sso_id") => Echo360Match::SsoId,
            Some("external_id") => Echo360Match::ExternalId,
            Some(other) => {
                cx.problem(
                    &format!("{prefix}.match"),
                    format!(
                        "unknown value {other:?}; expected \"email\", \"sso_id\" or \"external_id\""
                    ),
                );
                Echo360Match::Email
            }
        };
        let fields_key = format!("{prefix}.deactivate_fields");
        let action = match (raw.action.as_deref(), raw.deactivate_fields) {
            (Some("delete"), fields) => {
                if fields.is_some() {
                    cx.problem(&fields_key, "is only used with action = \"deactivate\"");
                }
                Some(Echo360Action::Delete)
            }
            (Some("deactivate"), Some(set)) if !set.is_empty() => {
                Some(Echo360Action::Deactivate { set })
            }
            (Some("deactivate"), _) => {
                cx.problem(
                    &fields_key,
                    "missing; action = \"deactivate\" needs the user fields that make an Echo360 user inactive \
                     (the public API does not document them: read them from your region's Swagger UI), \
                     e.g. deactivate_fields = { status = \"Inactive\" }",
                );
                None
            }
            (Some(other), _) => {
                cx.problem(
                    &format!("{prefix}.action"),
                    format!("unknown action {other:?}; expected \"delete\" or \"deactivate\""),
                );
                None
            }
            (None, _) => {
                cx.problem(
                    &format!("{prefix}.action"),
                    "missing; set action = \"delete\" (permanent) or action = \"deactivate\" (the user keeps \
                     their recordings and analytics but cannot sign in)",
                );
                None
            }
        };
        let page_size = cx.integer_in(
            &format!("{prefix}.page_size"),
            raw.page_size,
            i64::from(DEFAULT_ECHO360_PAGE_SIZE),
            1,
            1000,
        );
        let index_ttl = cx.duration(
            &format!("{prefix}.index_ttl"),
            raw.index_ttl.as_deref(),
            DEFAULT_ECHO360_INDEX_TTL,
        );
        let timeout = cx.call_timeout(
            prefix,
            raw.timeout.as_deref(),
            DEFAULT_VENDOR_TIMEOUT,
            workers,
        );
        let raw_paths = raw.paths.unwrap_or_default();
        let token = api_path(
            cx,
            &format!("{prefix}.paths.token"),
            raw_paths.token,
            DEFAULT_ECHO360_TOKEN_PATH,
            false,
        );
        let users = api_path(
            cx,
            &format!("{prefix}.paths.users"),
            raw_paths.users,
            DEFAULT_ECHO360_USERS_PATH,
            false,
        );
        let user = api_path(
            cx,
            &format!("{prefix}.paths.user"),
            raw_paths.user,
            DEFAULT_ECHO360_USER_PATH,
            true,
        );
        if cx.problem_count() > before {
            return None;
        }
        Some(Echo360Config {
            base_url: base_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            match_by,
            action: action?,
            page_size: u32::try_from(page_size).unwrap_or(DEFAULT_ECHO360_PAGE_SIZE),
            index_ttl,
            timeout,
            paths: Echo360Paths { token, users, user },
        })
    }

    fn stage_actions(&self) -> Vec<&'static str> {
        // The configured action only: a deactivation needs its `deactivate_fields`.
        match self.action {
            Echo360Action::Delete => vec!["delete"],
            Echo360Action::Deactivate { .. } => vec!["deactivate"],
        }
    }

    fn deletes(&self) -> bool {
        matches!(self.action, Echo360Action::Delete)
    }

    fn check_account(&self, account: &str) -> Result<(), String> {
        super::check_account(self, account)
    }

    fn limit_scope(&self) -> Option<String> {
        // Echo360 counts calls per API client.
        Some(crate::connectors::kind::limit_scope(
            &self.base_url,
            self.client_id.expose(),
        ))
    }

    fn build(
        &self,
        _connector: &ConnectorConfig,
        limiter: Arc<Limiter>,
        clock: &Clock,
    ) -> anyhow::Result<Arc<dyn Connector>> {
        Ok(Arc::new(Echo360Connector::new(
            self.clone(),
            limiter,
            clock.clone(),
        )?))
    }
}

/// A request path: absolute (`/…`), no query, and (`with_id`) exactly one `{id}`.
fn api_path(
    cx: &mut Validator<'_>,
    key: &str,
    raw: Option<String>,
    default: &str,
    with_id: bool,
) -> String {
    let Some(path) = raw else {
        return default.to_string();
    };
    if !path.starts_with('/') || path.contains(['?', '#']) || path.contains(char::is_whitespace) {
        cx.problem(
            key,
            format!(
                "{path:?} must be an absolute path such as {default:?}, without query or spaces"
            ),
        );
    } else if with_id && path.matches("{id}").count() != 1 {
        cx.problem(
            key,
            format!("{path:?} must contain {{id}} exactly once, e.g. {default:?}"),
        );
    } else if !with_id && path.contains('{') {
        cx.problem(key, format!("{path:?} takes no placeholder"));
    }
    path
}
