//! Value parsers shared by every table, connector kinds included: durations, rates, cron schedules, bounded
//! integers, glob lists, service URLs and the timeout of one vendor call.

use std::time::Duration;

use super::{Validator, WorkersConfig};
use crate::domain::Pattern;

/// The example cron expression used in messages and docs.
pub const EXAMPLE_SCHEDULE: &str = "0 */5 * * * *";

/// Default `timeout` of one vendor call, for kinds that do not set their own default.
pub const DEFAULT_VENDOR_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Writes a duration in the largest unit that divides it, as the config spells durations.
pub(crate) fn format_duration(d: Duration) -> String {
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

impl Validator<'_> {
    pub(crate) fn duration(&mut self, key: &str, raw: Option<&str>, default: Duration) -> Duration {
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
    pub(crate) fn duration_at_least(
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

    pub(crate) fn integer_in(
        &mut self,
        key: &str,
        raw: Option<i64>,
        default: i64,
        min: i64,
        max: i64,
    ) -> i64 {
        match raw {
            None => default,
            Some(n) if (min..=max).contains(&n) => n,
            Some(n) => {
                self.problem(key, format!("{n} is out of range: must be {min} to {max}"));
                default
            }
        }
    }

    pub(crate) fn patterns(&mut self, key: &str, raw: Option<Vec<String>>) -> Vec<Pattern> {
        let mut out = Vec::new();
        for (i, source) in raw.unwrap_or_default().iter().enumerate() {
            match Pattern::parse(source) {
                Ok(p) => out.push(p),
                Err(message) => self.problem(&format!("{key}[{i}]"), message),
            }
        }
        out
    }

    /// Checks a vendor base URL (required): http(s), a host, no credentials, no query or fragment.
    /// Returns it as written. Plain http is a warning.
    pub(crate) fn service_url(&mut self, key: &str, raw: Option<&str>) -> Option<String> {
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
            "http" => self.warn(format!(
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

    /// `<prefix>.timeout`, the limit of one vendor call (HTTP request, SOAP call, program run): above zero, and a
    /// warning when it is not shorter than the lease, since the call could then outlive its claim.
    pub(crate) fn call_timeout(
        &mut self,
        prefix: &str,
        raw: Option<&str>,
        default: Duration,
        workers: &WorkersConfig,
    ) -> Duration {
        let key = format!("{prefix}.timeout");
        let timeout = self.duration(&key, raw, default);
        if timeout.is_zero() {
            self.problem(&key, "must be longer than 0s");
            return default;
        }
        if timeout >= workers.lease {
            self.warn(format!(
                "{key} ({}) is not shorter than workers.lease ({}): a slow call can outlive its lease and run twice",
                format_duration(timeout),
                format_duration(workers.lease)
            ));
        }
        timeout
    }
}
