//! Configuration: reads `offboard.toml` into validated, typed settings, resolving secrets, paths, durations and cron.
//!
//! Parsing happens in two layers. The raw layer (`raw.rs`) is plain serde structs with `deny_unknown_fields`,
//! deserialized section by section from toml's spanned document so that every type error and unknown key is
//! reported with its dotted key and its line (`diagnostics.rs`). The validated layer ([`Config`] and friends) is
//! built from the raw layer while collecting every problem, so `check-config` can list them all at once.
//!
//! - `mod.rs`: [`Config`], the global tables (`[workers]`, `[retry]`, `[safety]`, `[http]`, `[log]`, `[report]`)
//!   and the order in which the file is read.
//! - `database.rs`: `[database]` (SQLite or PostgreSQL). `feed.rs`: `[feed]`. `connector.rs`: the keys every `[[connector]]` has, whatever its kind.
//! - `values.rs`: durations, rates, cron, bounded integers, service URLs. `secrets.rs`: [`Secret`], secrets from
//!   files and environment variables, file permission checks.
//!
//! This module knows no connector kind: a connector's kind-specific keys are read and validated by the kind
//! registered for its `kind` value ([`crate::connectors::ConnectorKind`]; `connectors/<kind>/config.rs`), with
//! the shared readers of `values.rs` and `secrets.rs`.

mod connector;
mod console;
mod database;
mod diagnostics;
mod feed;
mod raw;
mod secrets;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod values;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use connector::{
    ConnectorConfig, DEFAULT_ACCOUNT_TEMPLATE, DEFAULT_CONNECTOR_CONCURRENCY, DESTRUCTIVE_ACTIONS,
    InactiveConfig, Scope, Stage, hold_stages,
};
pub use console::{ConsoleAuth, ConsoleConfig, ConsoleUser, Role};
pub use database::{Backend, DatabaseConfig, PostgresConfig};
pub(crate) use diagnostics::Validator;
pub use diagnostics::{ConfigError, Problem};
pub use feed::{DEFAULT_FEED_TIMEOUT, FeedConfig, FeedFormat, FeedSource, HttpAuth};
pub use secrets::Secret;
pub(crate) use secrets::check_executable;
pub(crate) use values::format_duration;
pub use values::{
    DEFAULT_VENDOR_TIMEOUT, EXAMPLE_SCHEDULE, Rate, parse_duration, parse_rate, validate_cron,
};

use crate::domain::Pattern;
use diagnostics::{backticked, io_message, line_col};
use raw::{
    RawCheckpoints, RawConsole, RawDatabase, RawFeed, RawHttp, RawLog, RawLogFormat, RawNotify,
    RawReport, RawRetry, RawSafety, RawWorkers, TOP_LEVEL_KEYS,
};
use secrets::{EnvLookup, is_world_writable};

/// Default `database.url`: a file next to the config file.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://offboard.db";

/// Default `database.max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4;

/// Default `database.busy_timeout`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound for every concurrency setting.
const MAX_CONCURRENCY: i64 = 256;

/// Shortest accepted `workers.lease`.
const MIN_LEASE: Duration = Duration::from_secs(10);

/// Shortest accepted `workers.idle_poll`.
const MIN_IDLE_POLL: Duration = Duration::from_secs(1);

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
    /// Signed checkpoints of the audit chain, when `[checkpoints]` is configured.
    pub checkpoints: Option<CheckpointsConfig>,
    /// Where notifications go (`[[notify]]`).
    pub notify: Vec<NotifyChannel>,
    /// The web console, when `[console]` is configured.
    pub console: Option<ConsoleConfig>,
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
    /// The person attribute (from the feed) that places a legal hold: a person whose value is set
    /// (anything but empty, "false", "no", "0", "off") gets a hold; a feed hold ends when the value is
    /// cleared.
    pub legal_hold_attribute: Option<String>,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            max_terminations_per_batch: 50,
            max_terminations_percent: 5.0,
            never_remove: Vec::new(),
            legal_hold_attribute: None,
        }
    }
}

impl SafetyConfig {
    /// Whether a person's `legal_hold_attribute` value places a hold.
    pub fn holds(value: &str) -> bool {
        let v = value.trim().to_ascii_lowercase();
        !matches!(v.as_str(), "" | "false" | "no" | "0" | "off" | "n")
    }

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

/// `[checkpoints]`: the audit chain's head, signed and written outside the database (docs/evidence.md).
#[derive(Debug, Clone)]
pub struct CheckpointsConfig {
    /// The Ed25519 signing key (`offboard keygen`), from `signing_key_file` or `signing_key_env`.
    pub signing_key: Secret,
    /// The append-only file each checkpoint is appended to, one JSON line each.
    pub file: Option<PathBuf>,
    /// Sign after this many new audit rows.
    pub every_rows: u64,
    /// Sign at least this often when rows were added.
    pub every: Duration,
    /// Also log each checkpoint at INFO (the journal under systemd).
    pub log: bool,
    /// POST each checkpoint here (through a durable outbox).
    pub url: Option<String>,
    /// The bearer token for `url`.
    pub url_token: Option<Secret>,
}

/// The events a `[[notify]]` channel can receive.
pub const NOTIFY_EVENTS: &[&str] = &[
    "batch_held",
    "removal_failed",
    "connector_quarantined",
    "connector_paused",
    "connector_resumed",
    "feed_failing",
    "sla_warning",
    "sla_breach",
];

/// The events about one leaver, the only ones a channel to managers (`to_manager`) receives.
pub const LEAVER_EVENTS: &[&str] = &["removal_failed", "sla_warning", "sla_breach"];

/// How a webhook's body is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyFormat {
    /// offboard's own JSON (`offboard.notification.v1`).
    Json,
    /// `{"text": ...}`, what Slack and Teams incoming webhooks take.
    Text,
}

/// One `[[notify]]` channel.
#[derive(Debug, Clone)]
pub struct NotifyChannel {
    /// Its name (in logs and the outbox).
    pub name: String,
    /// The events it receives.
    pub events: Vec<String>,
    /// Where the messages go.
    pub target: NotifyTarget,
}

/// A channel's destination.
#[derive(Debug, Clone)]
pub enum NotifyTarget {
    /// An HTTP POST per event.
    Webhook {
        /// Where to POST.
        url: String,
        /// The body's shape.
        format: NotifyFormat,
        /// The HMAC-SHA256 key of the `X-Offboard-Signature` header, when set.
        secret: Option<Secret>,
    },
    /// An email per event over SMTP.
    Email {
        /// The SMTP server.
        host: String,
        /// Its port.
        port: u16,
        /// How the connection is protected.
        tls: SmtpTls,
        /// An extra root certificate (PEM) the server's certificate may chain to (a company CA).
        tls_ca: Option<Vec<u8>>,
        /// The SMTP login, when the server wants one.
        username: Option<String>,
        /// Its password.
        password: Option<Secret>,
        /// The sender address.
        from: String,
        /// The recipients.
        to: Vec<String>,
        /// Instead of `to`: the person attribute that holds the leaver's manager's address; each
        /// event about one leaver goes to that address alone.
        to_manager: Option<String>,
    },
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain, then STARTTLS (required): port 587.
    StartTls,
    /// TLS from the start: port 465.
    Tls,
    /// No TLS (a relay on the same host only): port 25.
    None,
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

/// Reads and validates config text as if from `path`, looking environment variables up with `env`.
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

    let mut cx = Validator::new(text, dir, env);

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
            cx.warn(
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
        cx.warn(
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

    let checkpoints = sections.remove("checkpoints").and_then(|value| {
        let raw: RawCheckpoints = cx.deserialize("checkpoints", value)?;
        cx.checkpoints(raw)
    });

    let notify = match sections.remove("notify") {
        Some(value) => cx
            .deserialize::<Vec<RawNotify>>("notify", value)
            .map(|raws| {
                raws.into_iter()
                    .enumerate()
                    .filter_map(|(i, raw)| cx.notify_channel(i, raw))
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };

    let console = sections.remove("console").and_then(|value| {
        let raw: RawConsole = cx.deserialize("console", value)?;
        cx.console(raw)
    });

    let connectors = match sections.remove("connector") {
        Some(value) => cx.connectors(value, &retry, &safety, &workers),
        None => Vec::new(),
    };
    if connectors.is_empty() && cx.problems.is_empty() {
        cx.warn(
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
        checkpoints,
        notify,
        console,
        connectors,
        warnings: cx.warnings,
    })
}

impl Validator<'_> {
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
            legal_hold_attribute: raw
                .legal_hold_attribute
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty()),
        }
    }

    fn notify_channel(&mut self, i: usize, mut raw: RawNotify) -> Option<NotifyChannel> {
        let prefix = format!("notify[{i}]");
        let name = raw
            .name
            .take()
            .unwrap_or_else(|| format!("notify-{}", i + 1));
        let email = match raw.kind.as_deref() {
            Some("webhook") => false,
            Some("email") => true,
            Some(other) => {
                self.problem(
                    &format!("{prefix}.kind"),
                    format!("unknown kind {other:?}: expected \"webhook\" or \"email\""),
                );
                return None;
            }
            None => {
                self.problem(
                    &format!("{prefix}.kind"),
                    "missing; set kind = \"webhook\" or kind = \"email\"",
                );
                return None;
            }
        };
        let to_manager = raw.to_manager.is_some();
        if to_manager && !email {
            self.problem(
                &format!("{prefix}.to_manager"),
                "only an email channel can write to managers",
            );
        }
        let explicit = raw.events.is_some();
        let mut events = self.notify_events(&prefix, raw.events.take());
        if to_manager {
            if !explicit {
                events.retain(|e| LEAVER_EVENTS.contains(&e.as_str()));
            }
            for e in events
                .iter()
                .filter(|e| !LEAVER_EVENTS.contains(&e.as_str()))
            {
                self.problem(
                    &format!("{prefix}.events"),
                    format!(
                        "{e:?} is not about one leaver: a channel to managers takes only {}",
                        LEAVER_EVENTS.join(", ")
                    ),
                );
            }
        }
        let target = if email {
            self.email_target(&prefix, raw)?
        } else {
            self.webhook_target(&prefix, raw)?
        };
        Some(NotifyChannel {
            name,
            events,
            target,
        })
    }

    fn webhook_target(&mut self, prefix: &str, raw: RawNotify) -> Option<NotifyTarget> {
        let url = self.service_url(&format!("{prefix}.url"), raw.url.as_deref());
        let format = match raw.format.as_deref() {
            None | Some("json") => NotifyFormat::Json,
            Some("slack" | "teams" | "text") => NotifyFormat::Text,
            Some(other) => {
                self.problem(
                    &format!("{prefix}.format"),
                    format!("unknown format {other:?}: expected \"json\", \"slack\" or \"teams\""),
                );
                NotifyFormat::Json
            }
        };
        let secret = if raw.secret_file.is_some() || raw.secret_env.is_some() {
            self.secret(prefix, "secret", raw.secret_file, raw.secret_env)
        } else {
            None
        };
        Some(NotifyTarget::Webhook {
            url: url?,
            format,
            secret,
        })
    }

    fn notify_events(&mut self, prefix: &str, raw: Option<Vec<String>>) -> Vec<String> {
        match raw {
            None => NOTIFY_EVENTS.iter().map(|e| e.to_string()).collect(),
            Some(events) => {
                for e in &events {
                    if !NOTIFY_EVENTS.contains(&e.as_str()) {
                        self.problem(
                            &format!("{prefix}.events"),
                            format!(
                                "unknown event {e:?}: expected some of {}",
                                NOTIFY_EVENTS.join(", ")
                            ),
                        );
                    }
                }
                events
            }
        }
    }

    fn email_target(&mut self, prefix: &str, raw: RawNotify) -> Option<NotifyTarget> {
        let tls = match raw.tls.as_deref() {
            None | Some("starttls") => SmtpTls::StartTls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                self.problem(
                    &format!("{prefix}.tls"),
                    format!("unknown value {other:?}: expected \"starttls\", \"tls\" or \"none\""),
                );
                SmtpTls::StartTls
            }
        };
        let default_port = match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        };
        let port = self.integer_in(
            &format!("{prefix}.smtp_port"),
            raw.smtp_port,
            default_port,
            1,
            65535,
        );
        let host = match raw.smtp_host {
            Some(h) if !h.trim().is_empty() => h.trim().to_string(),
            _ => {
                self.problem(
                    &format!("{prefix}.smtp_host"),
                    "missing; set the SMTP server's host name",
                );
                return None;
            }
        };
        if tls == SmtpTls::None && !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1") {
            self.warn(format!(
                "{prefix}.tls is \"none\" for {host}: messages and the SMTP password cross the network unencrypted"
            ));
        }
        let mut addresses_ok = true;
        let mut address = |cx: &mut Self, key: &str, value: &str| {
            if value.parse::<lettre::Address>().is_err() {
                cx.problem(
                    &format!("{prefix}.{key}"),
                    format!("{value:?} is not an email address"),
                );
                addresses_ok = false;
            }
        };
        let Some(from) = raw.from else {
            self.problem(&format!("{prefix}.from"), "missing; set the sender address");
            return None;
        };
        address(self, "from", &from);
        let to = raw.to.unwrap_or_default();
        let to_manager = raw.to_manager.map(|a| a.trim().to_string());
        match (&to_manager, to.is_empty()) {
            (None, true) => {
                self.problem(
                    &format!("{prefix}.to"),
                    "missing; list at least one recipient (or set to_manager)",
                );
                return None;
            }
            (Some(_), false) => {
                self.problem(
                    &format!("{prefix}.to_manager"),
                    "a channel to managers has no `to`: each message goes to one leaver's manager alone; make another channel for the operators",
                );
                return None;
            }
            (Some(a), true) if a.is_empty() => {
                self.problem(
                    &format!("{prefix}.to_manager"),
                    "empty; name the person attribute that holds the manager's email address",
                );
                return None;
            }
            _ => {}
        }
        for t in &to {
            address(self, "to", t);
        }
        let password = if raw.password_file.is_some() || raw.password_env.is_some() {
            Some(self.secret(prefix, "password", raw.password_file, raw.password_env)?)
        } else {
            None
        };
        let tls_ca = match raw.tls_ca_file {
            None => None,
            Some(file) => {
                let path = self.path(&file);
                match std::fs::read(&path) {
                    Ok(pem)
                        if lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok() =>
                    {
                        Some(pem)
                    }
                    Ok(_) => {
                        self.problem(
                            &format!("{prefix}.tls_ca_file"),
                            format!("{} is not a PEM certificate", path.display()),
                        );
                        None
                    }
                    Err(e) => {
                        self.problem(
                            &format!("{prefix}.tls_ca_file"),
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        };
        if !addresses_ok {
            return None;
        }
        Some(NotifyTarget::Email {
            host,
            port: u16::try_from(port).unwrap_or(587),
            tls,
            tls_ca,
            username: raw.username,
            password,
            from,
            to,
            to_manager,
        })
    }

    fn checkpoints(&mut self, raw: RawCheckpoints) -> Option<CheckpointsConfig> {
        let signing_key = self.secret(
            "checkpoints",
            "signing_key",
            raw.signing_key_file,
            raw.signing_key_env,
        );
        if let Some(key) = &signing_key
            && let Err(e) = crate::checkpoint::SigningKey::from_secret(key)
        {
            self.problem("checkpoints.signing_key_file", format!("{e:#}"));
        }
        let every_rows = self.integer_in(
            "checkpoints.every_rows",
            raw.every_rows,
            1000,
            1,
            1_000_000_000,
        );
        let every = self.duration_at_least(
            "checkpoints.every",
            raw.every.as_deref(),
            Duration::from_secs(300),
            Duration::from_secs(1),
        );
        let file = raw.file.as_deref().map(|f| self.path(f));
        let log = raw.log.unwrap_or(true);
        let url = match raw.url.as_deref() {
            Some(url) => self.service_url("checkpoints.url", Some(url)),
            None => None,
        };
        let url_token = if raw.url_token_file.is_some() || raw.url_token_env.is_some() {
            self.secret(
                "checkpoints",
                "url_token",
                raw.url_token_file,
                raw.url_token_env,
            )
        } else {
            None
        };
        if file.is_none() && !log && url.is_none() {
            self.problem(
                "checkpoints.file",
                "is missing, and so is checkpoints.url, and checkpoints.log is false: the checkpoints would go nowhere",
            );
        }
        Some(CheckpointsConfig {
            signing_key: signing_key?,
            file,
            every_rows: u64::try_from(every_rows).unwrap_or(1000),
            every,
            log,
            url,
            url_token,
        })
    }

    fn http(&mut self, raw: RawHttp) -> HttpConfig {
        let defaults = HttpConfig::default();
        let listen = match raw.listen.as_deref() {
            None => defaults.listen,
            Some(text) => {
                match text.parse::<std::net::SocketAddr>() {
                    Ok(addr) => {
                        if !addr.ip().is_loopback() {
                            self.warn(format!(
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
}

/// The path made absolute against the current directory when possible.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
