//! Configuration: reads `offboard.toml` into validated, typed settings, resolving secrets, paths, durations and cron.
//!
//! Parsing happens in two layers. The raw layer is plain serde structs with `deny_unknown_fields`, deserialized
//! section by section from toml's spanned document so that every type error and unknown key is reported with its
//! dotted key and its line. The validated layer ([`Config`] and friends) is built from the raw layer while
//! collecting every problem, so `check-config` can list them all at once.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::domain::{FieldNames, PERSON_FIELDS, Pattern, StatusValues, Template};

/// Default `database.url`: a file next to the config file.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://offboard.db";
/// Default `database.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;
/// Default `database.busy_timeout`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `feed.timeout`.
pub const DEFAULT_FEED_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `connector.concurrency`.
pub const DEFAULT_CONNECTOR_CONCURRENCY: usize = 2;
/// Default `connector.account` template.
pub const DEFAULT_ACCOUNT_TEMPLATE: &str = "{email}";
/// Default exec `timeout`.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Default exec `exit_already_absent` codes.
pub const DEFAULT_EXIT_ALREADY_ABSENT: &[i32] = &[3];
/// Default exec `exit_permanent` codes.
pub const DEFAULT_EXIT_PERMANENT: &[i32] = &[2];
/// Default panopto `timeout` (one SOAP call).
pub const DEFAULT_PANOPTO_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `timeout` of one HTTP call for the echo360 and openconext kinds.
pub const DEFAULT_VENDOR_TIMEOUT: Duration = Duration::from_secs(30);
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
/// Default scim `timeout`.
pub const DEFAULT_SCIM_TIMEOUT: Duration = Duration::from_secs(30);
/// Default scim `entitlements_path`.
pub const DEFAULT_SCIM_ENTITLEMENTS_PATH: &str = "entitlements";
/// Default scim `auth.auth_url` for the anaplan flavour.
pub const DEFAULT_ANAPLAN_AUTH_URL: &str = "https://auth.anaplan.com";
/// The example cron expression used in messages and docs.
pub const EXAMPLE_SCHEDULE: &str = "0 */5 * * * *";

/// Upper bound for every concurrency setting.
const MAX_CONCURRENCY: i64 = 256;
/// Shortest accepted `workers.lease`.
const MIN_LEASE: Duration = Duration::from_secs(10);
/// Shortest accepted `workers.idle_poll`.
const MIN_IDLE_POLL: Duration = Duration::from_secs(1);

/// Top-level tables, in the order they are documented.
const TOP_LEVEL_KEYS: &[&str] = &[
    "database",
    "feed",
    "workers",
    "retry",
    "safety",
    "log",
    "http",
    "report",
    "connector",
];

/// Keys every `[[connector]]` accepts whatever its kind (besides `kind` itself, which picks the variant).
const CONNECTOR_COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "account",
    "grace",
    "dry_run",
    "concurrency",
    "rate",
    "retry",
    "never_remove",
    "scope",
];

// ---------------------------------------------------------------------------------------------------------------
// Validated configuration
// ---------------------------------------------------------------------------------------------------------------

/// The whole validated configuration of one offboard instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file the configuration came from (made absolute).
    pub path: PathBuf,
    /// Where the queue and audit log live.
    pub database: DatabaseConfig,
    /// The HR feed to poll; `None` for installs fed only by push or the CLI.
    pub feed: Option<FeedConfig>,
    /// The worker pool that drains the removal queue.
    pub workers: WorkersConfig,
    /// Global retry defaults; each connector's [`ConnectorConfig::retry`] starts from these.
    pub retry: RetryPolicy,
    /// Global safety switches.
    pub safety: SafetyConfig,
    /// Log output.
    pub log: LogConfig,
    /// The HTTP listener: health, readiness, metrics and pushed terminations.
    pub http: HttpConfig,
    /// Evidence settings for `offboard report`.
    pub report: ReportConfig,
    /// The `[[connector]]` entries, in file order.
    pub connectors: Vec<ConnectorConfig>,
    /// Non-fatal notes for `check-config` (never contain secret values).
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and validates the config file at `path`, resolving every secret it references.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let path = absolute(path);
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    return Err(ConfigError::single(
                        &path,
                        "",
                        "the file is not valid UTF-8",
                    ));
                }
            },
            Err(e) => {
                return Err(ConfigError::single(
                    &path,
                    "",
                    format!("cannot read the config file: {}", io_message(&e)),
                ));
            }
        };
        let mut config = Self::from_toml_str(&text, &path)?;
        if is_world_writable(&path) {
            config.warnings.push(format!(
                "{} is writable by every user; anyone on this host can change what gets removed (chmod o-w)",
                path.display()
            ));
        }
        Ok(config)
    }

    /// Validates config text as if it had been read from `path`: relative paths resolve against `path`'s
    /// directory, and secrets are resolved from files and the process environment.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        build(text, path, &|name| std::env::var_os(name))
    }

    /// The connector with this name, if configured.
    pub fn connector(&self, name: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.name == name)
    }
}

/// Everything wrong with a config file; `Display` prints one `"{path}: {key}: {message}"` line per problem.
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The config file.
    pub path: PathBuf,
    /// Every problem found, in the order they were found.
    pub problems: Vec<Problem>,
}

impl ConfigError {
    fn single(path: &Path, key: &str, message: impl Into<String>) -> Self {
        Self {
            path: path.to_path_buf(),
            problems: vec![Problem {
                key: key.to_string(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if problem.key.is_empty() {
                write!(f, "{}: {}", self.path.display(), problem.message)?;
            } else {
                write!(
                    f,
                    "{}: {}: {}",
                    self.path.display(),
                    problem.key,
                    problem.message
                )?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// One thing wrong with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `feed.schedule` or `connector.ldap_cleanup.timeout`; a connector whose name is missing or
    /// invalid is addressed by its 0-based position, e.g. `connector[1].timeout`. Empty for whole-file problems
    /// (unreadable file, TOML syntax error).
    pub key: String,
    /// What is wrong, with the bad value where that is not a secret.
    pub message: String,
}

/// `[database]`: the SQLite file holding the queue and the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// The SQLite database file (absolute once the config is loaded).
    pub path: PathBuf,
    /// Size of the connection pool.
    pub max_connections: u32,
    /// How long a connection waits for a lock held by another before failing.
    pub busy_timeout: Duration,
}

/// `[feed]`: the HR feed polled on a schedule.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Where the feed is read from.
    pub source: FeedSource,
    /// Six-field cron expression, seconds first, evaluated in UTC (validated with the scheduler's parser).
    pub schedule: String,
    /// Which column carries which person field.
    pub columns: FieldNames,
    /// Which status values mean terminated and active.
    pub statuses: StatusValues,
    /// Zone for dates without an offset (`YYYY-MM-DD` means the start of that day here).
    pub timezone: chrono_tz::Tz,
    /// Limit for one whole fetch (HTTP request or file read).
    pub timeout: Duration,
    /// CSV or JSON, with the JSON-only settings.
    pub format: FeedFormat,
    /// Polls failing for this long are logged at ERROR (an operator must act), before that at WARN.
    pub alert_after: Duration,
    /// Extra person attributes: name → CSV column (for CSV feeds; JSON feeds map them in `format`).
    pub attributes: BTreeMap<String, String>,
}

/// The feed's document format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedFormat {
    /// RFC 4180 CSV with a header row; `FeedConfig::columns` names the columns.
    Csv,
    /// A JSON document such as a Workday RaaS report.
    Json {
        /// JSON pointer to the records (an array, or an object whose values are records).
        records: String,
        /// JSON pointers of the person fields and attributes, relative to a record.
        fields: Box<crate::feed::json::JsonFields>,
        /// Query parameter that receives the start of the last successful poll (RFC 3339), for
        /// feeds that answer only what changed since then (BambooHR's `since`).
        cursor_param: Option<String>,
    },
}

/// Where a feed comes from.
#[derive(Debug, Clone)]
pub enum FeedSource {
    /// A local file, re-read on every poll (absolute path).
    File(PathBuf),
    /// An HTTP(S) URL fetched with GET on every poll.
    Http {
        /// `http://` or `https://` URL.
        url: String,
        /// Credentials sent with the request, if any.
        auth: Option<HttpAuth>,
    },
}

/// Credentials for an HTTP feed.
#[derive(Debug, Clone)]
pub enum HttpAuth {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: Secret,
    },
    /// `Authorization: Basic …`.
    Basic {
        /// The user name (not secret).
        username: String,
        /// The password.
        password: Secret,
    },
}

/// A secret value (token, password). `Debug` and `Display` print `<redacted>`; only [`Secret::expose`] gives the
/// value. It deliberately has no `PartialEq`: compare tokens with a constant-time comparison.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value itself; keep it out of logs, errors and metrics.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `[workers]`: the pool that claims due removals and calls connectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkersConfig {
    /// Removals processed at the same time across all connectors (1..=256).
    pub concurrency: usize,
    /// How long a claim stays valid before another worker may reclaim the removal (at least 10s).
    pub lease: Duration,
    /// Longest idle sleep between queue checks (at least 1s).
    pub idle_poll: Duration,
    /// On shutdown, how long in-flight calls may run before they are abandoned.
    pub shutdown_grace: Duration,
}

impl Default for WorkersConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lease: Duration::from_secs(5 * 60),
            idle_poll: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// Exponential backoff with full jitter for retryable failures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay cap before the first retry (never more than `max`).
    pub initial: Duration,
    /// Largest delay between two attempts.
    pub max: Duration,
    /// Growth of the delay cap per attempt (at least 1.0).
    pub factor: f64,
    /// Attempts in total, the first included, before the removal is dead-lettered (at least 1).
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(6 * 3600),
            factor: 2.0,
            max_attempts: 12,
        }
    }
}

/// `[safety]`: global switches that limit what the daemon may change.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyConfig {
    /// When true every connector only resolves accounts and ends removals in `planned`.
    pub dry_run: bool,
    /// A batch creating more new terminations than this is held for approval.
    pub max_terminations_per_batch: u32,
    /// A feed poll creating more new terminations than this share of its rows (percent) is held.
    pub max_terminations_percent: f64,
    /// People never removed anywhere: employee ids, emails or usernames, with `*` and `?` globs.
    pub never_remove: Vec<Pattern>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_terminations_per_batch: 50,
            max_terminations_percent: 5.0,
            never_remove: Vec::new(),
        }
    }
}

impl SafetyConfig {
    /// The most new terminations a batch may create before it is held: the absolute limit, and for
    /// feed polls (whose rows are the HR system's view) also the percentage of the rows, whichever
    /// is lower. Pushes and CLI batches only have the absolute limit.
    pub fn batch_limit(&self, rows: u64, percent_applies: bool) -> u64 {
        let absolute = u64::from(self.max_terminations_per_batch);
        if !percent_applies {
            return absolute;
        }
        let share = (rows as f64 * self.max_terminations_percent / 100.0).floor();
        absolute.min(share.max(0.0) as u64)
    }
}

/// `[report]`: evidence settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportConfig {
    /// Access must be gone within this long after the effective time plus the connector's grace.
    pub sla: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            sla: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[http]`: the listener for `/healthz`, `/readyz`, `/metrics` and `POST /v1/terminations`.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: std::net::SocketAddr,
    /// Bearer token that pushes must present; pushes are refused (404) when unset.
    pub push_token: Option<Secret>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 9464)),
            push_token: None,
        }
    }
}

/// Which people a connector is asked about: every listed field must match one of its patterns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    /// (person field name as in templates, patterns).
    pub rules: Vec<(String, Vec<Pattern>)>,
}

impl Scope {
    /// Whether the person is in scope (an empty scope includes everyone).
    pub fn includes(&self, person: &crate::domain::Person) -> bool {
        self.rules.iter().all(|(field, patterns)| {
            person
                .value(field)
                .is_some_and(|value| patterns.iter().any(|p| p.matches(&value)))
        })
    }
}

/// `[log]`: log output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// A tracing filter directive such as `info` or `info,offboard=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".to_string(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable text.
    Text,
}

/// One `[[connector]]`: a SaaS app (or local command) whose accounts are removed.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Unique name: 1-64 characters of `[a-z0-9_-]`, starting with a letter.
    pub name: String,
    /// How the vendor's account key is built from the person, e.g. `{email}`.
    pub account: Template,
    /// Delay after the effective time before removing.
    pub grace: Duration,
    /// Effective dry-run: the connector's own `dry_run` or `safety.dry_run`.
    pub dry_run: bool,
    /// Removals of this connector running at the same time (1..=256).
    pub concurrency: usize,
    /// Most vendor calls per period, shared by the connector's workers; `None`: the kind's default.
    pub rate: Option<Rate>,
    /// People never removed by this connector (in addition to `safety.never_remove`).
    pub never_remove: Vec<Pattern>,
    /// Only people matching this scope get a removal on this connector.
    pub scope: Scope,
    /// The global `[retry]` with this connector's overrides applied.
    pub retry: RetryPolicy,
    /// The kind-specific settings.
    pub kind: ConnectorKind,
}

/// The kind-specific part of a connector, selected by its `kind` key.
#[derive(Debug, Clone)]
pub enum ConnectorKind {
    /// `kind = "exec"`: runs a local program.
    Exec(ExecConfig),
    /// `kind = "panopto"`: Panopto's SOAP UserManagement API.
    Panopto(PanoptoConfig),
    /// `kind = "echo360"`: the EchoVideo (Echo360) public REST API.
    Echo360(Echo360Config),
    /// `kind = "openconext"`: the OpenConext deprovision API (EngineBlock, Teams, Invite, …).
    Openconext(OpenconextConfig),
    /// `kind = "scim"`: a SCIM 2.0 user endpoint (Anaplan, Slack, Zoom, …).
    Scim(ScimConfig),
}

impl ConnectorKind {
    /// The `kind` value as written in the config.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectorKind::Exec(_) => "exec",
            ConnectorKind::Panopto(_) => "panopto",
            ConnectorKind::Echo360(_) => "echo360",
            ConnectorKind::Openconext(_) => "openconext",
            ConnectorKind::Scim(_) => "scim",
        }
    }

    /// Checks a rendered account key at planning time; `Err` says why this kind can never act on
    /// it (the reason never repeats the key, which is personal data). The removal then starts
    /// `failed` with that reason instead of failing at the vendor.
    pub fn check_account(&self, account: &str) -> Result<(), String> {
        match self {
            ConnectorKind::Exec(_) | ConnectorKind::Panopto(_) | ConnectorKind::Scim(_) => Ok(()),
            ConnectorKind::Echo360(c) => crate::connectors::echo360::check_account(c, account),
            ConnectorKind::Openconext(_) => {
                crate::connectors::openconext::check_collab_person_id(account)
            }
        }
    }
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

/// `kind = "openconext"`: calls one service's deprovision API.
#[derive(Debug, Clone)]
pub struct OpenconextConfig {
    /// The service's API base URL, always ending in `/`, e.g. `https://engine-api.example.org/`.
    pub base_url: String,
    /// HTTP Basic user name.
    pub username: Secret,
    /// HTTP Basic password.
    pub password: Secret,
    /// Limit for one HTTP call.
    pub timeout: Duration,
}

/// `kind = "exec"`: runs a local program per removal; its exit code is the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecConfig {
    /// The program (absolute; checked to exist and be executable).
    pub program: PathBuf,
    /// Arguments: templates over the person fields plus `{account}`.
    pub args: Vec<Template>,
    /// The program is killed and the attempt retried after this long.
    pub timeout: Duration,
    /// Exit codes meaning "no such account" (success: `already_absent`).
    pub exit_already_absent: Vec<i32>,
    /// Exit codes meaning a permanent failure (dead letter, no retry).
    pub exit_permanent: Vec<i32>,
}

/// `kind = "panopto"`: looks the leaver up with `GetUserByKey` and deletes them with `DeleteUsers`.
#[derive(Debug, Clone)]
pub struct PanoptoConfig {
    /// The site's web server FQDN as configured in Panopto, e.g. `demo.hosted.panopto.com` (part of the AuthCode).
    pub host: String,
    /// The UserManagement service URL: `https://{host}/Panopto/PublicAPI/4.6/UserManagement.svc` unless set.
    pub endpoint: String,
    /// The user key offboard authenticates as, e.g. `MyIdP\svc-offboard` (an Administrator).
    pub api_user_key: String,
    /// How the API user proves who it is.
    pub credential: PanoptoCredential,
    /// Identity-provider instance names tried in turn, in place of the account key's own prefix, when the account
    /// key finds nobody (e.g. `unified`).
    pub fallback_prefixes: Vec<String>,
    /// Limit for one SOAP call.
    pub timeout: Duration,
}

/// The secret of a Panopto API user.
#[derive(Debug, Clone)]
pub enum PanoptoCredential {
    /// A Panopto-internal account's password, sent as `AuthenticationInfo/Password`.
    Password(Secret),
    /// An identity provider's application key, from which each call's `AuthCode` is derived.
    ApplicationKey(Secret),
}

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
    /// The action as written in `actions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deactivate => "deactivate",
            Self::RemoveEntitlements => "remove_entitlements",
            Self::Delete => "delete",
        }
    }
}

/// A rate limit: at most `calls` vendor calls per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Calls allowed per period (also the burst size).
    pub calls: u32,
    /// The period.
    pub per: Duration,
}

/// Parses a rate written as `N/s`, `N/m` or `N/h`, e.g. `"5/s"` or `"120/m"`.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let invalid = || {
        format!(
            "invalid rate {s:?}: expected calls per second, minute or hour, e.g. \"5/s\" or \"120/m\""
        )
    };
    let (calls, unit) = s.trim().split_once('/').ok_or_else(invalid)?;
    let calls: u32 = calls.trim().parse().map_err(|_| invalid())?;
    if calls == 0 {
        return Err(format!("invalid rate {s:?}: at least 1 call per period"));
    }
    let per = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(invalid()),
    };
    Ok(Rate { calls, per })
}

/// Parses a duration written as an integer and a unit: `250ms`, `30s`, `5m`, `6h`, `14d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || {
        format!(
            "invalid duration {s:?}: expected a number and a unit (ms, s, m, h, d), e.g. \"30s\""
        )
    };
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    if number.is_empty() {
        return Err(invalid());
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(millis_per_unit))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?}: too large"))
}

/// Checks a schedule the way the scheduler will read it: exactly six fields, seconds first, evaluated in UTC.
pub fn validate_cron(expr: &str) -> Result<(), String> {
    let fields = expr.split_whitespace().count();
    if fields != 6 {
        let found = if fields == 5 {
            "has five fields (minutes first)".to_string()
        } else {
            format!("has {fields} field(s)")
        };
        return Err(format!(
            "cron expression {expr:?} {found}; offboard needs six fields, seconds first, in UTC, e.g. \"{EXAMPLE_SCHEDULE}\""
        ));
    }
    // The same parser settings tokio-cron-scheduler 0.15 uses for its jobs.
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map(|_| ())
        .map_err(|e| format!("invalid cron expression {expr:?}: {e}"))
}

// ---------------------------------------------------------------------------------------------------------------
// Raw layer: what serde reads. Every field is optional so that defaults and "missing" messages are ours.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<i64>,
    busy_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawFeed {
    kind: Option<String>,
    path: Option<String>,
    url: Option<String>,
    auth: Option<RawAuth>,
    schedule: Option<String>,
    timezone: Option<String>,
    timeout: Option<String>,
    columns: Option<RawColumns>,
    status: Option<RawStatus>,
    records: Option<String>,
    fields: Option<RawColumns>,
    attributes: Option<BTreeMap<String, String>>,
    cursor_param: Option<String>,
    alert_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawAuth {
    kind: Option<String>,
    token_file: Option<String>,
    token_env: Option<String>,
    username: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawColumns {
    employee_id: Option<String>,
    email: Option<String>,
    username: Option<String>,
    upn: Option<String>,
    display_name: Option<String>,
    effective_date: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawStatus {
    terminated: Option<Vec<String>>,
    active: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawWorkers {
    concurrency: Option<i64>,
    lease: Option<String>,
    idle_poll: Option<String>,
    shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawRetry {
    initial: Option<String>,
    max: Option<String>,
    factor: Option<f64>,
    max_attempts: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawSafety {
    dry_run: Option<bool>,
    max_terminations_per_batch: Option<i64>,
    max_terminations_percent: Option<f64>,
    never_remove: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawHttp {
    listen: Option<String>,
    push_token_file: Option<String>,
    push_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawReport {
    sla: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawLog {
    format: Option<RawLogFormat>,
    level: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RawLogFormat {
    Auto,
    Json,
    Text,
}

/// The keys of a `[[connector]]` shared by every kind (`kind` itself is read separately).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawConnectorCommon {
    /// Only type-checked here: the name is read from the table before deserializing, to key every problem.
    #[serde(rename = "name")]
    _name: Option<String>,
    account: Option<String>,
    grace: Option<String>,
    dry_run: Option<bool>,
    concurrency: Option<i64>,
    rate: Option<String>,
    retry: Option<RawRetry>,
    never_remove: Option<Vec<String>>,
    scope: Option<BTreeMap<String, Vec<String>>>,
}

/// The kind-specific keys of a `[[connector]]`. It is read from a synthetic one-entry table
/// `{ <kind> = { <the connector's other keys> } }`, so serde picks the variant from `kind` and refuses unknown
/// kinds and, per kind, unknown keys. Adding a kind is adding a variant here and in [`ConnectorKind`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RawConnectorKind {
    Exec(RawExec),
    Panopto(RawPanopto),
    Echo360(RawEcho360),
    Openconext(RawOpenconext),
    Scim(RawScim),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawExec {
    program: Option<String>,
    args: Option<Vec<String>>,
    timeout: Option<String>,
    exit_already_absent: Option<Vec<i64>>,
    exit_permanent: Option<Vec<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawPanopto {
    host: Option<String>,
    endpoint: Option<String>,
    api_user_key: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    application_key_file: Option<String>,
    application_key_env: Option<String>,
    fallback_prefixes: Option<Vec<String>>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawEcho360 {
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawEcho360Paths {
    token: Option<String>,
    users: Option<String>,
    user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawOpenconext {
    base_url: Option<String>,
    username: Option<String>,
    username_file: Option<String>,
    username_env: Option<String>,
    password_file: Option<String>,
    password_env: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawScim {
    base_url: Option<String>,
    /// Boxed: the auth table is large next to the other kinds.
    auth: Option<Box<RawScimAuth>>,
    #[serde(rename = "match")]
    match_on: Option<String>,
    actions: Option<Vec<String>>,
    entitlements_path: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawScimAuth {
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

// ---------------------------------------------------------------------------------------------------------------
// Building: raw → validated, collecting problems
// ---------------------------------------------------------------------------------------------------------------

/// Looks up an environment variable; injectable so tests need not touch the process environment.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn build(text: &str, path: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let path = absolute(path);
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(e) => {
            let message = match e.span() {
                Some(span) => {
                    let (line, column) = line_col(text, span.start);
                    format!("{} (line {line}, column {column})", e.message())
                }
                None => e.message().to_string(),
            };
            return Err(ConfigError::single(&path, "", message));
        }
    };

    let mut cx = Builder {
        text,
        dir,
        env,
        problems: Vec::new(),
        warnings: Vec::new(),
        parse_failed: HashSet::new(),
    };

    let mut sections: HashMap<String, Spanned<DeValue<'_>>> = HashMap::new();
    for (key, value) in document.into_inner() {
        let name = key.get_ref().to_string();
        if TOP_LEVEL_KEYS.contains(&name.as_str()) {
            sections.insert(name, value);
        } else {
            let (line, column) = line_col(text, key.span().start);
            cx.problem(
                &name,
                format!(
                    "unknown key `{name}`, expected one of {} (line {line}, column {column})",
                    backticked(TOP_LEVEL_KEYS)
                ),
            );
        }
    }

    let raw_database: RawDatabase = cx.section("database", sections.remove("database"));
    let database = cx.database(raw_database);

    let feed = match sections.remove("feed") {
        None => {
            cx.warnings.push(
                "no [feed] table: terminations arrive only through push or `offboard enqueue`/`import`".to_string(),
            );
            None
        }
        // Only a [feed] that is not a table at all fails to deserialize; bad keys inside it are dropped and reported.
        Some(value) => cx
            .deserialize::<RawFeed>("feed", value)
            .and_then(|raw| cx.feed(raw)),
    };

    let raw_workers: RawWorkers = cx.section("workers", sections.remove("workers"));
    let workers = cx.workers(raw_workers);

    let raw_retry: RawRetry = cx.section("retry", sections.remove("retry"));
    let retry = cx.retry("retry", &raw_retry, &RetryPolicy::default(), true);

    let raw_safety: RawSafety = cx.section("safety", sections.remove("safety"));
    let safety = cx.safety(raw_safety);
    let raw_http: RawHttp = cx.section("http", sections.remove("http"));
    let http = cx.http(raw_http);
    if safety.dry_run {
        cx.warnings.push(
            "safety.dry_run is on: every connector only resolves accounts and nothing is removed"
                .to_string(),
        );
    }

    let raw_log: RawLog = cx.section("log", sections.remove("log"));
    let log = cx.log(raw_log);
    let raw_report: RawReport = cx.section("report", sections.remove("report"));
    let report = ReportConfig {
        sla: cx.duration(
            "report.sla",
            raw_report.sla.as_deref(),
            ReportConfig::default().sla,
        ),
    };

    let connectors = match sections.remove("connector") {
        Some(value) => cx.connectors(value, &retry, &safety, &workers),
        None => Vec::new(),
    };
    if connectors.is_empty() && cx.problems.is_empty() {
        cx.warnings.push(
            "no [[connector]] configured: terminations are recorded but no access is removed"
                .to_string(),
        );
    }

    if !cx.problems.is_empty() {
        return Err(ConfigError {
            path,
            problems: cx.problems,
        });
    }
    Ok(Config {
        path,
        database,
        feed,
        workers,
        retry,
        safety,
        log,
        http,
        report,
        connectors,
        warnings: cx.warnings,
    })
}

/// State while turning the raw layer into the validated one.
struct Builder<'a> {
    text: &'a str,
    dir: PathBuf,
    env: EnvLookup<'a>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
    /// Keys whose value deserializing refused.
    parse_failed: HashSet<String>,
}

impl Builder<'_> {
    /// Records a validation problem, unless deserializing already reported this key (its value was dropped, so a
    /// "missing" here would be noise).
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        if self.parse_failed(key) {
            return;
        }
        self.problems.push(Problem {
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Deserializes an optional top-level table; a missing or broken one yields the defaults.
    fn section<T: DeserializeOwned + Default>(
        &mut self,
        key: &str,
        value: Option<Spanned<DeValue<'_>>>,
    ) -> T {
        value
            .and_then(|value| self.deserialize(key, value))
            .unwrap_or_default()
    }

    /// Deserializes `value`; on failure records a problem keyed `prefix` plus the key the error points at.
    fn deserialize<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        value: Spanned<DeValue<'_>>,
    ) -> Option<T> {
        let original = value.clone();
        self.deserialize_within(prefix, &original, value, 0)
    }

    /// Like [`Builder::deserialize`], but names error keys as found in `original` (which `value` was cut from).
    ///
    /// serde stops at the first error, so each offending entry is reported, dropped, and the rest deserialized
    /// again: every unknown key and wrong type in the table is reported, and the remaining keys still get
    /// validated. Entries at depth `keep_depth` or less are never dropped (the variant key of a connector kind).
    fn deserialize_within<T: DeserializeOwned>(
        &mut self,
        prefix: &str,
        original: &Spanned<DeValue<'_>>,
        mut value: Spanned<DeValue<'_>>,
        keep_depth: usize,
    ) -> Option<T> {
        loop {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(raw) => return Some(raw),
                Err(e) => e,
            };
            let Some(span) = e.span() else {
                self.parse_problem(prefix.to_string(), e.message().to_string());
                return None;
            };
            let mut named = Vec::new();
            let key = if locate(original, span.start, &mut named) {
                join_key(prefix, &named)
            } else {
                prefix.to_string()
            };
            let (line, column) = line_col(self.text, span.start);
            let message = redact_strings(e.message());
            self.parse_problem(key, format!("{message} (line {line}, column {column})"));

            let mut segments = Vec::new();
            let found = locate(&value, span.start, &mut segments);
            // Array elements are not removed one by one: the whole key holding the array goes.
            let depth = segments.iter().take_while(|s| !s.starts_with('[')).count();
            if !found || depth <= keep_depth || !remove_entry(value.get_mut(), &segments[..depth]) {
                return None;
            }
        }
    }

    /// Records a problem found while deserializing; validation later stays silent about the same key.
    fn parse_problem(&mut self, key: String, message: String) {
        self.parse_failed.insert(key.clone());
        self.problems.push(Problem { key, message });
    }

    /// Whether deserializing already reported (and dropped) this key.
    fn parse_failed(&self, key: &str) -> bool {
        self.parse_failed.contains(key)
    }

    fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
        match raw {
            None => default,
            Some(s) => match parse_duration(s) {
                Ok(d) => d,
                Err(message) => {
                    self.problem(key, message);
                    default
                }
            },
        }
    }

    /// A duration that must be at least `min`.
    fn duration_at_least(
        &mut self,
        key: &str,
        raw: Option<&str>,
        default: Duration,
        min: Duration,
    ) -> Duration {
        let value = self.duration(key, raw, default);
        if value < min {
            self.problem(
                key,
                format!(
                    "{:?} is too short: must be at least {}",
                    raw.unwrap_or_default(),
                    format_duration(min)
                ),
            );
            return default;
        }
        value
    }

    fn patterns(&mut self, key: &str, raw: Option<Vec<String>>) -> Vec<Pattern> {
        let mut out = Vec::new();
        for (i, source) in raw.unwrap_or_default().iter().enumerate() {
            match Pattern::parse(source) {
                Ok(p) => out.push(p),
                Err(message) => self.problem(&format!("{key}[{i}]"), message),
            }
        }
        out
    }

    fn safety(&mut self, raw: RawSafety) -> SafetyConfig {
        let defaults = SafetyConfig::default();
        let per_batch = self.integer_in(
            "safety.max_terminations_per_batch",
            raw.max_terminations_per_batch,
            i64::from(defaults.max_terminations_per_batch),
            0,
            i64::from(u32::MAX),
        );
        let percent = match raw.max_terminations_percent {
            None => defaults.max_terminations_percent,
            Some(p) if (0.0..=100.0).contains(&p) => p,
            Some(p) => {
                self.problem(
                    "safety.max_terminations_percent",
                    format!("{p} is out of range: must be 0 to 100"),
                );
                defaults.max_terminations_percent
            }
        };
        SafetyConfig {
            dry_run: raw.dry_run.unwrap_or(false),
            max_terminations_per_batch: u32::try_from(per_batch).unwrap_or(u32::MAX),
            max_terminations_percent: percent,
            never_remove: self.patterns("safety.never_remove", raw.never_remove),
        }
    }

    fn http(&mut self, raw: RawHttp) -> HttpConfig {
        let defaults = HttpConfig::default();
        let listen = match raw.listen.as_deref() {
            None => defaults.listen,
            Some(text) => {
                match text.parse::<std::net::SocketAddr>() {
                    Ok(addr) => {
                        if !addr.ip().is_loopback() {
                            self.warnings.push(format!(
                            "http.listen {addr} is reachable from other hosts: put it behind a network policy or TLS proxy"
                        ));
                        }
                        addr
                    }
                    Err(_) => {
                        self.problem(
                        "http.listen",
                        format!("invalid address {text:?}: expected IP:PORT, e.g. \"127.0.0.1:9464\""),
                    );
                        defaults.listen
                    }
                }
            }
        };
        let push_token = if raw.push_token_file.is_some() || raw.push_token_env.is_some() {
            self.secret(
                "http",
                "push_token",
                raw.push_token_file,
                raw.push_token_env,
            )
        } else {
            None
        };
        if let Some(token) = &push_token
            && token.expose().len() < 16
        {
            self.problem(
                "http.push_token",
                "is shorter than 16 characters; use a long random token",
            );
        }
        HttpConfig { listen, push_token }
    }

    fn scope(&mut self, key: &str, raw: Option<BTreeMap<String, Vec<String>>>) -> Scope {
        let mut rules = Vec::new();
        for (field, patterns) in raw.unwrap_or_default() {
            let known = PERSON_FIELDS.contains(&field.as_str())
                || field
                    .strip_prefix("attributes.")
                    .is_some_and(|k| !k.is_empty());
            if !known {
                self.problem(
                    &format!("{key}.{field}"),
                    format!(
                        "unknown person field {field:?}; expected one of {} or attributes.NAME",
                        backticked(PERSON_FIELDS)
                    ),
                );
                continue;
            }
            if patterns.is_empty() {
                self.problem(&format!("{key}.{field}"), "an empty list matches nobody");
                continue;
            }
            let parsed = self.patterns(&format!("{key}.{field}"), Some(patterns));
            rules.push((field, parsed));
        }
        Scope { rules }
    }

    fn integer_in(&mut self, key: &str, raw: Option<i64>, default: i64, min: i64, max: i64) -> i64 {
        match raw {
            None => default,
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.problem(key, format!("{n} is out of range: must be {min} to {max}"));
                default
            }
        }
    }

    fn database(&mut self, raw: RawDatabase) -> DatabaseConfig {
        let url = raw.url.as_deref().unwrap_or(DEFAULT_DATABASE_URL);
        let path = match sqlite_path(url, &self.dir) {
            Ok(path) => path,
            Err(message) => {
                self.problem("database.url", message);
                PathBuf::new()
            }
        };
        let max_connections = self.integer_in(
            "database.max_connections",
            raw.max_connections,
            i64::from(DEFAULT_MAX_CONNECTIONS),
            1,
            MAX_CONCURRENCY,
        );
        DatabaseConfig {
            path,
            max_connections: u32::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            busy_timeout: self.duration(
                "database.busy_timeout",
                raw.busy_timeout.as_deref(),
                DEFAULT_BUSY_TIMEOUT,
            ),
        }
    }

    fn feed(&mut self, raw: RawFeed) -> Option<FeedConfig> {
        let problems_before = self.problems.len();
        let is_json = match raw.kind.as_deref() {
            Some("csv") => false,
            Some("json") => true,
            Some(other) => {
                self.problem(
                    "feed.kind",
                    format!("unknown feed kind {other:?}; expected \"csv\" or \"json\""),
                );
                false
            }
            None => {
                self.problem(
                    "feed.kind",
                    "missing; set kind = \"csv\" or kind = \"json\"",
                );
                false
            }
        };
        if is_json && raw.columns.is_some() {
            self.problem(
                "feed.columns",
                "is for CSV feeds; a JSON feed maps its fields in [feed.fields] with JSON pointers",
            );
        }
        if !is_json {
            for (key, set) in [
                ("records", raw.records.is_some()),
                ("fields", raw.fields.is_some()),
                ("cursor_param", raw.cursor_param.is_some()),
            ] {
                if set {
                    self.problem(&format!("feed.{key}"), "only applies to kind = \"json\"");
                }
            }
        }

        let source = match (raw.path, raw.url) {
            (Some(_), Some(_)) => {
                self.problem("feed", "set either path or url, not both");
                None
            }
            (None, None) if self.parse_failed("feed.path") || self.parse_failed("feed.url") => None,
            (None, None) => {
                self.problem(
                    "feed",
                    "missing a source: set path (a local file) or url (http:// or https://)",
                );
                None
            }
            (Some(path), None) => {
                if raw.auth.is_some() {
                    self.problem("feed.auth", "auth only applies to a feed read from url");
                }
                if path.is_empty() {
                    self.problem("feed.path", "is empty");
                    None
                } else {
                    Some(FeedSource::File(self.dir.join(path)))
                }
            }
            (None, Some(url)) => {
                let url_ok = self.feed_url(&url);
                let auth = raw.auth.and_then(|auth| self.http_auth(auth));
                url_ok.then_some(FeedSource::Http { url, auth })
            }
        };

        let schedule = match raw.schedule {
            Some(schedule) => {
                if let Err(message) = validate_cron(&schedule) {
                    self.problem("feed.schedule", message);
                }
                schedule
            }
            None => {
                self.problem(
                    "feed.schedule",
                    format!("missing; set a six-field cron expression, seconds first, in UTC, e.g. \"{EXAMPLE_SCHEDULE}\""),
                );
                String::new()
            }
        };

        let timezone = match raw.timezone.as_deref() {
            None => chrono_tz::Tz::UTC,
            Some(name) => match name.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.problem(
                        "feed.timezone",
                        format!("unknown time zone {name:?}: expected an IANA name such as \"Europe/Amsterdam\" or \"UTC\""),
                    );
                    chrono_tz::Tz::UTC
                }
            },
        };
        let timeout = self.duration("feed.timeout", raw.timeout.as_deref(), DEFAULT_FEED_TIMEOUT);
        let alert_after = self.duration(
            "feed.alert_after",
            raw.alert_after.as_deref(),
            Duration::from_secs(3600),
        );
        if timeout.is_zero() {
            self.problem("feed.timeout", "must be longer than 0s");
        }
        let columns = self.columns(raw.columns.unwrap_or_default());
        let statuses = self.statuses(raw.status.unwrap_or_default());
        let attributes = raw.attributes.unwrap_or_default();
        for name in attributes.keys() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.problem(
                    &format!("feed.attributes.{name}"),
                    "attribute names are letters, digits, '_' and '-' (templates and scopes name them attributes.NAME)",
                );
            }
        }
        let format = if is_json {
            let defaults = FieldNames::default();
            let raw_fields = raw.fields.unwrap_or_default();
            let pointer = |v: Option<String>, default: Option<String>| match v {
                None => default.map(|d| format!("/{d}")),
                Some(p) if p.trim().is_empty() => None,
                Some(p) => Some(p),
            };
            let fields = crate::feed::json::JsonFields {
                employee_id: pointer(raw_fields.employee_id, Some(defaults.employee_id))
                    .unwrap_or_default(),
                email: pointer(raw_fields.email, defaults.email),
                username: pointer(raw_fields.username, defaults.username),
                upn: pointer(raw_fields.upn, defaults.upn),
                display_name: pointer(raw_fields.display_name, defaults.display_name),
                effective_date: pointer(raw_fields.effective_date, Some(defaults.effective_date))
                    .unwrap_or_default(),
                status: pointer(raw_fields.status, Some(defaults.status)).unwrap_or_default(),
                attributes: attributes.clone(),
            };
            for (key, value) in [
                ("employee_id", &fields.employee_id),
                ("effective_date", &fields.effective_date),
                ("status", &fields.status),
            ] {
                if value.is_empty() {
                    self.problem(
                        &format!("feed.fields.{key}"),
                        "is required and cannot be switched off with \"\"",
                    );
                }
            }
            if let Err(message) = fields.validate() {
                self.problem(
                    "feed.fields",
                    format!(
                        "invalid JSON pointer: {message} (a pointer looks like \"/Employee_ID\")"
                    ),
                );
            }
            let records = raw
                .records
                .unwrap_or_else(|| crate::feed::json::DEFAULT_RECORDS_POINTER.to_string());
            if let Err(message) = crate::feed::json::parse_pointer(&records) {
                self.problem(
                    "feed.records",
                    format!("invalid JSON pointer {records:?}: {message}"),
                );
            }
            if let Some(param) = &raw.cursor_param
                && (param.is_empty()
                    || !param
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            {
                self.problem(
                    "feed.cursor_param",
                    "must be a plain query parameter name such as \"since\"",
                );
            }
            FeedFormat::Json {
                records,
                fields: Box::new(fields),
                cursor_param: raw.cursor_param,
            }
        } else {
            FeedFormat::Csv
        };

        if self.problems.len() > problems_before {
            return None;
        }
        Some(FeedConfig {
            source: source?,
            schedule,
            columns,
            statuses,
            timezone,
            timeout,
            format,
            alert_after,
            attributes,
        })
    }

    /// Checks a feed URL; returns whether it is usable. Never echoes the URL: it may carry a token.
    fn feed_url(&mut self, url: &str) -> bool {
        let lower = url.to_ascii_lowercase();
        let rest = if let Some(rest) = lower.strip_prefix("https://") {
            rest
        } else if let Some(rest) = lower.strip_prefix("http://") {
            self.warnings.push(
                "feed.url uses plain http: personal data and credentials cross the network unencrypted".to_string(),
            );
            rest
        } else {
            let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
            self.problem(
                "feed.url",
                format!("must start with http:// or https:// (found scheme {scheme:?})"),
            );
            return false;
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || url.chars().any(char::is_whitespace) {
            self.problem(
                "feed.url",
                "is not a valid URL: it needs a host and no spaces",
            );
            return false;
        }
        if authority.contains('@') {
            self.problem(
                "feed.url",
                "must not contain credentials (user:password@); use feed.auth with a _file or _env secret",
            );
            return false;
        }
        true
    }

    fn http_auth(&mut self, raw: RawAuth) -> Option<HttpAuth> {
        let RawAuth {
            kind,
            token_file,
            token_env,
            username,
            password_file,
            password_env,
        } = raw;
        match kind.as_deref() {
            Some("bearer") => {
                for (key, set) in [
                    ("username", username.is_some()),
                    ("password_file", password_file.is_some()),
                    ("password_env", password_env.is_some()),
                ] {
                    if set {
                        self.problem(
                            &format!("feed.auth.{key}"),
                            "is not used with kind = \"bearer\"",
                        );
                    }
                }
                let token = self.secret("feed.auth", "token", token_file, token_env)?;
                Some(HttpAuth::Bearer { token })
            }
            Some("basic") => {
                for (key, set) in [
                    ("token_file", token_file.is_some()),
                    ("token_env", token_env.is_some()),
                ] {
                    if set {
                        self.problem(
                            &format!("feed.auth.{key}"),
                            "is not used with kind = \"basic\"",
                        );
                    }
                }
                let username = match username {
                    Some(name) if !name.is_empty() => Some(name),
                    Some(_) => {
                        self.problem("feed.auth.username", "is empty");
                        None
                    }
                    None => {
                        self.problem("feed.auth.username", "missing; basic auth needs a username");
                        None
                    }
                };
                let password = self.secret("feed.auth", "password", password_file, password_env);
                Some(HttpAuth::Basic {
                    username: username?,
                    password: password?,
                })
            }
            Some(other) => {
                self.problem(
                    "feed.auth.kind",
                    format!("unknown auth kind {other:?}; expected \"bearer\" or \"basic\""),
                );
                None
            }
            None => {
                self.problem(
                    "feed.auth.kind",
                    "missing; set kind = \"bearer\" or kind = \"basic\"",
                );
                None
            }
        }
    }

    /// Resolves the secret `<table>.<name>` from exactly one of `<name>_file` and `<name>_env`.
    fn secret(
        &mut self,
        table: &str,
        name: &str,
        file: Option<String>,
        env: Option<String>,
    ) -> Option<Secret> {
        let file_key = format!("{table}.{name}_file");
        let env_key = format!("{table}.{name}_env");
        match (file, env) {
            (Some(_), Some(_)) => {
                self.problem(
                    &file_key,
                    format!("set either {name}_file or {name}_env, not both"),
                );
                None
            }
            (None, None) => {
                self.problem(
                    &file_key,
                    format!("missing; set {name}_file (a file holding the secret) or {name}_env (an environment variable)"),
                );
                None
            }
            (Some(file), None) => self.secret_from_file(&file_key, &file),
            (None, Some(var)) => self.secret_from_env(&env_key, &var),
        }
    }

    fn secret_from_file(&mut self, key: &str, raw: &str) -> Option<Secret> {
        if raw.is_empty() {
            self.problem(key, "is empty; give the path of a file holding the secret");
            return None;
        }
        let given = Path::new(raw);
        let path = if given.is_absolute() {
            given.to_path_buf()
        } else {
            // systemd's LoadCredential= puts credentials in $CREDENTIALS_DIRECTORY.
            match (self.env)("CREDENTIALS_DIRECTORY") {
                Some(dir) if !dir.is_empty() => PathBuf::from(dir).join(given),
                _ => self.dir.join(given),
            }
        };
        let shown = path.display().to_string();
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) => {
                self.problem(key, format!("cannot read {shown}: {}", io_message(&e)));
                return None;
            }
        };
        if !metadata.is_file() {
            self.problem(key, format!("{shown} is not a regular file"));
            return None;
        }
        if is_world_readable(&metadata) {
            self.problem(key, format!("{shown} is world-readable; chmod 600"));
            return None;
        }
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.problem(key, format!("cannot read {shown}: {}", io_message(&e)));
                return None;
            }
        };
        let Ok(mut value) = String::from_utf8(bytes) else {
            self.problem(key, format!("{shown} is not UTF-8 text"));
            return None;
        };
        let kept = value.trim_end_matches(['\n', '\r']).len();
        value.truncate(kept);
        if value.is_empty() {
            self.problem(key, format!("{shown} is empty"));
            return None;
        }
        Some(Secret(value))
    }

    fn secret_from_env(&mut self, key: &str, var: &str) -> Option<Secret> {
        if var.is_empty() {
            self.problem(key, "is empty; give the name of an environment variable");
            return None;
        }
        match (self.env)(var) {
            None => {
                self.problem(key, format!("environment variable {var} is not set"));
                None
            }
            Some(value) if value.is_empty() => {
                self.problem(key, format!("environment variable {var} is empty"));
                None
            }
            Some(value) => match value.into_string() {
                Ok(value) => Some(Secret(value)),
                Err(_) => {
                    self.problem(
                        key,
                        format!("environment variable {var} is not valid UTF-8"),
                    );
                    None
                }
            },
        }
    }

    fn columns(&mut self, raw: RawColumns) -> FieldNames {
        let defaults = FieldNames::default();
        let mut required = |key: &str, value: Option<String>, default: String| match value {
            None => default,
            Some(v) if v.trim().is_empty() => {
                self.problem(
                    &format!("feed.columns.{key}"),
                    "is required and cannot be switched off with \"\"",
                );
                default
            }
            Some(v) => v.trim().to_string(),
        };
        let employee_id = required("employee_id", raw.employee_id, defaults.employee_id);
        let effective_date = required(
            "effective_date",
            raw.effective_date,
            defaults.effective_date,
        );
        let status = required("status", raw.status, defaults.status);
        // An optional column set to "" is not mapped at all.
        let optional = |value: Option<String>, default: Option<String>| match value {
            None => default,
            Some(v) if v.trim().is_empty() => None,
            Some(v) => Some(v.trim().to_string()),
        };
        FieldNames {
            employee_id,
            email: optional(raw.email, defaults.email),
            username: optional(raw.username, defaults.username),
            upn: optional(raw.upn, defaults.upn),
            display_name: optional(raw.display_name, defaults.display_name),
            effective_date,
            status,
        }
    }

    fn statuses(&mut self, raw: RawStatus) -> StatusValues {
        let defaults = StatusValues::default();
        let mut list = |key: &str, value: Option<Vec<String>>, default: Vec<String>| {
            let Some(values) = value else {
                return default;
            };
            let values: Vec<String> = values.iter().map(|v| v.trim().to_string()).collect();
            if values.is_empty() {
                self.problem(
                    &format!("feed.status.{key}"),
                    "must list at least one value",
                );
            }
            if values.iter().any(String::is_empty) {
                self.problem(&format!("feed.status.{key}"), "contains an empty value");
            }
            values
        };
        let terminated = list("terminated", raw.terminated, defaults.terminated);
        let active = list("active", raw.active, defaults.active);
        // Feed values are compared ASCII case-insensitively, so overlaps are too.
        for value in &active {
            if terminated.iter().any(|t| t.eq_ignore_ascii_case(value)) {
                self.problem(
                    "feed.status.active",
                    format!("{value:?} is also listed in feed.status.terminated"),
                );
            }
        }
        StatusValues { terminated, active }
    }

    fn workers(&mut self, raw: RawWorkers) -> WorkersConfig {
        let defaults = WorkersConfig::default();
        let concurrency = self.integer_in(
            "workers.concurrency",
            raw.concurrency,
            i64::try_from(defaults.concurrency).unwrap_or(4),
            1,
            MAX_CONCURRENCY,
        );
        WorkersConfig {
            concurrency: usize::try_from(concurrency).unwrap_or(defaults.concurrency),
            lease: self.duration_at_least(
                "workers.lease",
                raw.lease.as_deref(),
                defaults.lease,
                MIN_LEASE,
            ),
            idle_poll: self.duration_at_least(
                "workers.idle_poll",
                raw.idle_poll.as_deref(),
                defaults.idle_poll,
                MIN_IDLE_POLL,
            ),
            shutdown_grace: self.duration(
                "workers.shutdown_grace",
                raw.shutdown_grace.as_deref(),
                defaults.shutdown_grace,
            ),
        }
    }

    /// Applies `raw` over `base`. `check_order` is false for a connector that overrides neither initial nor
    /// max, whose order was already checked on the global table.
    fn retry(
        &mut self,
        prefix: &str,
        raw: &RawRetry,
        base: &RetryPolicy,
        check_order: bool,
    ) -> RetryPolicy {
        let initial = self.duration(
            &format!("{prefix}.initial"),
            raw.initial.as_deref(),
            base.initial,
        );
        let max = self.duration(&format!("{prefix}.max"), raw.max.as_deref(), base.max);
        let factor = match raw.factor {
            None => base.factor,
            Some(f) if f.is_finite() && f >= 1.0 => f,
            Some(f) => {
                self.problem(
                    &format!("{prefix}.factor"),
                    format!("{f} is too small: must be at least 1.0"),
                );
                base.factor
            }
        };
        let max_attempts = match raw.max_attempts {
            None => base.max_attempts,
            Some(n) => match u32::try_from(n) {
                Ok(n) if n >= 1 => n,
                _ => {
                    self.problem(
                        &format!("{prefix}.max_attempts"),
                        format!("{n} is out of range: must be 1 to {}", u32::MAX),
                    );
                    base.max_attempts
                }
            },
        };
        if check_order && initial > max {
            let key = if raw.initial.is_some() {
                "initial"
            } else {
                "max"
            };
            self.problem(
                &format!("{prefix}.{key}"),
                format!(
                    "initial ({}) is longer than max ({})",
                    format_duration(initial),
                    format_duration(max)
                ),
            );
        }
        RetryPolicy {
            initial,
            max,
            factor,
            max_attempts,
        }
    }

    fn log(&mut self, raw: RawLog) -> LogConfig {
        let format = match raw.format {
            None | Some(RawLogFormat::Auto) => LogFormat::Auto,
            Some(RawLogFormat::Json) => LogFormat::Json,
            Some(RawLogFormat::Text) => LogFormat::Text,
        };
        let level = match raw.level {
            None => LogConfig::default().level,
            Some(level) if level.trim().is_empty() => {
                self.problem("log.level", "is empty; use e.g. \"info\"");
                LogConfig::default().level
            }
            Some(level) => level.trim().to_string(),
        };
        LogConfig { format, level }
    }

    fn connectors(
        &mut self,
        value: Spanned<DeValue<'_>>,
        retry: &RetryPolicy,
        safety: &SafetyConfig,
        workers: &WorkersConfig,
    ) -> Vec<ConnectorConfig> {
        let DeValue::Array(items) = value.into_inner() else {
            self.problem(
                "connector",
                "must be an array of tables: write each connector as [[connector]]",
            );
            return Vec::new();
        };
        let mut connectors = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (index, item) in items.into_iter().enumerate() {
            if let Some(connector) = self.connector(index, item, &mut seen, retry, safety, workers)
            {
                connectors.push(connector);
            }
        }
        connectors
    }

    fn connector(
        &mut self,
        index: usize,
        item: Spanned<DeValue<'_>>,
        seen: &mut HashMap<String, usize>,
        global_retry: &RetryPolicy,
        safety: &SafetyConfig,
        workers: &WorkersConfig,
    ) -> Option<ConnectorConfig> {
        let span = item.span();
        let original = item.clone();
        let DeValue::Table(table) = item.into_inner() else {
            self.problem(&format!("connector[{index}]"), "must be a table");
            return None;
        };

        // Split the flat table: common keys, the kind tag, and the kind-specific rest.
        let mut common = DeTable::new();
        let mut rest = DeTable::new();
        let mut kind = None;
        for (key, value) in table {
            match key.get_ref().as_ref() {
                "kind" => kind = Some(value),
                name if CONNECTOR_COMMON_KEYS.contains(&name) => {
                    common.insert(key, value);
                }
                _ => {
                    rest.insert(key, value);
                }
            }
        }

        let name_present = common.contains_key("name");
        let raw_name = common
            .get("name")
            .and_then(|v| v.get_ref().as_str())
            .map(str::to_string);
        let name_problem = match &raw_name {
            None => None,
            Some(name) => check_connector_name(name).err(),
        };
        let indexed = format!("connector[{index}]");
        let prefix = match (&raw_name, &name_problem) {
            (Some(name), None) => format!("connector.{name}"),
            _ => indexed.clone(),
        };

        let raw_common: Option<RawConnectorCommon> = self.deserialize_within(
            &prefix,
            &original,
            Spanned::new(span.clone(), DeValue::Table(common)),
            0,
        );
        let raw_kind: Option<RawConnectorKind> = match kind {
            None => {
                self.problem(
                    &format!("{prefix}.kind"),
                    format!(
                        "missing; set kind to one of {}",
                        backticked(&["exec", "scim", "panopto", "echo360", "openconext"])
                    ),
                );
                None
            }
            Some(kind) => match kind.get_ref().as_str() {
                Some(tag) => {
                    let mut tagged = DeTable::new();
                    tagged.insert(
                        Spanned::new(kind.span(), Cow::Owned(tag.to_string())),
                        Spanned::new(span.clone(), DeValue::Table(rest)),
                    );
                    let before = self.problems.len();
                    let parsed = self.deserialize_within(
                        &prefix,
                        &original,
                        Spanned::new(span, DeValue::Table(tagged)),
                        1,
                    );
                    // serde lists only the kind's own keys; point at the shared ones too.
                    for problem in &mut self.problems[before..] {
                        if problem.message.starts_with("unknown field") {
                            problem.message.push_str(&format!(
                                "; keys shared by all kinds: {}",
                                backticked(CONNECTOR_COMMON_KEYS)
                            ));
                        }
                    }
                    parsed
                }
                None => {
                    self.problem(
                        &format!("{prefix}.kind"),
                        "must be a string, e.g. kind = \"exec\"",
                    );
                    None
                }
            },
        };

        let name = match (raw_name, name_problem) {
            // A name of the wrong type was already reported by serde.
            (None, _) if name_present => None,
            (None, _) => {
                self.problem(
                    &format!("{indexed}.name"),
                    "missing; every connector needs a unique name",
                );
                None
            }
            (Some(_), Some(message)) => {
                self.problem(&format!("{indexed}.name"), message);
                None
            }
            (Some(name), None) => {
                if let Some(first) = seen.get(&name) {
                    self.problem(
                        &format!("{indexed}.name"),
                        format!("duplicate name {name:?}: connector[{first}] already uses it"),
                    );
                    None
                } else {
                    seen.insert(name.clone(), index);
                    Some(name)
                }
            }
        };

        let raw_common = raw_common?;
        let account_source = raw_common
            .account
            .as_deref()
            .unwrap_or(DEFAULT_ACCOUNT_TEMPLATE);
        let account = match Template::parse(account_source, PERSON_FIELDS) {
            Ok(template) if template.fields().next().is_none() => {
                self.problem(
                    &format!("{prefix}.account"),
                    format!(
                        "template {account_source:?} uses no person field, so every leaver would map to the same account; use e.g. \"{DEFAULT_ACCOUNT_TEMPLATE}\""
                    ),
                );
                None
            }
            Ok(template) => Some(template),
            Err(message) => {
                self.problem(&format!("{prefix}.account"), message);
                None
            }
        };
        let grace = self.duration(
            &format!("{prefix}.grace"),
            raw_common.grace.as_deref(),
            Duration::ZERO,
        );
        let concurrency = self.integer_in(
            &format!("{prefix}.concurrency"),
            raw_common.concurrency,
            i64::try_from(DEFAULT_CONNECTOR_CONCURRENCY).unwrap_or(2),
            1,
            MAX_CONCURRENCY,
        );
        let retry = match &raw_common.retry {
            None => *global_retry,
            Some(raw) => {
                let overrides_order = raw.initial.is_some() || raw.max.is_some();
                self.retry(
                    &format!("{prefix}.retry"),
                    raw,
                    global_retry,
                    overrides_order,
                )
            }
        };
        let rate = match raw_common.rate.as_deref().map(parse_rate) {
            None => None,
            Some(Ok(rate)) => Some(rate),
            Some(Err(message)) => {
                self.problem(&format!("{prefix}.rate"), message);
                None
            }
        };
        let never_remove = self.patterns(
            &format!("{prefix}.never_remove"),
            raw_common.never_remove.clone(),
        );
        let scope = self.scope(&format!("{prefix}.scope"), raw_common.scope.clone());
        let own_dry_run = raw_common.dry_run.unwrap_or(false);
        let kind = match raw_kind? {
            RawConnectorKind::Exec(raw) => ConnectorKind::Exec(self.exec(&prefix, raw, workers)?),
            RawConnectorKind::Panopto(raw) => {
                ConnectorKind::Panopto(self.panopto(&prefix, raw, workers)?)
            }
            RawConnectorKind::Echo360(raw) => {
                ConnectorKind::Echo360(self.echo360(&prefix, raw, workers)?)
            }
            RawConnectorKind::Openconext(raw) => {
                ConnectorKind::Openconext(self.openconext(&prefix, raw, workers)?)
            }
            RawConnectorKind::Scim(raw) => ConnectorKind::Scim(self.scim(&prefix, raw, workers)?),
        };
        let name = name?;
        if own_dry_run && !safety.dry_run {
            self.warnings.push(format!(
                "connector {name} is in dry-run: it resolves accounts and removes nothing"
            ));
        }
        Some(ConnectorConfig {
            name,
            account: account?,
            grace,
            dry_run: own_dry_run || safety.dry_run,
            concurrency: usize::try_from(concurrency).unwrap_or(DEFAULT_CONNECTOR_CONCURRENCY),
            rate,
            never_remove,
            scope,
            retry,
            kind,
        })
    }

    fn exec(&mut self, prefix: &str, raw: RawExec, workers: &WorkersConfig) -> Option<ExecConfig> {
        let before = self.problems.len();
        let program = match raw.program.as_deref() {
            None => {
                self.problem(
                    &format!("{prefix}.program"),
                    "missing; set the path of the program to run",
                );
                None
            }
            Some("") => {
                self.problem(&format!("{prefix}.program"), "is empty");
                None
            }
            Some(program) => {
                let path = self.dir.join(program);
                match check_executable(&path) {
                    Ok(()) => Some(path),
                    Err(message) => {
                        self.problem(&format!("{prefix}.program"), message);
                        None
                    }
                }
            }
        };

        let mut arg_fields: Vec<&str> = PERSON_FIELDS.to_vec();
        arg_fields.push("account");
        let mut args = Vec::new();
        for (i, source) in raw.args.unwrap_or_default().iter().enumerate() {
            match Template::parse(source, &arg_fields) {
                Ok(template) => args.push(template),
                Err(message) => self.problem(&format!("{prefix}.args[{i}]"), message),
            }
        }

        let timeout_key = format!("{prefix}.timeout");
        let timeout = self.duration(&timeout_key, raw.timeout.as_deref(), DEFAULT_EXEC_TIMEOUT);
        if timeout.is_zero() {
            self.problem(&timeout_key, "must be longer than 0s");
        } else if timeout >= workers.lease {
            self.warnings.push(format!(
                "{timeout_key} ({}) is not shorter than workers.lease ({}): a slow call can outlive its lease and run twice",
                format_duration(timeout),
                format_duration(workers.lease)
            ));
        }

        let exit_already_absent = self.exit_codes(
            &format!("{prefix}.exit_already_absent"),
            raw.exit_already_absent,
            DEFAULT_EXIT_ALREADY_ABSENT,
        );
        let exit_permanent = self.exit_codes(
            &format!("{prefix}.exit_permanent"),
            raw.exit_permanent,
            DEFAULT_EXIT_PERMANENT,
        );
        for code in &exit_permanent {
            if exit_already_absent.contains(code) {
                self.problem(
                    &format!("{prefix}.exit_permanent"),
                    format!("exit code {code} is also in exit_already_absent; a code can mean only one outcome"),
                );
            }
        }

        if self.problems.len() > before {
            return None;
        }
        Some(ExecConfig {
            program: program?,
            args,
            timeout,
            exit_already_absent,
            exit_permanent,
        })
    }

    fn panopto(
        &mut self,
        prefix: &str,
        raw: RawPanopto,
        workers: &WorkersConfig,
    ) -> Option<PanoptoConfig> {
        let before = self.problems.len();
        let host_key = format!("{prefix}.host");
        let host = match raw.host.as_deref().map(str::trim) {
            None => {
                self.problem(
                    &host_key,
                    "missing; set the site's web server FQDN, e.g. \"demo.hosted.panopto.com\"",
                );
                None
            }
            Some(host) => match check_host_name(host) {
                Ok(()) => Some(host.to_string()),
                Err(message) => {
                    self.problem(&host_key, message);
                    None
                }
            },
        };

        let endpoint_key = format!("{prefix}.endpoint");
        let endpoint = match (&raw.endpoint, &host) {
            (Some(url), _) => match check_soap_endpoint(url) {
                Ok(()) => Some(url.clone()),
                Err(message) => {
                    self.problem(&endpoint_key, message);
                    None
                }
            },
            (None, Some(host)) => Some(format!(
                "https://{host}/Panopto/PublicAPI/4.6/UserManagement.svc"
            )),
            (None, None) => None,
        };

        let user_key = format!("{prefix}.api_user_key");
        let api_user_key = match raw.api_user_key {
            None => {
                self.problem(
                    &user_key,
                    "missing; set the user key offboard authenticates as, e.g. \"MyIdP\\\\svc-offboard\"",
                );
                None
            }
            Some(key) if key.trim().is_empty() => {
                self.problem(&user_key, "is empty");
                None
            }
            Some(key) => match crate::connectors::panopto::soap::unsafe_xml_char(&key) {
                Some(c) => {
                    self.problem(
                        &user_key,
                        format!("contains the character {c:?}, which XML cannot carry"),
                    );
                    None
                }
                None => Some(key),
            },
        };

        let password_set = raw.password_file.is_some() || raw.password_env.is_some();
        let app_key_set = raw.application_key_file.is_some() || raw.application_key_env.is_some();
        let table = prefix.to_string();
        let credential = match (password_set, app_key_set) {
            (true, true) => {
                self.problem(
                    &format!("{prefix}.password_file"),
                    "set either password_file/password_env (a Panopto-internal API user) or application_key_file/application_key_env (an identity-provider API user), not both",
                );
                None
            }
            (false, false) => {
                self.problem(
                    &format!("{prefix}.password_file"),
                    "missing; set password_file or password_env (a Panopto-internal API user), or application_key_file or application_key_env (an identity-provider API user)",
                );
                None
            }
            (true, false) => self
                .secret(&table, "password", raw.password_file, raw.password_env)
                .and_then(|s| self.xml_safe_secret(&format!("{prefix}.password"), s))
                .map(PanoptoCredential::Password),
            (false, true) => self
                .secret(
                    &table,
                    "application_key",
                    raw.application_key_file,
                    raw.application_key_env,
                )
                .and_then(|s| self.xml_safe_secret(&format!("{prefix}.application_key"), s))
                .map(|key| {
                    if !is_guid(key.expose().trim()) {
                        self.warnings.push(format!(
                            "{prefix}.application_key does not look like a GUID; Panopto shows the application key of an identity provider as one (System > Identity Providers)"
                        ));
                    }
                    PanoptoCredential::ApplicationKey(key)
                }),
        };
        if let (Some(key), Some(credential)) = (&api_user_key, &credential) {
            match credential {
                PanoptoCredential::Password(_) if key.contains('\\') => {
                    self.warnings.push(format!(
                        "{prefix}.api_user_key has an identity-provider prefix but a password is configured; identity-provider users authenticate with application_key_file/_env"
                    ));
                }
                PanoptoCredential::ApplicationKey(_) if !key.contains('\\') => {
                    self.warnings.push(format!(
                        "{prefix}.api_user_key has no identity-provider prefix (Instance\\user); an application key only authenticates users of that identity provider"
                    ));
                }
                _ => {}
            }
        }

        let prefixes_key = format!("{prefix}.fallback_prefixes");
        let mut fallback_prefixes: Vec<String> = Vec::new();
        for (i, p) in raw
            .fallback_prefixes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("{prefixes_key}[{i}]");
            if p.is_empty() {
                self.problem(&key, "is empty");
            } else if p.contains('\\') {
                self.problem(
                    &key,
                    format!(
                        "{p:?} contains a backslash; give the instance name only, e.g. \"unified\""
                    ),
                );
            } else if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                self.problem(
                    &key,
                    format!("{p:?} contains whitespace or a control character"),
                );
            } else if fallback_prefixes.iter().any(|q| q.eq_ignore_ascii_case(&p)) {
                self.problem(&key, format!("{p:?} is listed twice"));
            } else {
                fallback_prefixes.push(p);
            }
        }

        let timeout_key = format!("{prefix}.timeout");
        let timeout = self.duration(
            &timeout_key,
            raw.timeout.as_deref(),
            DEFAULT_PANOPTO_TIMEOUT,
        );
        if timeout.is_zero() {
            self.problem(&timeout_key, "must be longer than 0s");
        } else {
            // One attempt makes a lookup per key variant and then the delete.
            let calls = u32::try_from(fallback_prefixes.len() + 2).unwrap_or(u32::MAX);
            let worst = timeout.saturating_mul(calls);
            if worst >= workers.lease {
                self.warnings.push(format!(
                    "{timeout_key} ({}) times the {calls} calls of one attempt is not shorter than workers.lease ({}): a slow attempt can outlive its lease and run twice",
                    format_duration(timeout),
                    format_duration(workers.lease)
                ));
            }
        }

        if self.problems.len() > before {
            return None;
        }
        Some(PanoptoConfig {
            host: host?,
            endpoint: endpoint?,
            api_user_key: api_user_key?,
            credential: credential?,
            fallback_prefixes,
            timeout,
        })
    }

    /// Refuses a secret that a SOAP request could not carry unchanged; never echoes it.
    fn xml_safe_secret(&mut self, key: &str, secret: Secret) -> Option<Secret> {
        if crate::connectors::panopto::soap::unsafe_xml_char(secret.expose()).is_some() {
            self.problem(
                key,
                "contains a control character, which XML cannot carry; check the secret's source",
            );
            return None;
        }
        Some(secret)
    }

    fn exit_codes(&mut self, key: &str, raw: Option<Vec<i64>>, default: &[i32]) -> Vec<i32> {
        let Some(raw) = raw else {
            return default.to_vec();
        };
        let mut codes = Vec::new();
        for code in raw {
            match code {
                0 => self.problem(key, "0 means success and cannot be listed"),
                1..=255 => {
                    let code = i32::try_from(code).unwrap_or_default();
                    if !codes.contains(&code) {
                        codes.push(code);
                    }
                }
                _ => self.problem(
                    key,
                    format!("exit code {code} is out of range: must be 1 to 255"),
                ),
            }
        }
        codes
    }

    fn echo360(
        &mut self,
        prefix: &str,
        raw: RawEcho360,
        workers: &WorkersConfig,
    ) -> Option<Echo360Config> {
        let before = self.problems.len();
        let base_url = self
            .service_url(&format!("{prefix}.base_url"), raw.base_url.as_deref())
            .map(|url| url.trim_end_matches('/').to_string());
        let client_id = self.secret(prefix, "client_id", raw.client_id_file, raw.client_id_env);
        let client_secret = self.secret(
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
                self.problem(
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
                    self.problem(&fields_key, "is only used with action = \"deactivate\"");
                }
                Some(Echo360Action::Delete)
            }
            (Some("deactivate"), Some(set)) if !set.is_empty() => {
                Some(Echo360Action::Deactivate { set })
            }
            (Some("deactivate"), _) => {
                self.problem(
                    &fields_key,
                    "missing; action = \"deactivate\" needs the user fields that make an Echo360 user inactive \
                     (the public API does not document them: read them from your region's Swagger UI), \
                     e.g. deactivate_fields = { status = \"Inactive\" }",
                );
                None
            }
            (Some(other), _) => {
                self.problem(
                    &format!("{prefix}.action"),
                    format!("unknown action {other:?}; expected \"delete\" or \"deactivate\""),
                );
                None
            }
            (None, _) => {
                self.problem(
                    &format!("{prefix}.action"),
                    "missing; set action = \"delete\" (permanent) or action = \"deactivate\" (the user keeps \
                     their recordings and analytics but cannot sign in)",
                );
                None
            }
        };
        let page_size = self.integer_in(
            &format!("{prefix}.page_size"),
            raw.page_size,
            i64::from(DEFAULT_ECHO360_PAGE_SIZE),
            1,
            1000,
        );
        let index_ttl = self.duration(
            &format!("{prefix}.index_ttl"),
            raw.index_ttl.as_deref(),
            DEFAULT_ECHO360_INDEX_TTL,
        );
        let timeout = self.vendor_timeout(prefix, raw.timeout.as_deref(), workers);
        let raw_paths = raw.paths.unwrap_or_default();
        let token = self.api_path(
            &format!("{prefix}.paths.token"),
            raw_paths.token,
            DEFAULT_ECHO360_TOKEN_PATH,
            false,
        );
        let users = self.api_path(
            &format!("{prefix}.paths.users"),
            raw_paths.users,
            DEFAULT_ECHO360_USERS_PATH,
            false,
        );
        let user = self.api_path(
            &format!("{prefix}.paths.user"),
            raw_paths.user,
            DEFAULT_ECHO360_USER_PATH,
            true,
        );
        if self.problems.len() > before {
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

    fn openconext(
        &mut self,
        prefix: &str,
        raw: RawOpenconext,
        workers: &WorkersConfig,
    ) -> Option<OpenconextConfig> {
        let before = self.problems.len();
        let base_url = self
            .service_url(&format!("{prefix}.base_url"), raw.base_url.as_deref())
            .map(|url| {
                // Request paths are relative to the base, so it must end in '/'.
                if url.ends_with('/') {
                    url
                } else {
                    format!("{url}/")
                }
            });
        let username = match (raw.username, raw.username_file, raw.username_env) {
            (Some(name), None, None) if !name.is_empty() => Some(Secret(name)),
            (Some(_), None, None) => {
                self.problem(&format!("{prefix}.username"), "is empty");
                None
            }
            (None, file, env) if file.is_some() || env.is_some() => {
                self.secret(prefix, "username", file, env)
            }
            (None, _, _) => {
                self.problem(
                    &format!("{prefix}.username"),
                    "missing; set username, username_file or username_env (the Basic auth user of the deprovision API)",
                );
                None
            }
            (Some(_), _, _) => {
                self.problem(
                    &format!("{prefix}.username"),
                    "set only one of username, username_file and username_env",
                );
                None
            }
        };
        let password = self.secret(prefix, "password", raw.password_file, raw.password_env);
        let timeout = self.vendor_timeout(prefix, raw.timeout.as_deref(), workers);
        if self.problems.len() > before {
            return None;
        }
        Some(OpenconextConfig {
            base_url: base_url?,
            username: username?,
            password: password?,
            timeout,
        })
    }

    /// Checks a vendor base URL (required): http(s), a host, no credentials, no query or fragment.
    /// Returns it as written. Plain http is a warning.
    fn service_url(&mut self, key: &str, raw: Option<&str>) -> Option<String> {
        let Some(raw) = raw else {
            self.problem(key, "missing; set the service's https:// URL");
            return None;
        };
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.problem(
                key,
                "is not a valid URL: it contains spaces or control characters",
            );
            return None;
        }
        let url = match reqwest::Url::parse(raw) {
            Ok(url) => url,
            Err(e) => {
                self.problem(key, format!("is not a valid URL: {e}"));
                return None;
            }
        };
        match url.scheme() {
            "https" => {}
            "http" => self.warnings.push(format!(
                "{key} uses plain http: personal data and credentials cross the network unencrypted"
            )),
            other => {
                self.problem(
                    key,
                    format!("must start with http:// or https:// (found scheme {other:?})"),
                );
                return None;
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            self.problem(key, "has no host");
            return None;
        }
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(
                key,
                "must not contain credentials (user:password@); use the connector's _file or _env secrets",
            );
            return None;
        }
        if url.query().is_some() || url.fragment().is_some() {
            self.problem(key, "must not have a query string or fragment");
            return None;
        }
        Some(raw.to_string())
    }

    /// The `timeout` of one HTTP call of a vendor connector: above zero, and a warning when it is
    /// not shorter than the lease.
    fn vendor_timeout(
        &mut self,
        prefix: &str,
        raw: Option<&str>,
        workers: &WorkersConfig,
    ) -> Duration {
        let key = format!("{prefix}.timeout");
        let timeout = self.duration(&key, raw, DEFAULT_VENDOR_TIMEOUT);
        if timeout.is_zero() {
            self.problem(&key, "must be longer than 0s");
            return DEFAULT_VENDOR_TIMEOUT;
        }
        if timeout >= workers.lease {
            self.warnings.push(format!(
                "{key} ({}) is not shorter than workers.lease ({}): a slow call can outlive its lease and run twice",
                format_duration(timeout),
                format_duration(workers.lease)
            ));
        }
        timeout
    }

    /// A request path: absolute (`/…`), no query, and (`with_id`) exactly one `{id}`.
    fn api_path(&mut self, key: &str, raw: Option<String>, default: &str, with_id: bool) -> String {
        let Some(path) = raw else {
            return default.to_string();
        };
        if !path.starts_with('/') || path.contains(['?', '#']) || path.contains(char::is_whitespace)
        {
            self.problem(
                key,
                format!(
                    "{path:?} must be an absolute path such as {default:?}, without query or spaces"
                ),
            );
        } else if with_id && path.matches("{id}").count() != 1 {
            self.problem(
                key,
                format!("{path:?} must contain {{id}} exactly once, e.g. {default:?}"),
            );
        } else if !with_id && path.contains('{') {
            self.problem(key, format!("{path:?} takes no placeholder"));
        }
        path
    }
}

/// Building `kind = "scim"`.
impl Builder<'_> {
    fn scim(&mut self, prefix: &str, raw: RawScim, workers: &WorkersConfig) -> Option<ScimConfig> {
        let before = self.problems.len();
        let base_key = format!("{prefix}.base_url");
        let base_url = match raw.base_url.as_deref() {
            None => {
                self.problem(
                    &base_key,
                    "missing; set the SCIM base URL, e.g. \"https://api.anaplan.com/scim/1/0/v2\"",
                );
                None
            }
            Some(url) => self.scim_service_url(&base_key, url),
        };
        let auth = match raw.auth {
            None => {
                self.problem(
                    &format!("{prefix}.auth"),
                    "missing; set auth = { kind = \"bearer\", token_file = \"…\" } or kind = \"anaplan\"",
                );
                None
            }
            Some(auth) => self.scim_auth(&format!("{prefix}.auth"), *auth),
        };
        let match_on = match raw.match_on.as_deref() {
            None => ScimMatch::UserName,
            Some(m) if m.eq_ignore_ascii_case("userName") => ScimMatch::UserName,
            Some(m) if m.eq_ignore_ascii_case("externalId") => ScimMatch::ExternalId,
            Some(m) if m.eq_ignore_ascii_case("id") => ScimMatch::Id,
            Some(other) => {
                self.problem(
                    &format!("{prefix}.match"),
                    format!("unknown attribute {other:?}; expected \"userName\", \"externalId\" or \"id\""),
                );
                ScimMatch::UserName
            }
        };
        let actions = self.scim_actions(&format!("{prefix}.actions"), raw.actions);
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
                    self.problem(
                        &path_key,
                        format!("{path:?} does not name entitlements or roles; e.g. \"entitlements\" or \"entitlements[type eq \\\"WORKSPACE\\\"]\""),
                    );
                } else if path.chars().any(char::is_control) {
                    self.problem(&path_key, "contains a control character");
                }
                if !actions.contains(&ScimAction::RemoveEntitlements) {
                    self.warnings.push(format!(
                        "{path_key} is set but {prefix}.actions has no \"remove_entitlements\": it is not used"
                    ));
                }
                path
            }
        };
        let timeout_key = format!("{prefix}.timeout");
        let timeout = self.duration(&timeout_key, raw.timeout.as_deref(), DEFAULT_SCIM_TIMEOUT);
        if timeout.is_zero() {
            self.problem(&timeout_key, "must be longer than 0s");
        } else if timeout >= workers.lease {
            self.warnings.push(format!(
                "{timeout_key} ({}) is not shorter than workers.lease ({}): a slow call can outlive its lease and run twice",
                format_duration(timeout),
                format_duration(workers.lease)
            ));
        }
        if matches!(auth, Some(ScimAuth::Anaplan { .. })) && actions.contains(&ScimAction::Delete) {
            self.warnings.push(format!(
                "{prefix}.actions has \"delete\", but Anaplan answers DELETE /Users with 501 Not Implemented, so every removal would fail; use [\"deactivate\", \"remove_entitlements\"]"
            ));
        }
        if self.problems.len() > before {
            return None;
        }
        Some(ScimConfig {
            base_url: base_url?,
            auth: auth?,
            match_on,
            actions,
            entitlements_path,
            timeout,
        })
    }

    fn scim_auth(&mut self, key: &str, raw: RawScimAuth) -> Option<ScimAuth> {
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
        let unused = |cx: &mut Self, kind: &str, keys: &[(&str, bool)]| {
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
                    self,
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
                let token = self.secret(key, "token", token_file, token_env)?;
                Some(ScimAuth::Bearer { token })
            }
            Some("anaplan") => {
                unused(
                    self,
                    "anaplan",
                    &[
                        ("token_file", token_file.is_some()),
                        ("token_env", token_env.is_some()),
                    ],
                );
                let username = match (username, username_file.is_some() || username_env.is_some()) {
                    (Some(_), true) => {
                        self.problem(
                            &format!("{key}.username"),
                            "set one of username, username_file and username_env",
                        );
                        None
                    }
                    (Some(name), false) if name.trim().is_empty() => {
                        self.problem(&format!("{key}.username"), "is empty");
                        None
                    }
                    (Some(name), false) => Some(Secret(name.trim().to_string())),
                    (None, _) => self.secret(key, "username", username_file, username_env),
                };
                let password = self.secret(key, "password", password_file, password_env);
                let url_key = format!("{key}.auth_url");
                let auth_url = self.scim_service_url(
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
                self.problem(
                    &format!("{key}.kind"),
                    format!("unknown auth kind {other:?}; expected \"bearer\" or \"anaplan\""),
                );
                None
            }
            None => {
                self.problem(
                    &format!("{key}.kind"),
                    "missing; set kind = \"bearer\" or kind = \"anaplan\"",
                );
                None
            }
        }
    }

    fn scim_actions(&mut self, key: &str, raw: Option<Vec<String>>) -> Vec<ScimAction> {
        let Some(raw) = raw else {
            return vec![ScimAction::Deactivate];
        };
        if raw.is_empty() {
            self.problem(
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
                    self.problem(
                        key,
                        format!("unknown action {other:?}; expected \"deactivate\", \"remove_entitlements\" or \"delete\""),
                    );
                    continue;
                }
            };
            if actions.contains(&action) {
                self.problem(key, format!("{name:?} is listed twice"));
            } else if actions.last().is_some_and(|last| *last > action) {
                self.problem(
                    key,
                    format!("{name:?} is out of order: actions run as deactivate, remove_entitlements, delete; list them in that order"),
                );
            } else {
                actions.push(action);
            }
        }
        actions
    }

    /// [`Self::service_url`] for a scim URL, returned without a trailing slash.
    fn scim_service_url(&mut self, key: &str, url: &str) -> Option<String> {
        self.service_url(key, Some(url.trim()))
            .map(|u| u.trim_end_matches('/').to_string())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// `Ok` when `name` is 1-64 characters of `[a-z0-9_-]` starting with a letter.
fn check_connector_name(name: &str) -> Result<(), String> {
    let starts_with_letter = name.chars().next().is_some_and(|c| c.is_ascii_lowercase());
    let allowed = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if (1..=64).contains(&name.len()) && starts_with_letter && allowed {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: use 1 to 64 characters of a-z, 0-9, '_' and '-', starting with a letter"
        ))
    }
}

/// Turns a `database.url` into the SQLite file path. Only the scheme of a foreign URL is echoed: it may hold a
/// password.
fn sqlite_path(url: &str, dir: &Path) -> Result<PathBuf, String> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        let scheme = url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        return Err(match scheme.as_deref() {
            Some("postgres" | "postgresql") => {
                "PostgreSQL is not supported yet; use sqlite://PATH, e.g. \"sqlite:///var/lib/offboard/offboard.db\""
                    .to_string()
            }
            Some(scheme) if !scheme.is_empty() && !scheme.contains(['/', '\\']) => format!(
                "unsupported database scheme {scheme:?}: only SQLite is supported, e.g. \"sqlite:///var/lib/offboard/offboard.db\""
            ),
            _ => "must be a sqlite URL such as \"sqlite://offboard.db\" (relative to this file) or \"sqlite:///var/lib/offboard/offboard.db\"".to_string(),
        });
    };
    let file = rest.strip_prefix("//").unwrap_or(rest);
    if file.contains('?') {
        return Err(
            "URL parameters are not supported; use database.max_connections and database.busy_timeout".to_string(),
        );
    }
    if file.is_empty() {
        return Err("names no database file, e.g. \"sqlite://offboard.db\"".to_string());
    }
    if file.starts_with(":memory:") || file == "memory:" {
        return Err(
            "an in-memory database loses the queue on restart; give a file path".to_string(),
        );
    }
    Ok(dir.join(file))
}

/// `Ok` when `host` is a bare DNS name (no scheme, port or path).
fn check_host_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("is empty".into());
    }
    if host.contains("://") || host.contains('/') || host.contains(':') {
        return Err(format!(
            "{host:?} is not a bare host name; give only the web server FQDN, e.g. \"demo.hosted.panopto.com\" (set endpoint for a different URL)"
        ));
    }
    let labels_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    });
    if !labels_ok || host.len() > 253 {
        return Err(format!("{host:?} is not a valid DNS name"));
    }
    Ok(())
}

/// `Ok` when `url` is an https URL, or an http URL to this machine (tests, a local TLS proxy): the
/// API user's password or AuthCode travels in every request.
fn check_soap_endpoint(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a valid URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain user:password@".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not have a query or fragment; give the .svc URL itself".into());
    }
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(
            "must use https: the API user's credentials are sent in every request (plain http is only accepted to 127.0.0.1, ::1 or localhost)"
                .into(),
        ),
        other => Err(format!("must start with https:// (found scheme {other:?})")),
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

/// `Ok` when `path` is an executable regular file./// `Ok` when `path` is an executable regular file.
fn check_executable(path: &Path) -> Result<(), String> {
    let shown = path.display();
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot use {shown}: {}", io_message(&e)))?;
    if !metadata.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if !is_executable(&metadata) {
        return Err(format!("{shown} is not executable (chmod +x)"));
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_metadata: &std::fs::Metadata) -> bool {
    true
}

#[cfg(unix)]
fn is_world_readable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o004 != 0
}

#[cfg(not(unix))]
fn is_world_readable(_metadata: &std::fs::Metadata) -> bool {
    false
}

#[cfg(unix)]
fn is_world_writable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

#[cfg(not(unix))]
fn is_world_writable(_path: &Path) -> bool {
    false
}

/// The path made absolute against the current directory when possible.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// An I/O error's text without the trailing "(os error N)".
fn io_message(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Finds the key path of the entry that contains byte `offset`. Header tables (`[feed]`) only span their header,
/// so children are searched before the value's own span.
fn locate(value: &Spanned<DeValue<'_>>, offset: usize, path: &mut Vec<String>) -> bool {
    match value.get_ref() {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                path.push(key.get_ref().to_string());
                if key.span().contains(&offset) || locate(child, offset, path) {
                    return true;
                }
                path.pop();
            }
        }
        DeValue::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(format!("[{i}]"));
                if locate(child, offset, path) {
                    return true;
                }
                path.pop();
            }
        }
        _ => {}
    }
    let span = value.span();
    span.contains(&offset) || span.start == offset
}

/// Drops quoted string values from a serde message (`invalid type: string "…", expected …`): a secret pasted
/// into the wrong key must not reach a log. The key and line are reported anyway.
fn redact_strings(message: &str) -> String {
    const MARK: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        out.push_str("string");
        let mut chars = rest[at + MARK.len()..].char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = Some(at + MARK.len() + i + 1);
                    break;
                }
                _ => {}
            }
        }
        match end {
            Some(end) => rest = &rest[end..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Removes the table entry at `path` (table keys only); true when something was removed.
fn remove_entry(value: &mut DeValue<'_>, path: &[String]) -> bool {
    let DeValue::Table(table) = value else {
        return false;
    };
    match path {
        [] => false,
        [key] => table.remove(key.as_str()).is_some(),
        [key, rest @ ..] => table
            .get_mut(key.as_str())
            .is_some_and(|child| remove_entry(child.get_mut(), rest)),
    }
}

/// Joins a prefix and located segments into a dotted key; `[i]` segments attach without a dot.
fn join_key(prefix: &str, segments: &[String]) -> String {
    let mut key = prefix.to_string();
    for segment in segments {
        if !segment.starts_with('[') && !key.is_empty() {
            key.push('.');
        }
        key.push_str(segment);
    }
    key
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a duration in the largest unit that divides it, as the config spells durations.
fn format_duration(d: Duration) -> String {
    let millis = d.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis != 0 && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds with a fixed environment instead of the process's.
    fn parse_with(text: &str, dir: &Path, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        build(text, &dir.join("offboard.toml"), &|name| {
            vars.get(name).map(OsString::from)
        })
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_with(text, Path::new("/etc/offboard"), &[])
    }

    fn problems(text: &str) -> Vec<Problem> {
        match parse(text) {
            Ok(_) => panic!("expected the config to be refused"),
            Err(e) => e.problems,
        }
    }

    fn problem_for<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
        problems
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("no problem for key {key}: {problems:#?}"))
    }

    #[cfg(unix)]
    fn write_file(path: &Path, content: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    const FEED_HEAD: &str = "[feed]\nkind = \"csv\"\nschedule = \"0 */5 * * * *\"\n";

    #[test]
    fn example_config_parses_with_its_documented_values() {
        let dir = tempfile::tempdir().unwrap();
        write_file(
            &dir.path().join("scripts/remove-ldap-user"),
            "#!/bin/sh\nexit 0\n",
            0o755,
        );
        let path = dir.path().join("offboard.toml");
        write_file(
            &path,
            include_str!("../config/offboard.example.toml"),
            0o644,
        );
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            config.database.path,
            PathBuf::from("/var/lib/offboard/offboard.db")
        );
        let feed = config.feed.as_ref().unwrap();
        assert!(matches!(&feed.source, FeedSource::File(p) if p.ends_with("hr/terminations.csv")));
        assert_eq!(feed.timezone, chrono_tz::Europe::Amsterdam);
        let connector = config.connector("ldap_cleanup").unwrap();
        assert_eq!(connector.account.source(), "{username}");
        let ConnectorKind::Exec(exec) = &connector.kind else {
            panic!("expected an exec connector");
        };
        assert_eq!(exec.program, dir.path().join("scripts/remove-ldap-user"));
        assert_eq!(connector.retry.max_attempts, 5);
        assert_eq!(connector.retry.initial, config.retry.initial);
        assert!(config.connector("nope").is_none());
    }

    #[test]
    fn example_config_documents_every_key() {
        let example = include_str!("../config/offboard.example.toml");
        let keys = [
            "url",
            "max_connections",
            "busy_timeout",
            "kind",
            "path",
            "auth",
            "token_file",
            "token_env",
            "username",
            "password_file",
            "password_env",
            "schedule",
            "timezone",
            "timeout",
            "employee_id",
            "email",
            "upn",
            "display_name",
            "effective_date",
            "status",
            "terminated",
            "active",
            "concurrency",
            "lease",
            "idle_poll",
            "shutdown_grace",
            "initial",
            "max",
            "factor",
            "max_attempts",
            "dry_run",
            "format",
            "level",
            "name",
            "account",
            "grace",
            "program",
            "args",
            "exit_already_absent",
            "exit_permanent",
            "rate",
            "max_terminations_per_batch",
            "max_terminations_percent",
            "never_remove",
            "scope",
            "listen",
            "push_token_file",
            "push_token_env",
            "records",
            "cursor_param",
            "sla",
            "alert_after",
            "host",
            "endpoint",
            "api_user_key",
            "application_key_file",
            "application_key_env",
            "fallback_prefixes",
            "base_url",
            "client_id_file",
            "client_id_env",
            "client_secret_file",
            "client_secret_env",
            "match",
            "action",
            "deactivate_fields",
            "page_size",
            "index_ttl",
            "token",
            "users",
            "user",
            "username_file",
            "username_env",
        ];
        for key in keys {
            let documented = example.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} =")) || line.contains(&format!(" {key} ="))
            });
            assert!(documented, "key {key} is not shown in the example");
        }
        for table in [
            "[database]",
            "[feed]",
            "[feed.columns]",
            "[feed.status]",
            "[feed.attributes]",
            "[http]",
            "[report]",
            "[workers]",
            "[retry]",
            "[safety]",
            "[log]",
            "[[connector]]",
            "[connector.retry]",
            "[connector.paths]",
        ] {
            assert!(
                example.contains(table),
                "table {table} is not shown in the example"
            );
        }
    }

    #[test]
    fn minimal_config_gets_every_default() {
        let config = parse("").unwrap();
        assert_eq!(config.path, PathBuf::from("/etc/offboard/offboard.toml"));
        assert_eq!(
            config.database,
            DatabaseConfig {
                path: PathBuf::from("/etc/offboard/offboard.db"),
                max_connections: 4,
                busy_timeout: Duration::from_secs(5),
            }
        );
        assert!(config.feed.is_none());
        assert_eq!(
            config.workers,
            WorkersConfig {
                concurrency: 4,
                lease: Duration::from_secs(300),
                idle_poll: Duration::from_secs(30),
                shutdown_grace: Duration::from_secs(20),
            }
        );
        assert_eq!(
            config.retry,
            RetryPolicy {
                initial: Duration::from_secs(30),
                max: Duration::from_secs(21_600),
                factor: 2.0,
                max_attempts: 12,
            }
        );
        assert!(!config.safety.dry_run);
        assert_eq!(
            config.log,
            LogConfig {
                format: LogFormat::Auto,
                level: "info".into()
            }
        );
        assert!(config.connectors.is_empty());
        assert!(
            config.warnings.iter().any(|w| w.contains("no [feed]")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn minimal_feed_and_connector_get_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("rm"), "#!/bin/sh\n", 0o700);
        let text = format!(
            "{FEED_HEAD}path = \"feed.csv\"\n[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"rm\"\n"
        );
        let config = parse_with(&text, dir.path(), &[]).unwrap();
        let feed = config.feed.unwrap();
        assert!(matches!(&feed.source, FeedSource::File(p) if *p == dir.path().join("feed.csv")));
        assert_eq!(feed.columns, FieldNames::default());
        assert_eq!(feed.statuses, StatusValues::default());
        assert_eq!(feed.timezone, chrono_tz::Tz::UTC);
        assert_eq!(feed.timeout, Duration::from_secs(60));
        let c = &config.connectors[0];
        assert_eq!(c.account.source(), "{email}");
        assert_eq!(
            (c.grace, c.dry_run, c.concurrency),
            (Duration::ZERO, false, 2)
        );
        assert_eq!(c.retry, RetryPolicy::default());
        let ConnectorKind::Exec(exec) = &c.kind else {
            panic!("expected an exec connector");
        };
        assert_eq!(exec.args, Vec::<Template>::new());
        assert_eq!(exec.timeout, Duration::from_secs(30));
        assert_eq!(
            (
                exec.exit_already_absent.as_slice(),
                exec.exit_permanent.as_slice()
            ),
            (&[3][..], &[2][..])
        );
    }

    #[test]
    fn database_urls_resolve_against_the_config_dir_and_only_sqlite_is_accepted() {
        let db =
            |url: &str| parse(&format!("[database]\nurl = \"{url}\"\n")).map(|c| c.database.path);
        assert_eq!(
            db("sqlite:///var/lib/x.db").unwrap(),
            PathBuf::from("/var/lib/x.db")
        );
        assert_eq!(
            db("sqlite:rel/x.db").unwrap(),
            PathBuf::from("/etc/offboard/rel/x.db")
        );
        assert_eq!(
            db("sqlite://x.db").unwrap(),
            PathBuf::from("/etc/offboard/x.db")
        );
        let err = db("postgres://offboard:hunter2@db/offboard").unwrap_err();
        assert_eq!(err.problems[0].key, "database.url");
        assert!(
            err.problems[0]
                .message
                .contains("PostgreSQL is not supported"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(db("sqlite::memory:").is_err());
    }

    #[test]
    fn unknown_top_level_key_is_named_with_its_line() {
        let found = problems("[database]\nurl = \"sqlite://x.db\"\n\n[databse]\nurl = 1\n");
        let p = problem_for(&found, "databse");
        assert!(
            p.message.contains("unknown key `databse`") && p.message.contains("line 4"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_key_in_feed_is_named_with_its_line() {
        let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nemial = \"mail\"\n");
        let found = problems(&text);
        let p = problem_for(&found, "feed.columns.emial");
        assert!(
            p.message.contains("unknown field `emial`") && p.message.contains("line 6"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_key_in_connector_is_named_by_connector_name() {
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimout = \"5s\"\n";
        let found = problems(text);
        let p = problem_for(&found, "connector.ldap.timout");
        assert!(
            p.message.contains("unknown field `timout`") && p.message.contains("line 5"),
            "{p:?}"
        );
        assert!(
            p.message.contains("`grace`"),
            "shared keys should be listed: {p:?}"
        );
    }

    #[test]
    fn unknown_connector_kind_and_wrong_types_are_refused() {
        let text = "[[connector]]\nname = \"a\"\nkind = \"ldap\"\n[[connector]]\nname = \"b\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ndry_run = \"yes\"\n[workers]\nconcurrency = \"8\"\n";
        let found = problems(text);
        assert!(
            problem_for(&found, "connector.a.kind")
                .message
                .contains("unknown variant `ldap`"),
            "{found:?}"
        );
        assert!(
            problem_for(&found, "connector.b.dry_run")
                .message
                .contains("invalid type"),
            "{found:?}"
        );
        assert!(
            problem_for(&found, "workers.concurrency")
                .message
                .contains("line 10"),
            "{found:?}"
        );
    }

    #[test]
    fn missing_secret_file_is_named_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{FEED_HEAD}url = \"https://hr.example.org/feed.csv\"\nauth = {{ kind = \"bearer\", token_file = \"feed-token\" }}\n"
        );
        let err = parse_with(&text, dir.path(), &[]).unwrap_err();
        let p = problem_for(&err.problems, "feed.auth.token_file");
        let expected = format!(
            "cannot read {}: No such file or directory",
            dir.path().join("feed-token").display()
        );
        assert_eq!(p.message, expected);
    }

    #[test]
    fn world_readable_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("token"), "s3cr3t-token\n", 0o644);
        let text = format!(
            "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
        );
        let err = parse_with(&text, dir.path(), &[]).unwrap_err();
        let p = problem_for(&err.problems, "feed.auth.token_file");
        assert!(p.message.ends_with("is world-readable; chmod 600"), "{p:?}");
        assert!(!err.to_string().contains("s3cr3t"));
    }

    #[test]
    fn secret_file_is_read_from_the_credentials_directory_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        write_file(&creds.path().join("token"), "s3cr3t-token\n", 0o600);
        let text = format!(
            "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
        );
        let creds_dir = creds.path().to_str().unwrap();
        let config =
            parse_with(&text, dir.path(), &[("CREDENTIALS_DIRECTORY", creds_dir)]).unwrap();
        let Some(FeedSource::Http {
            auth: Some(HttpAuth::Bearer { token }),
            ..
        }) = config.feed.map(|f| f.source)
        else {
            panic!("expected an http feed with bearer auth");
        };
        assert_eq!(token.expose(), "s3cr3t-token");
    }

    #[test]
    fn empty_secret_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("token"), "\n", 0o600);
        let text = format!(
            "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"bearer\", token_file = \"token\" }}\n"
        );
        let err = parse_with(&text, dir.path(), &[]).unwrap_err();
        assert!(
            problem_for(&err.problems, "feed.auth.token_file")
                .message
                .ends_with("is empty")
        );
    }

    #[test]
    fn secret_from_env_is_resolved_and_a_missing_variable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\nauth = {{ kind = \"basic\", username = \"svc\", password_env = \"FEED_PASSWORD\" }}\n"
        );
        let config = parse_with(&text, dir.path(), &[("FEED_PASSWORD", "pa55word")]).unwrap();
        let Some(FeedSource::Http {
            auth: Some(HttpAuth::Basic { username, password }),
            ..
        }) = config.feed.map(|f| f.source)
        else {
            panic!("expected an http feed with basic auth");
        };
        assert_eq!((username.as_str(), password.expose()), ("svc", "pa55word"));

        let err = parse_with(&text, dir.path(), &[]).unwrap_err();
        assert_eq!(
            problem_for(&err.problems, "feed.auth.password_env").message,
            "environment variable FEED_PASSWORD is not set"
        );
        let err = parse_with(&text, dir.path(), &[("FEED_PASSWORD", "")]).unwrap_err();
        assert!(
            problem_for(&err.problems, "feed.auth.password_env")
                .message
                .ends_with("is empty")
        );
    }

    #[test]
    fn secret_needs_exactly_one_source() {
        let both = format!(
            "{FEED_HEAD}url = \"https://h.example.org/f\"\nauth = {{ kind = \"bearer\", token_file = \"/t\", token_env = \"T\" }}\n"
        );
        assert!(
            problem_for(&problems(&both), "feed.auth.token_file")
                .message
                .contains("not both")
        );
        let neither = format!(
            "{FEED_HEAD}url = \"https://h.example.org/f\"\nauth = {{ kind = \"bearer\" }}\n"
        );
        assert!(
            problem_for(&problems(&neither), "feed.auth.token_file")
                .message
                .starts_with("missing")
        );
    }

    #[test]
    fn bad_duration_names_the_key_and_shows_the_value() {
        let found = problems(
            "[[connector]]\nname = \"ldap_cleanup\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimeout = \"5 minutes\"\n",
        );
        assert_eq!(
            problem_for(&found, "connector.ldap_cleanup.timeout").message,
            "invalid duration \"5 minutes\": expected a number and a unit (ms, s, m, h, d), e.g. \"30s\""
        );
    }

    #[test]
    fn parse_duration_reads_every_unit_and_refuses_the_rest() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_duration("14d"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "30", "s", "1.5h", "-1s", " 30s", "30 s", "3w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(
            parse_duration("99999999999999999999d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn five_field_cron_asks_for_six_fields_seconds_first() {
        let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"*/5 * * * *\"\n";
        let p = problems(text);
        let message = &problem_for(&p, "feed.schedule").message;
        assert!(
            message.contains("six fields, seconds first") && message.contains("\"0 */5 * * * *\""),
            "{message}"
        );
    }

    #[test]
    fn garbage_cron_is_refused_by_the_scheduler_parser() {
        let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"0 */5 * * * banana\"\n";
        let p = problems(text);
        assert!(
            problem_for(&p, "feed.schedule")
                .message
                .starts_with("invalid cron expression"),
            "{p:?}"
        );
        assert!(validate_cron("0 0 25 * * *").is_err());
        assert!(validate_cron(EXAMPLE_SCHEDULE).is_ok());
    }

    #[test]
    fn bad_timezone_is_named() {
        let text = format!("{FEED_HEAD}path = \"f.csv\"\ntimezone = \"Europe/Amsterdm\"\n");
        let p = problems(&text);
        assert!(
            problem_for(&p, "feed.timezone")
                .message
                .contains("\"Europe/Amsterdm\""),
            "{p:?}"
        );
    }

    #[test]
    fn json_feed_maps_fields_by_pointer_and_refuses_csv_keys() {
        let text = "[feed]\nkind = \"json\"\npath = \"f.json\"\nschedule = \"0 0 * * * *\"\n\
                    records = \"/employees\"\ncursor_param = \"since\"\n\
                    [feed.fields]\nemployee_id = \"/employeeNumber\"\nemail = \"/workEmail\"\nupn = \"\"\n\
                    [feed.attributes]\ncompany = \"/company\"\n";
        let feed = parse(text).unwrap().feed.unwrap();
        let FeedFormat::Json {
            records,
            fields,
            cursor_param,
        } = &feed.format
        else {
            panic!("expected a JSON feed");
        };
        assert_eq!(records, "/employees");
        assert_eq!(cursor_param.as_deref(), Some("since"));
        assert_eq!(fields.employee_id, "/employeeNumber");
        assert_eq!(fields.status, "/status");
        assert_eq!(fields.upn, None);
        assert_eq!(
            fields.attributes.get("company").map(String::as_str),
            Some("/company")
        );

        let p = problems(
            "[feed]\nkind = \"json\"\npath = \"f.json\"\nschedule = \"0 0 * * * *\"\n[feed.columns]\nemail = \"Email\"\n[feed.fields]\nstatus = \"no-slash\"\n",
        );
        assert!(
            problem_for(&p, "feed.columns")
                .message
                .contains("[feed.fields]")
        );
        assert!(problem_for(&p, "feed.fields").message.contains("status"));
        let p = problems(&format!("{FEED_HEAD}path = \"f.csv\"\nrecords = \"/x\"\n"));
        assert!(problem_for(&p, "feed.records").message.contains("json"));
    }

    #[test]
    fn columns_can_be_switched_off_but_required_ones_cannot() {
        let text = format!(
            "{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nupn = \"\"\nemail = \"Work Email\"\n"
        );
        let feed = parse(&text).unwrap().feed.unwrap();
        assert_eq!(feed.columns.upn, None);
        assert_eq!(feed.columns.email.as_deref(), Some("Work Email"));
        let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.columns]\nstatus = \"\"\n");
        assert!(
            problem_for(&problems(&text), "feed.columns.status")
                .message
                .contains("required")
        );
    }

    #[test]
    fn status_values_must_not_overlap_or_be_empty() {
        let text = format!(
            "{FEED_HEAD}path = \"f.csv\"\n[feed.status]\nterminated = [\"Terminated\", \"Left\"]\nactive = [\"left\"]\n"
        );
        assert!(
            problem_for(&problems(&text), "feed.status.active")
                .message
                .contains("\"left\"")
        );
        let text = format!("{FEED_HEAD}path = \"f.csv\"\n[feed.status]\nterminated = []\n");
        assert!(
            problem_for(&problems(&text), "feed.status.terminated")
                .message
                .contains("at least one")
        );
    }

    #[test]
    fn feed_url_must_be_http_and_carry_no_credentials() {
        let ftp = format!("{FEED_HEAD}url = \"ftp://hr.example.org/f.csv\"\n");
        assert!(
            problem_for(&problems(&ftp), "feed.url")
                .message
                .contains("http:// or https://")
        );
        let creds = format!("{FEED_HEAD}url = \"https://u:hunter2@hr.example.org/f.csv\"\n");
        let err = parse(&creds).unwrap_err();
        assert!(
            problem_for(&err.problems, "feed.url")
                .message
                .contains("credentials")
        );
        assert!(!err.to_string().contains("hunter2"));
        let both = format!("{FEED_HEAD}url = \"https://hr.example.org/f.csv\"\npath = \"f.csv\"\n");
        assert!(
            problem_for(&problems(&both), "feed")
                .message
                .contains("not both")
        );
    }

    #[test]
    fn duplicate_connector_names_are_refused() {
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n\n[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
        let p = problems(text);
        assert!(
            problem_for(&p, "connector[1].name")
                .message
                .contains("duplicate name \"ldap\""),
            "{p:?}"
        );
    }

    #[test]
    fn invalid_or_missing_connector_name_uses_the_position() {
        let text = "[[connector]]\nname = \"LDAP\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[[connector]]\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
        let p = problems(text);
        assert!(
            problem_for(&p, "connector[0].name")
                .message
                .contains("invalid name \"LDAP\"")
        );
        assert!(
            problem_for(&p, "connector[1].name")
                .message
                .starts_with("missing")
        );
    }

    #[test]
    fn account_template_with_unknown_field_is_refused() {
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"{mail}\"\n";
        let p = problems(text);
        assert!(
            problem_for(&p, "connector.ldap.account")
                .message
                .contains("unknown field {mail}"),
            "{p:?}"
        );
        let constant = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"admin\"\n";
        assert!(
            problem_for(&problems(constant), "connector.ldap.account")
                .message
                .contains("no person field")
        );
    }

    #[test]
    fn exec_args_may_use_account_but_the_account_template_may_not() {
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\nargs = [\"--user\", \"{account}\", \"{employee_id}\"]\n";
        let config = parse(text).unwrap();
        let ConnectorKind::Exec(exec) = &config.connectors[0].kind else {
            panic!("expected an exec connector");
        };
        assert_eq!(exec.args[1].source(), "{account}");
        let text = "[[connector]]\nname = \"ldap\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\naccount = \"{account}\"\nargs = [\"{nope}\"]\n";
        let p = problems(text);
        problem_for(&p, "connector.ldap.account");
        problem_for(&p, "connector.ldap.args[0]");
    }

    #[test]
    fn exec_program_must_exist_and_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("not-exec"), "#!/bin/sh\n", 0o644);
        let text = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"missing.sh\"\n[[connector]]\nname = \"b\"\nkind = \"exec\"\nprogram = \"not-exec\"\n";
        let err = parse_with(text, dir.path(), &[]).unwrap_err();
        let missing = problem_for(&err.problems, "connector.a.program");
        assert!(
            missing
                .message
                .contains("missing.sh: No such file or directory"),
            "{missing:?}"
        );
        let not_exec = problem_for(&err.problems, "connector.b.program");
        assert!(
            not_exec.message.contains("is not executable"),
            "{not_exec:?}"
        );
    }

    #[test]
    fn exit_code_lists_refuse_zero_and_overlap() {
        let text = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\nexit_already_absent = [0, 3]\nexit_permanent = [3, 300]\n";
        let p = problems(text);
        assert!(
            p.iter().any(|p| p.key == "connector.a.exit_already_absent"
                && p.message.contains("0 means success"))
        );
        assert!(
            p.iter().any(
                |p| p.key == "connector.a.exit_permanent" && p.message.contains("out of range")
            )
        );
        assert!(
            p.iter().any(|p| p.key == "connector.a.exit_permanent"
                && p.message.contains("exit code 3 is also"))
        );
    }

    #[test]
    fn connector_retry_overrides_the_global_defaults() {
        let text = "[retry]\ninitial = \"1m\"\nfactor = 3\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[connector.retry]\nmax_attempts = 3\n";
        let config = parse(text).unwrap();
        let retry = config.connectors[0].retry;
        assert_eq!(retry.initial, Duration::from_secs(60));
        assert_eq!(retry.factor, 3.0);
        assert_eq!(retry.max_attempts, 3);
        assert_eq!(config.retry.max_attempts, 12);
        let bad = "[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n[connector.retry]\ninitial = \"7h\"\nfactor = 0.5\n";
        let p = problems(bad);
        assert!(
            problem_for(&p, "connector.a.retry.initial")
                .message
                .contains("longer than max")
        );
        problem_for(&p, "connector.a.retry.factor");
    }

    #[test]
    fn global_dry_run_makes_every_connector_dry() {
        let text = "[safety]\ndry_run = true\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\n";
        let config = parse(text).unwrap();
        assert!(config.connectors[0].dry_run);
        assert!(config.warnings.iter().any(|w| w.contains("safety.dry_run")));
    }

    #[test]
    fn worker_limits_are_enforced() {
        let p = problems("[workers]\nconcurrency = 0\nlease = \"5s\"\nidle_poll = \"500ms\"\n");
        assert!(
            problem_for(&p, "workers.concurrency")
                .message
                .contains("1 to 256")
        );
        assert!(
            problem_for(&p, "workers.lease")
                .message
                .contains("at least 10s")
        );
        assert!(
            problem_for(&p, "workers.idle_poll")
                .message
                .contains("at least 1s")
        );
    }

    #[test]
    fn several_problems_are_reported_together_one_line_each() {
        let text = "bogus = 1\n[workers]\nlease = \"soon\"\n[retry]\nmax_attempts = 0\n[log]\nformat = \"xml\"\n[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = \"* * * * *\"\ntimezone = \"Mars/Olympus\"\n";
        let err = parse(text).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        for key in [
            "bogus",
            "workers.lease",
            "retry.max_attempts",
            "log.format",
            "feed.schedule",
            "feed.timezone",
        ] {
            assert!(keys.contains(&key), "{key} missing from {keys:?}");
        }
        let shown = err.to_string();
        assert_eq!(shown.lines().count(), err.problems.len());
        assert!(shown.lines().any(|l| {
            l.starts_with("/etc/offboard/offboard.toml: workers.lease: invalid duration")
        }));
    }

    #[test]
    fn every_bad_key_in_a_table_is_reported_and_the_rest_still_validated() {
        let text = "[feed]\nkind = \"csv\"\npath = \"f.csv\"\nschedule = 5\nfoo = 1\nbar = 2\ntimezone = \"Nowhere/X\"\n";
        let found = problems(text);
        for key in ["feed.schedule", "feed.foo", "feed.bar", "feed.timezone"] {
            problem_for(&found, key);
        }
        // The dropped schedule is reported once, as a wrong type, not again as missing.
        let schedule: Vec<&Problem> = found.iter().filter(|p| p.key == "feed.schedule").collect();
        assert_eq!(schedule.len(), 1, "{schedule:?}");
        assert!(schedule[0].message.contains("invalid type"), "{schedule:?}");
    }

    #[test]
    fn string_values_in_type_errors_are_not_echoed() {
        let text = "[feed]\nkind = \"csv\"\nurl = \"https://h.example.org/f\"\nschedule = \"0 0 * * * *\"\nauth = \"tok-\\\"123\"\n";
        let err = parse(text).unwrap_err();
        let p = problem_for(&err.problems, "feed.auth");
        assert!(
            p.message
                .starts_with("invalid type: string, expected a table"),
            "{p:?}"
        );
        assert!(!err.to_string().contains("tok-"), "{err}");
        assert_eq!(
            redact_strings(r#"a string "x\"y" b string "z" c"#),
            "a string b string c"
        );
    }

    #[test]
    fn exec_timeout_not_shorter_than_the_lease_is_a_warning() {
        let text = "[workers]\nlease = \"1m\"\n[[connector]]\nname = \"a\"\nkind = \"exec\"\nprogram = \"/bin/sh\"\ntimeout = \"2m\"\n";
        let config = parse(text).unwrap();
        let warned = config
            .warnings
            .iter()
            .any(|w| w.contains("connector.a.timeout (2m)") && w.contains("workers.lease (1m)"));
        assert!(warned, "{:?}", config.warnings);
    }

    #[test]
    fn connector_must_be_an_array_of_tables() {
        let found = problems("[connector]\nname = \"a\"\n");
        assert!(
            problem_for(&found, "connector")
                .message
                .contains("[[connector]]")
        );
    }

    #[test]
    fn toml_syntax_error_reports_the_line() {
        let err = parse("[database]\nurl = \n").unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].message.contains("line 2"), "{err}");
    }

    #[test]
    fn secret_debug_and_display_are_redacted() {
        let secret = Secret::new("hunter2".to_string());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(secret.to_string(), "<redacted>");
        let auth = HttpAuth::Basic {
            username: "svc".into(),
            password: secret.clone(),
        };
        let debug = format!("{auth:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("svc"),
            "{debug}"
        );
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn load_reports_an_unreadable_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Config::load(&dir.path().join("absent.toml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read the config file: No such file or directory"),
            "{err}"
        );
    }

    const PANOPTO: &str = "[[connector]]\nname = \"panopto\"\nkind = \"panopto\"\naccount = \"MyIdP\\\\{username}\"\nhost = \"Demo.Hosted.Panopto.com\"\napi_user_key = \"MyIdP\\\\svc-offboard\"\n";

    #[test]
    fn panopto_connector_reads_its_keys_and_derives_the_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{PANOPTO}application_key_env = \"PANOPTO_KEY\"\nfallback_prefixes = [\"unified\"]\ntimeout = \"10s\"\n"
        );
        let key = "8D2B5E4A-1C3F-4E5D-9A7B-0C1D2E3F4A5B";
        let config = parse_with(&text, dir.path(), &[("PANOPTO_KEY", key)]).unwrap();
        let c = &config.connectors[0];
        assert_eq!(c.kind.as_str(), "panopto");
        assert_eq!(c.account.source(), "MyIdP\\{username}");
        let ConnectorKind::Panopto(p) = &c.kind else {
            panic!("not panopto")
        };
        assert_eq!(
            p.endpoint,
            "https://Demo.Hosted.Panopto.com/Panopto/PublicAPI/4.6/UserManagement.svc"
        );
        assert_eq!(p.api_user_key, "MyIdP\\svc-offboard");
        assert!(matches!(&p.credential, PanoptoCredential::ApplicationKey(k) if k.expose() == key));
        assert_eq!(p.fallback_prefixes, vec!["unified".to_string()]);
        assert_eq!(p.timeout, Duration::from_secs(10));
        assert!(
            !format!("{p:?}").contains("8D2B5E4A"),
            "the key is redacted in Debug"
        );
        assert!(
            !config
                .warnings
                .iter()
                .any(|w| w.contains("connector.panopto")
                    || w.contains("application_key")
                    || w.contains("api_user_key")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn panopto_needs_exactly_one_credential_kind() {
        let dir = tempfile::tempdir().unwrap();
        let vars = [
            ("PW", "pw"),
            ("KEY", "8d2b5e4a-1c3f-4e5d-9a7b-0c1d2e3f4a5b"),
        ];
        let both = format!("{PANOPTO}password_env = \"PW\"\napplication_key_env = \"KEY\"\n");
        let err = parse_with(&both, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .contains("not both")
        );
        let err = parse_with(PANOPTO, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .starts_with("missing")
        );
        let both_of_one = format!("{PANOPTO}password_env = \"PW\"\npassword_file = \"pw\"\n");
        let err = parse_with(&both_of_one, dir.path(), &vars).unwrap_err();
        assert!(
            problem_for(&err.problems, "connector.panopto.password_file")
                .message
                .contains("not both")
        );
        let password = format!("{PANOPTO}password_env = \"PW\"\n");
        let config = parse_with(&password, dir.path(), &vars).unwrap();
        let ConnectorKind::Panopto(p) = &config.connectors[0].kind else {
            panic!("not panopto")
        };
        assert!(matches!(&p.credential, PanoptoCredential::Password(s) if s.expose() == "pw"));
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("identity-provider prefix")),
            "a password for an IdP key is worth a warning: {:?}",
            config.warnings
        );
        let control = parse_with(&password, dir.path(), &[("PW", "a\u{1}b")]).unwrap_err();
        let problem = problem_for(&control.problems, "connector.panopto.password");
        assert!(problem.message.contains("control character"), "{problem:?}");
        assert!(!problem.message.contains("a\u{1}b"));
    }

    #[test]
    fn panopto_host_endpoint_and_prefixes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let vars = [("PW", "pw")];
        let with = |extra: &str| {
            format!("{PANOPTO}password_env = \"PW\"\n{extra}").replace(
                "host = \"Demo.Hosted.Panopto.com\"\n",
                if extra.contains("host =") {
                    ""
                } else {
                    "host = \"demo.hosted.panopto.com\"\n"
                },
            )
        };
        for (extra, key, needle) in [
            (
                "host = \"https://demo.hosted.panopto.com\"\n",
                "host",
                "bare host name",
            ),
            (
                "host = \"demo..panopto.com\"\n",
                "host",
                "not a valid DNS name",
            ),
            (
                "endpoint = \"http://panopto.example.org/x.svc\"\n",
                "endpoint",
                "must use https",
            ),
            (
                "endpoint = \"https://u:p@panopto.example.org/x.svc\"\n",
                "endpoint",
                "user:password",
            ),
            (
                "endpoint = \"ftp://panopto.example.org/x.svc\"\n",
                "endpoint",
                "https://",
            ),
            (
                "fallback_prefixes = [\"unified\\\\\"]\n",
                "fallback_prefixes[0]",
                "backslash",
            ),
            (
                "fallback_prefixes = [\"unified\", \"Unified\"]\n",
                "fallback_prefixes[1]",
                "twice",
            ),
            ("timeout = \"0s\"\n", "timeout", "longer than 0s"),
            ("api_token = \"x\"\n", "api_token", "unknown field"),
        ] {
            let err = parse_with(&with(extra), dir.path(), &vars).unwrap_err();
            let problem = problem_for(&err.problems, &format!("connector.panopto.{key}"));
            assert!(problem.message.contains(needle), "{extra}: {problem:?}");
        }
        let local = parse_with(
            &with(
                "endpoint = \"http://127.0.0.1:8080/Panopto/PublicAPI/4.6/UserManagement.svc\"\n",
            ),
            dir.path(),
            &vars,
        )
        .unwrap();
        let ConnectorKind::Panopto(p) = &local.connectors[0].kind else {
            panic!("not panopto")
        };
        assert_eq!(p.host, "demo.hosted.panopto.com");
        assert!(p.endpoint.starts_with("http://127.0.0.1:8080/"));
        let no_host =
            "[[connector]]\nname = \"panopto\"\nkind = \"panopto\"\npassword_env = \"PW\"\n";
        let err = parse_with(no_host, dir.path(), &vars).unwrap_err();
        for key in ["host", "api_user_key"] {
            assert!(
                problem_for(&err.problems, &format!("connector.panopto.{key}"))
                    .message
                    .starts_with("missing")
            );
        }
    }

    #[test]
    fn a_slow_panopto_timeout_against_the_lease_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[workers]\nlease = \"1m\"\n{PANOPTO}password_env = \"PW\"\ntimeout = \"20s\"\nfallback_prefixes = [\"unified\"]\n"
        );
        let config = parse_with(&text, dir.path(), &[("PW", "pw")]).unwrap();
        assert!(
            config
                .warnings
                .iter()
                .any(|w| w.contains("connector.panopto.timeout (20s) times the 3 calls")),
            "{:?}",
            config.warnings
        );
    }

    #[test]
    fn example_panopto_block_parses_once_uncommented() {
        let example = include_str!("../config/offboard.example.toml");
        let start = example
            .find("# [[connector]]\n# name = \"panopto\"")
            .expect("the example has a commented panopto block");
        let mut text = String::new();
        for line in example[start..].lines() {
            // The block ends where the next commented section begins.
            if line.starts_with("# ---") {
                break;
            }
            let line = line.trim_start_matches("# ");
            let is_key = line.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            });
            // One credential source only: the environment variable holding the application key.
            let other_source = ["password_file", "password_env", "application_key_file"]
                .iter()
                .any(|k| line.starts_with(&format!("{k} =")));
            if line == "[[connector]]" || (is_key && !other_source) {
                text.push_str(line);
                text.push('\n');
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let config = parse_with(
            &text,
            dir.path(),
            &[(
                "OFFBOARD_PANOPTO_APPLICATION_KEY",
                "8d2b5e4a-1c3f-4e5d-9a7b-0c1d2e3f4a5b",
            )],
        )
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let c = config.connector("panopto").unwrap();
        assert_eq!(c.account.source(), "MyIdP\\{username}");
        let ConnectorKind::Panopto(p) = &c.kind else {
            panic!("not panopto")
        };
        assert_eq!(p.api_user_key, "MyIdP\\svc-offboard");
        assert_eq!(p.fallback_prefixes, vec!["unified".to_string()]);
        assert!(matches!(p.credential, PanoptoCredential::ApplicationKey(_)));
    }
}
