//! The raw layer: what serde reads, table by table, with `deny_unknown_fields`. Every field is optional so that
//! defaults and "missing" messages are ours. A connector's kind-specific keys are not here: each kind reads its
//! own (`crate::connectors::<kind>::config`).

use std::collections::BTreeMap;

use serde::Deserialize;

/// Top-level tables, in the order they are documented.
pub(super) const TOP_LEVEL_KEYS: &[&str] = &[
    "database",
    "feed",
    "workers",
    "retry",
    "safety",
    "log",
    "http",
    "report",
    "checkpoints",
    "notify",
    "console",
    "connector",
];

/// Keys every `[[connector]]` accepts whatever its kind (besides `kind` itself, which picks the variant).
pub(super) const CONNECTOR_COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "account",
    "grace",
    "dry_run",
    "concurrency",
    "quarantine_after",
    "rate",
    "retry",
    "never_remove",
    "scope",
    "stage",
    "inactive",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawDatabase {
    pub(super) url: Option<String>,
    pub(super) url_env: Option<String>,
    pub(super) max_connections: Option<i64>,
    pub(super) busy_timeout: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) sslmode: Option<String>,
    pub(super) ssl_root_cert: Option<String>,
    pub(super) connect_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawFeed {
    pub(super) kind: Option<String>,
    pub(super) path: Option<String>,
    pub(super) url: Option<String>,
    pub(super) auth: Option<RawAuth>,
    pub(super) schedule: Option<String>,
    pub(super) timezone: Option<String>,
    pub(super) timeout: Option<String>,
    pub(super) columns: Option<RawColumns>,
    pub(super) status: Option<RawStatus>,
    pub(super) records: Option<String>,
    pub(super) fields: Option<RawColumns>,
    pub(super) attributes: Option<BTreeMap<String, String>>,
    pub(super) cursor_param: Option<String>,
    pub(super) alert_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawAuth {
    pub(super) kind: Option<String>,
    pub(super) token_file: Option<String>,
    pub(super) token_env: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawColumns {
    pub(super) employee_id: Option<String>,
    pub(super) email: Option<String>,
    pub(super) username: Option<String>,
    pub(super) upn: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) effective_date: Option<String>,
    pub(super) status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawStatus {
    pub(super) terminated: Option<Vec<String>>,
    pub(super) active: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawWorkers {
    pub(super) concurrency: Option<i64>,
    pub(super) lease: Option<String>,
    pub(super) idle_poll: Option<String>,
    pub(super) shutdown_grace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawRetry {
    pub(super) initial: Option<String>,
    pub(super) max: Option<String>,
    pub(super) factor: Option<f64>,
    pub(super) max_attempts: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawSafety {
    pub(super) dry_run: Option<bool>,
    pub(super) max_terminations_per_batch: Option<i64>,
    pub(super) max_terminations_percent: Option<f64>,
    pub(super) never_remove: Option<Vec<String>>,
    pub(super) legal_hold_attribute: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawHttp {
    pub(super) listen: Option<String>,
    pub(super) push_token_file: Option<String>,
    pub(super) push_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawCheckpoints {
    pub(super) signing_key_file: Option<String>,
    pub(super) signing_key_env: Option<String>,
    pub(super) file: Option<String>,
    pub(super) every_rows: Option<i64>,
    pub(super) every: Option<String>,
    pub(super) log: Option<bool>,
    pub(super) url: Option<String>,
    pub(super) url_token_file: Option<String>,
    pub(super) url_token_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawNotify {
    pub(super) name: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) url: Option<String>,
    pub(super) format: Option<String>,
    pub(super) secret_file: Option<String>,
    pub(super) secret_env: Option<String>,
    pub(super) events: Option<Vec<String>>,
    pub(super) smtp_host: Option<String>,
    pub(super) smtp_port: Option<i64>,
    pub(super) tls: Option<String>,
    pub(super) tls_ca_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) from: Option<String>,
    pub(super) to: Option<Vec<String>>,
    pub(super) to_manager: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawReport {
    pub(super) sla: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawLog {
    pub(super) format: Option<RawLogFormat>,
    pub(super) level: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawLogFormat {
    Auto,
    Json,
    Text,
}

/// The keys of a `[[connector]]` shared by every kind (`kind` itself is read separately).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConnectorCommon {
    /// Only type-checked here: the name is read from the table before deserializing, to key every problem.
    #[serde(rename = "name")]
    _name: Option<String>,
    pub(super) account: Option<String>,
    pub(super) grace: Option<String>,
    pub(super) dry_run: Option<bool>,
    pub(super) concurrency: Option<i64>,
    pub(super) quarantine_after: Option<i64>,
    pub(super) rate: Option<String>,
    pub(super) retry: Option<RawRetry>,
    pub(super) never_remove: Option<Vec<String>>,
    pub(super) scope: Option<BTreeMap<String, Vec<String>>>,
    pub(super) stage: Option<Vec<RawStage>>,
    pub(super) inactive: Option<RawInactive>,
}

/// `[connector.inactive]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawInactive {
    pub(super) after: Option<String>,
    pub(super) path: Option<String>,
    pub(super) account_column: Option<String>,
    pub(super) last_login_column: Option<String>,
}

/// One `[[connector.stage]]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawStage {
    pub(super) action: Option<String>,
    pub(super) after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
pub(super) struct RawConsole {
    pub(super) listen: Option<String>,
    pub(super) auth: Option<String>,
    pub(super) user_header: Option<String>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) approvers: Option<Vec<String>>,
    pub(super) operators: Option<Vec<String>>,
    pub(super) viewers: Option<Vec<String>>,
    pub(super) tokens_file: Option<String>,
    pub(super) four_eyes: Option<bool>,
    pub(super) session_key_file: Option<String>,
    pub(super) session_key_env: Option<String>,
    pub(super) session_hours: Option<i64>,
}
