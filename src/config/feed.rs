//! `[feed]`: the HR feed polled on a schedule, its source, columns or JSON pointers, and status values.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::{RawAuth, RawColumns, RawFeed, RawStatus};
use super::values::validate_cron;
use super::{EXAMPLE_SCHEDULE, Secret, Validator};
use crate::domain::{FieldNames, StatusValues};

/// Default `feed.timeout`.
pub const DEFAULT_FEED_TIMEOUT: Duration = Duration::from_secs(60);

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

impl Validator<'_> {
    pub(super) fn feed(&mut self, raw: RawFeed) -> Option<FeedConfig> {
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
            self.warn(
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
}
