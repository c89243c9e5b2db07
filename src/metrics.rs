//! Prometheus metrics: counters and a time-to-revoke histogram kept in the process, and queue
//! gauges read from the database at scrape time. Every metric is a typed `prometheus-client`
//! family declared in this file ([`Metrics::new`] for the process's, `database_gauges` for the
//! scrape's), so a metric is addressed by a field, never by a name that could be misspelt. Labels
//! are bounded: connector, state, result.

use std::fmt;
use std::sync::atomic::AtomicU64;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, prometheus_text,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::feed::intake::BatchSummary;
use crate::store::{Store, parse_ts};

/// The `Content-Type` of [`Metrics::render`]'s text: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the time-to-revoke histogram: 1 min to 30 days.
pub const TTR_BUCKETS: [f64; 11] = [
    60.0,
    300.0,
    900.0,
    3600.0,
    14_400.0,
    43_200.0,
    86_400.0,
    259_200.0,
    604_800.0,
    1_209_600.0,
    2_592_000.0,
];

/// What one removal attempt came to, as the `result` label of `offboard_removal_attempts_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttemptResult {
    /// The account was removed (or was already absent).
    Done,
    /// A dry-run connector recorded what it would do.
    Planned,
    /// The attempt failed and will be tried again.
    Retry,
    /// The attempt failed for good.
    Failed,
    /// The removal was cancelled (a rescinded termination, an exclusion).
    Cancelled,
    /// The claim had been taken over; the outcome was not recorded.
    Stale,
}

impl AttemptResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Planned => "planned",
            Self::Retry => "retry",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Stale => "stale",
        }
    }
}

impl EncodeLabelValue for AttemptResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

/// How a push ended, by its answer: the `result` label of `offboard_pushes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushResult {
    /// 202: stored as a batch.
    Accepted,
    /// 400: invalid JSON or records; nothing stored.
    Rejected,
    /// 401: missing or wrong token.
    Unauthorized,
    /// 404: pushes are not configured.
    Disabled,
    /// 413 or 415: too large, or not JSON.
    Refused,
    /// 503: the batch could not be stored.
    NotStored,
}

impl PushResult {
    /// Every result, in the order `/metrics` shows them.
    pub const ALL: [PushResult; 6] = [
        Self::Accepted,
        Self::Rejected,
        Self::Unauthorized,
        Self::Disabled,
        Self::Refused,
        Self::NotStored,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Unauthorized => "unauthorized",
            Self::Disabled => "disabled",
            Self::Refused => "refused",
            Self::NotStored => "not_stored",
        }
    }

    /// The result an answer's status stands for.
    pub fn of(status: u16) -> PushResult {
        match status {
            200..=299 => Self::Accepted,
            401 => Self::Unauthorized,
            404 => Self::Disabled,
            413 | 415 => Self::Refused,
            400..=499 => Self::Rejected,
            _ => Self::NotStored,
        }
    }
}

impl EncodeLabelValue for PushResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PushLabels {
    result: PushResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// What one feed poll came to, as the `result` label of `offboard_feed_polls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PollResult {
    /// The feed was read and its batch ingested.
    Ingested,
    /// The server said the document had not changed.
    Unchanged,
    /// The feed could not be read or ingested.
    Failed,
}

impl PollResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingested => "ingested",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        }
    }
}

impl EncodeLabelValue for PollResult {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    connector: String,
    result: AttemptResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PollLabels {
    result: PollResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectorLabels {
    connector: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RemovalLabels {
    connector: String,
    state: String,
}

fn time_to_revoke_histogram() -> Histogram {
    Histogram::new(TTR_BUCKETS)
}

/// The daemon's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    attempts: Family<AttemptLabels, Counter>,
    polls: Family<PollLabels, Counter>,
    rejected_rows: Counter,
    batches_held: Counter,
    rehired_after_removal: Counter,
    time_to_revoke: Family<ConnectorLabels, Histogram, fn() -> Histogram>,
    pushes: Family<PushLabels, Counter>,
    /// The configured connectors: each gets a series of 0 for every state and result it has none of,
    /// so that a rate or an alert has a series to work on before the first removal.
    connectors: Vec<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers one metric. `help` is the whole sentence as HELP shows it: the library adds the final
/// period itself. A counter's `name` has no `_total`: the library adds that too.
fn register(registry: &mut Registry, name: &str, help: &str, metric: impl Metric) {
    registry.register(name, help.strip_suffix('.').unwrap_or(help), metric);
}

impl Metrics {
    /// Every metric kept in the process, registered in the order `/metrics` shows them (after the
    /// database gauges).
    pub fn new() -> Self {
        Self::for_connectors(Vec::new())
    }

    /// [`Metrics::new`] for a daemon with these connectors: their series start at 0.
    pub fn for_connectors(connectors: Vec<String>) -> Self {
        let mut registry = Registry::default();
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        register(
            &mut registry,
            "offboard_build_info",
            "The running build: 1, labelled with its version.",
            build,
        );
        let attempts = Family::default();
        register(
            &mut registry,
            "offboard_removal_attempts",
            "Removal attempts by connector and result.",
            Family::clone(&attempts),
        );
        let polls = Family::default();
        register(
            &mut registry,
            "offboard_feed_polls",
            "Feed polls by result (ingested, unchanged, failed).",
            Family::clone(&polls),
        );
        let rejected_rows = Counter::default();
        register(
            &mut registry,
            "offboard_feed_rejected_rows",
            "Feed and push rows rejected by validation.",
            rejected_rows.clone(),
        );
        let batches_held = Counter::default();
        register(
            &mut registry,
            "offboard_batches_held",
            "Batches held by the mass-removal guard.",
            batches_held.clone(),
        );
        let rehired_after_removal = Counter::default();
        register(
            &mut registry,
            "offboard_rehired_after_removal",
            "People rehired after a removal was already done.",
            rehired_after_removal.clone(),
        );
        let time_to_revoke = Family::new_with_constructor(time_to_revoke_histogram as fn() -> _);
        register(
            &mut registry,
            "offboard_time_to_revoke_seconds",
            "Time from a termination's effective time to its removal, per connector.",
            time_to_revoke.clone(),
        );
        let pushes = Family::default();
        register(
            &mut registry,
            "offboard_pushes",
            "Pushed bodies (POST /v1/terminations) by result.",
            Family::clone(&pushes),
        );
        // Every series starts at 0.
        for result in [
            PollResult::Ingested,
            PollResult::Unchanged,
            PollResult::Failed,
        ] {
            let _ = polls.get_or_create(&PollLabels { result });
        }
        for result in PushResult::ALL {
            let _ = pushes.get_or_create(&PushLabels { result });
        }
        for connector in &connectors {
            for result in [
                AttemptResult::Done,
                AttemptResult::Planned,
                AttemptResult::Retry,
                AttemptResult::Failed,
                AttemptResult::Cancelled,
                AttemptResult::Stale,
            ] {
                let _ = attempts.get_or_create(&AttemptLabels {
                    connector: connector.clone(),
                    result,
                });
            }
        }
        Self {
            registry,
            attempts,
            polls,
            rejected_rows,
            batches_held,
            rehired_after_removal,
            time_to_revoke,
            pushes,
            connectors,
        }
    }

    /// Records one push's answer.
    pub fn push(&self, status: u16) {
        self.pushes
            .get_or_create(&PushLabels {
                result: PushResult::of(status),
            })
            .inc();
    }

    /// Records one attempt's result.
    pub fn attempt(&self, connector: &str, result: AttemptResult) {
        self.attempts
            .get_or_create(&AttemptLabels {
                connector: connector.to_string(),
                result,
            })
            .inc();
    }

    /// Records one feed poll's result.
    pub fn poll(&self, result: PollResult) {
        self.polls.get_or_create(&PollLabels { result }).inc();
    }

    /// Counts rows rejected by validation that no batch records (a refused push body).
    pub fn rejected_rows(&self, rows: u64) {
        self.rejected_rows.inc_by(rows);
    }

    /// Records a removal's time to revoke (effective time to done).
    pub fn time_to_revoke(&self, connector: &str, seconds: f64) {
        // A removal done before its effective time (a negative time) falls in the first bucket.
        self.time_to_revoke
            .get_or_create(&ConnectorLabels {
                connector: connector.to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// Records what an intake batch did.
    pub fn batch(&self, summary: &BatchSummary) {
        self.rejected_rows.inc_by(summary.rejected);
        if summary.held {
            self.batches_held.inc();
        }
        self.rehired_after_removal
            .inc_by(summary.rehired_after_removal);
    }

    /// The Prometheus text exposition: the database gauges, the counters and the histogram.
    pub async fn render(&self, store: &Store, now: DateTime<Utc>) -> anyhow::Result<String> {
        let gauges = database_gauges(store, now, &self.connectors).await?;
        let mut out = String::new();
        prometheus_text::encode(&mut out, &gauges)?;
        prometheus_text::encode(&mut out, &self.registry)?;
        prometheus_text::encode(&mut out, &process_metrics())?;
        Ok(out)
    }
}

/// The gauges read from the database for one scrape. They are registered afresh each time, so a
/// connector or state with no removals left leaves no stale series, and the last-poll time is shown
/// only once a poll has succeeded.
async fn database_gauges(
    store: &Store,
    now: DateTime<Utc>,
    connectors: &[String],
) -> anyhow::Result<Registry> {
    let mut registry = Registry::default();

    let by_state = store.removal_counts().await?;
    let removals = Family::<RemovalLabels, Gauge>::default();
    // A configured connector shows every state, 0 where it has none.
    for connector in connectors {
        for state in crate::domain::RemovalState::ALL {
            let _ = removals.get_or_create(&RemovalLabels {
                connector: connector.clone(),
                state: state.as_str().to_string(),
            });
        }
    }
    for ((connector, state), n) in &by_state {
        removals
            .get_or_create(&RemovalLabels {
                connector: connector.clone(),
                state: state.clone(),
            })
            .set(*n);
    }
    register(
        &mut registry,
        "offboard_removals",
        "Removals by connector and state.",
        removals,
    );

    // 1 for each connector quarantined (its vendor kept failing) or paused by an operator.
    let stopped = Family::<RemovalLabels, Gauge>::default();
    for s in store.connector_states().await? {
        stopped
            .get_or_create(&RemovalLabels {
                connector: s.connector,
                state: s.state,
            })
            .set(1);
    }
    register(
        &mut registry,
        "offboard_connector_stopped",
        "Connectors not claiming removals: state quarantined (the vendor kept failing; probed at growing intervals) or paused (by an operator).",
        stopped,
    );

    let held = Gauge::<i64>::default();
    held.set(store.undecided_held_batches().await?);
    register(
        &mut registry,
        "offboard_held_batches",
        "Batches waiting for approve or reject.",
        held,
    );

    // The oldest due time of each connector with pending removals, each read from the claim index.
    let pending: Vec<&str> = by_state
        .iter()
        .filter(|((_, state), n)| state == "pending" && **n > 0)
        .map(|((connector, _), _)| connector.as_str())
        .collect();
    let age_seconds = match store.oldest_due_at(&pending, now).await? {
        Some(t) => (now - parse_ts(&t)?).num_milliseconds() as f64 / 1000.0,
        None => 0.0,
    };
    let oldest_due_age = Gauge::<f64, AtomicU64>::default();
    oldest_due_age.set(age_seconds.max(0.0));
    register(
        &mut registry,
        "offboard_oldest_due_removal_age_seconds",
        "How long the oldest due, pending removal has waited (0 when none).",
        oldest_due_age,
    );

    if let Some(t) = store.last_successful_poll_at().await? {
        let last_poll = Gauge::<i64>::default();
        last_poll.set(parse_ts(&t)?.timestamp());
        register(
            &mut registry,
            "offboard_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful feed poll.",
            last_poll,
        );
    }
    Ok(registry)
}

/// The process's own figures, under the names Prometheus client libraries use: CPU seconds, resident
/// and virtual memory, open and allowed file descriptors, start time (read from `/proc/self`; none
/// elsewhere).
fn process_metrics() -> Registry {
    let mut registry = Registry::default();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return registry;
    };
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // /proc counts CPU time in USER_HZ ticks, 100 a second on every architecture Linux exports it on.
    const TICKS: f64 = 100.0;
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    if let (Some(user), Some(system)) = (field(11), field(12)) {
        register(
            &mut registry,
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            ConstCounter::new((user + system) / TICKS),
        );
    }
    // Memory from /proc/self/status, in kB there.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v * 1024.0)
    };
    for (key, name, help) in [
        (
            "VmSize:",
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        ),
        (
            "VmRSS:",
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        ),
    ] {
        if let Some(bytes) = kb(key) {
            let g = Gauge::<f64, AtomicU64>::default();
            g.set(bytes);
            register(&mut registry, name, help, g);
        }
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start)) = (boot, field(19)) {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(boot + start / TICKS);
        register(
            &mut registry,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            g,
        );
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(fds.count()).unwrap_or(i64::MAX));
        register(
            &mut registry,
            "process_open_fds",
            "Number of open file descriptors.",
            g,
        );
    }
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<i64>().ok())
        });
    if let Some(max) = max_fds {
        let g = Gauge::<i64>::default();
        g.set(max);
        register(
            &mut registry,
            "process_max_fds",
            "Maximum number of open file descriptors.",
            g,
        );
    }
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(metrics: &Metrics) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &metrics.registry).unwrap();
        out
    }

    #[test]
    fn build_info_push_and_attempt_series_start_at_zero_and_the_process_is_measured() {
        let m = Metrics::for_connectors(vec!["wiki".into()]);
        let text = encode(&m);
        assert!(
            text.contains(&format!(
                "offboard_build_info{{version=\"{}\"}} 1\n",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains("offboard_pushes_total{result=\"accepted\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "offboard_removal_attempts_total{connector=\"wiki\",result=\"failed\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("offboard_feed_polls_total{result=\"failed\"} 0\n"),
            "{text}"
        );
        m.push(401);
        m.push(202);
        m.push(202);
        let text = encode(&m);
        assert!(text.contains("offboard_pushes_total{result=\"unauthorized\"} 1\n"));
        assert!(text.contains("offboard_pushes_total{result=\"accepted\"} 2\n"));

        let mut process = String::new();
        prometheus_text::encode(&mut process, &process_metrics()).unwrap();
        for name in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_virtual_memory_bytes ",
            "process_open_fds ",
            "process_max_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(process.contains(&format!("\n{name}")), "{name}: {process}");
        }
        let rss: f64 = process
            .lines()
            .find_map(|l| l.strip_prefix("process_resident_memory_bytes "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rss > 1_000_000.0,
            "a test process holds more than 1 MB: {rss}"
        );
    }

    #[test]
    fn names_help_and_types_are_the_documented_ones() {
        let m = Metrics::new();
        let text = encode(&m);
        // A labelled family shows nothing, not even its HELP, until it has a series (without
        // connectors, attempts have none); counters without labels start at 0.
        assert!(!text.contains("offboard_removal_attempts_total"), "{text}");
        assert!(!text.contains("offboard_time_to_revoke_seconds"), "{text}");
        assert!(
            text.contains("\noffboard_feed_rejected_rows_total 0\n"),
            "{text}"
        );
        m.attempt("scim", AttemptResult::Done);
        m.poll(PollResult::Ingested);
        m.time_to_revoke("scim", 1.0);
        let text = encode(&m);
        for (name, help, kind) in [
            (
                "offboard_removal_attempts_total",
                "Removal attempts by connector and result.",
                "counter",
            ),
            (
                "offboard_feed_polls_total",
                "Feed polls by result (ingested, unchanged, failed).",
                "counter",
            ),
            (
                "offboard_feed_rejected_rows_total",
                "Feed and push rows rejected by validation.",
                "counter",
            ),
            (
                "offboard_batches_held_total",
                "Batches held by the mass-removal guard.",
                "counter",
            ),
            (
                "offboard_rehired_after_removal_total",
                "People rehired after a removal was already done.",
                "counter",
            ),
            (
                "offboard_time_to_revoke_seconds",
                "Time from a termination's effective time to its removal, per connector.",
                "histogram",
            ),
        ] {
            assert!(
                text.contains(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")),
                "{name} in\n{text}"
            );
        }
    }

    #[test]
    fn counters_count_by_label() {
        let m = Metrics::new();
        m.attempt("scim", AttemptResult::Done);
        m.attempt("scim", AttemptResult::Done);
        m.attempt("scim", AttemptResult::Retry);
        m.poll(PollResult::Unchanged);
        m.rejected_rows(3);
        let text = encode(&m);
        assert!(
            text.contains(
                "offboard_removal_attempts_total{connector=\"scim\",result=\"done\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "offboard_removal_attempts_total{connector=\"scim\",result=\"retry\"} 1\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("offboard_feed_polls_total{result=\"unchanged\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("offboard_feed_rejected_rows_total 3\n"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.attempt("a\"b\\c\nd", AttemptResult::Failed);
        let text = encode(&m);
        assert!(
            text.contains("{connector=\"a\\\"b\\\\c\\nd\",result=\"failed\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::new();
        m.time_to_revoke("x", 30.0);
        m.time_to_revoke("x", 4000.0);
        let text = encode(&m);
        let bucket = |le: &str| {
            let prefix =
                format!("offboard_time_to_revoke_seconds_bucket{{connector=\"x\",le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
                .to_string()
        };
        assert_eq!(bucket("60"), "1");
        assert_eq!(bucket("3600"), "1");
        assert_eq!(bucket("14400"), "2");
        // Bounds are written as Go clients write them: 1209600 and 2592000 in exponent form.
        assert_eq!(bucket("1.2096e+06"), "2");
        assert_eq!(bucket("2.592e+06"), "2");
        assert_eq!(bucket("+Inf"), "2");
        assert!(
            text.contains("offboard_time_to_revoke_seconds_count{connector=\"x\"} 2\n"),
            "{text}"
        );
    }
}
