//! `[[connector]]`: the settings every connector has whatever its kind (name, account template, grace, rate,
//! retry, scope, …). The kind-specific keys are handed to the kind registered under the connector's `kind`
//! ([`crate::connectors::ConnectorKind`]), which reads and validates them itself.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::backticked;
use super::raw::{CONNECTOR_COMMON_KEYS, RawConnectorCommon, RawInactive, RawStage};
use super::values::parse_rate;
use super::{MAX_CONCURRENCY, Rate, RetryPolicy, SafetyConfig, Validator, WorkersConfig};
use crate::connectors::{ConnectorKind, RawKind};
use crate::domain::{PERSON_FIELDS, Pattern, Template};

/// Default `connector.quarantine_after`.
const DEFAULT_QUARANTINE_AFTER: i64 = 10;

/// Default `connector.concurrency`.
pub const DEFAULT_CONNECTOR_CONCURRENCY: usize = 2;

/// Default `connector.account` template.
pub const DEFAULT_ACCOUNT_TEMPLATE: &str = "{email}";

/// One `[[connector]]`: a SaaS app (or local command) whose accounts are removed.
#[derive(Debug, Clone)]
pub struct ConnectorConfig {
    /// Unique name: 1-64 characters of `[a-z0-9_-]`, starting with a letter.
    pub name: String,
    /// How the vendor's account key is built from the person, e.g. `{email}`.
    pub account: Template,
    /// Delay after the effective time before access is removed: the first stage's `after`.
    pub grace: Duration,
    /// Accounts unused for a while become removals too (`[connector.inactive]`), if set.
    pub inactive: Option<InactiveConfig>,
    /// The removal's stages, in order (never empty): without `[[connector.stage]]`, one stage with
    /// no action of its own (the connector's removal as configured) due after `grace`.
    pub stages: Vec<Stage>,
    /// Effective dry-run: the connector's own `dry_run` or `safety.dry_run`.
    pub dry_run: bool,
    /// Removals of this connector running at the same time (1..=256).
    pub concurrency: usize,
    /// Consecutive vendor failures (connection, timeout, 5xx; not 429) after which the connector is
    /// quarantined: its removals wait, attempts untouched, while a probe checks the vendor. 0: never.
    pub quarantine_after: u32,
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

/// One stage of a connector's removal (`[[connector.stage]]`): an action, due `after` the effective
/// time. Each stage is a removal of its own in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The action (`deactivate`, `remove_entitlements`, `delete`, `deprovision`), or "" for the
    /// connector's removal as configured (a connector without stages).
    pub action: String,
    /// Its delay after the effective time.
    pub after: Duration,
}

/// `[connector.inactive]`: the app's last-login export, and how long unused makes an account a
/// leaver's (reason `inactive`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InactiveConfig {
    /// Unused this long (since the last login) makes an account inactive.
    pub after: Duration,
    /// The export: a CSV file with a header row, re-read on every scan (absolute path).
    pub path: std::path::PathBuf,
    /// The column holding the account key (as the connector's `account` template would make it).
    pub account_column: String,
    /// The column holding the last login (RFC 3339, or YYYY-MM-DD in UTC).
    pub last_login_column: String,
}

/// The stage actions that delete the account and its data: a legal hold makes them wait.
pub const DESTRUCTIVE_ACTIONS: &[&str] = &["delete", "deprovision"];

/// Each connector's destructive stages, which a legal hold stops (`store::holds`).
pub fn hold_stages(connectors: &[ConnectorConfig]) -> Vec<(String, Vec<String>)> {
    connectors
        .iter()
        .map(|c| {
            let mut stages: Vec<String> = c
                .stages
                .iter()
                .filter(|s| c.destructive(&s.action))
                .map(|s| s.action.clone())
                .collect();
            // Removals queued before the connector had stages are of stage "": held too when the
            // connector's own removal deletes.
            if c.kind.deletes() && !stages.iter().any(String::is_empty) {
                stages.push(String::new());
            }
            (c.name.clone(), stages)
        })
        .collect()
}

impl ConnectorConfig {
    /// The stage named `action` ("" for a connector without stages), with its place in the list.
    pub fn stage(&self, action: &str) -> Option<(usize, &Stage)> {
        self.stages
            .iter()
            .enumerate()
            .find(|(_, s)| s.action == action)
    }

    /// Whether the stage named `action` deletes the account: a legal hold makes it wait.
    pub fn destructive(&self, action: &str) -> bool {
        if action.is_empty() {
            self.kind.deletes()
        } else {
            DESTRUCTIVE_ACTIONS.contains(&action)
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

impl Validator<'_> {
    pub(super) fn connectors(
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
        let raw_kind: Option<RawKind> = match kind {
            None => {
                self.problem(
                    &format!("{prefix}.kind"),
                    format!(
                        "missing; set kind to one of {}",
                        backticked(ConnectorKind::NAMES)
                    ),
                );
                None
            }
            Some(kind) => match kind.get_ref().as_str() {
                Some(tag) => {
                    // Read from a synthetic one-entry table `{ <kind> = { <the other keys> } }`: serde picks the
                    // registered kind from the tag, refuses unknown kinds and, per kind, unknown keys.
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
        let mut grace = self.duration(
            &format!("{prefix}.grace"),
            raw_common.grace.as_deref(),
            Duration::ZERO,
        );
        let raw_stages = raw_common.stage.clone().unwrap_or_default();
        if !raw_stages.is_empty() && raw_common.grace.is_some() {
            self.problem(
                &format!("{prefix}.grace"),
                "with [[connector.stage]] entries each stage has its own delay (`after`); remove grace",
            );
        }
        let concurrency = self.integer_in(
            &format!("{prefix}.concurrency"),
            raw_common.concurrency,
            i64::try_from(DEFAULT_CONNECTOR_CONCURRENCY).unwrap_or(2),
            1,
            MAX_CONCURRENCY,
        );
        let quarantine_after = self.integer_in(
            &format!("{prefix}.quarantine_after"),
            raw_common.quarantine_after,
            DEFAULT_QUARANTINE_AFTER,
            0,
            1_000_000,
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
        let kind = raw_kind?.validate(self, &prefix, workers)?;
        let stages = self.stages(&prefix, &raw_stages, &kind, grace);
        let inactive = raw_common
            .inactive
            .clone()
            .and_then(|raw| self.inactive(&format!("{prefix}.inactive"), raw));
        if let Some(first) = stages.first() {
            grace = first.after;
        }
        let name = name?;
        if own_dry_run && !safety.dry_run {
            self.warn(format!(
                "connector {name} is in dry-run: it resolves accounts and removes nothing"
            ));
        }
        Some(ConnectorConfig {
            name,
            account: account?,
            grace,
            stages,
            inactive,
            dry_run: own_dry_run || safety.dry_run,
            concurrency: usize::try_from(concurrency).unwrap_or(DEFAULT_CONNECTOR_CONCURRENCY),
            quarantine_after: u32::try_from(quarantine_after).unwrap_or(10),
            rate,
            never_remove,
            scope,
            retry,
            kind,
        })
    }

    /// `[connector.inactive]`: every key is required.
    fn inactive(&mut self, key: &str, raw: RawInactive) -> Option<InactiveConfig> {
        let missing = |cx: &mut Self, name: &str, example: &str| {
            cx.problem(
                &format!("{key}.{name}"),
                format!("missing; e.g. {name} = {example}"),
            );
        };
        let after = match raw.after.as_deref() {
            None => {
                missing(self, "after", "\"180d\"");
                None
            }
            Some(a) => {
                let d = self.duration(&format!("{key}.after"), Some(a), Duration::ZERO);
                if d < Duration::from_secs(86_400) {
                    self.problem(
                        &format!("{key}.after"),
                        "is under a day: an account in use would be taken for unused",
                    );
                    None
                } else {
                    Some(d)
                }
            }
        };
        let path = match raw.path.as_deref() {
            None | Some("") => {
                missing(self, "path", "\"exports/app-last-login.csv\"");
                None
            }
            Some(p) => Some(self.path(p)),
        };
        let account_column = raw.account_column.filter(|c| !c.trim().is_empty());
        if account_column.is_none() {
            missing(self, "account_column", "\"email\"");
        }
        let last_login_column = raw.last_login_column.filter(|c| !c.trim().is_empty());
        if last_login_column.is_none() {
            missing(self, "last_login_column", "\"last_login\"");
        }
        Some(InactiveConfig {
            after: after?,
            path: path?,
            account_column: account_column?,
            last_login_column: last_login_column?,
        })
    }

    /// The `[[connector.stage]]` entries: each an action the kind supports, once, with a delay no
    /// shorter than the stage before; none: one stage of the connector's own removal after `grace`.
    fn stages(
        &mut self,
        prefix: &str,
        raw: &[RawStage],
        kind: &ConnectorKind,
        grace: Duration,
    ) -> Vec<Stage> {
        if raw.is_empty() {
            return vec![Stage {
                action: String::new(),
                after: grace,
            }];
        }
        let allowed = kind.stage_actions();
        let mut stages: Vec<Stage> = Vec::new();
        for (i, stage) in raw.iter().enumerate() {
            let key = format!("{prefix}.stage[{i}]");
            let action = match stage.action.as_deref().map(str::trim) {
                None | Some("") => {
                    self.problem(
                        &format!("{key}.action"),
                        format!("missing; one of {}", backticked(&allowed)),
                    );
                    continue;
                }
                Some(a) if !allowed.contains(&a) => {
                    self.problem(
                        &format!("{key}.action"),
                        format!(
                            "{a:?} is not an action of a {} connector: expected one of {}",
                            kind.as_str(),
                            backticked(&allowed)
                        ),
                    );
                    continue;
                }
                Some(a) => a.to_string(),
            };
            let Some(after) = stage.after.as_deref() else {
                self.problem(
                    &format!("{key}.after"),
                    "missing; the delay after the effective date, e.g. \"0d\" or \"30d\"",
                );
                continue;
            };
            let after = self.duration(&format!("{key}.after"), Some(after), Duration::ZERO);
            if stages.iter().any(|s| s.action == action) {
                self.problem(
                    &format!("{key}.action"),
                    format!("{action:?} is already a stage of this connector"),
                );
                continue;
            }
            if let Some(before) = stages.last()
                && after < before.after
            {
                self.problem(
                    &format!("{key}.after"),
                    format!(
                        "comes before the stage above it ({}); list the stages in the order they run",
                        before.action
                    ),
                );
                continue;
            }
            stages.push(Stage { action, after });
        }
        stages
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
}

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
