//! Prometheus metrics with `prometheus-client`: typed counters and a time-to-revoke histogram kept in
//! the process, each a field (a misspelt metric does not compile), and queue gauges read from the
//! database at scrape time. Labels are bounded: connector, state, result. Served in the OpenMetrics
//! text format. prometheus-client writes label values as they are, without escaping: every value here
//! is a connector name (config allows only a-z, 0-9, '_' and '-') or one of our own words.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{Pool, parse_ts, reads};

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

/// A removal attempt's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttemptLabels {
    connector: String,
    result: String,
}

/// A feed poll's label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

/// A connector's label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

/// A removal count's labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: String,
    state: String,
}

fn ttr_histogram() -> Histogram {
    Histogram::new(TTR_BUCKETS)
}

/// The result of a feed poll, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollResult {
    /// A document was read and ingested.
    Ingested,
    /// The document had not changed.
    Unchanged,
    /// The poll failed.
    Failed,
}

impl PollResult {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ingested => "ingested",
            Self::Unchanged => "unchanged",
            Self::Failed => "failed",
        }
    }
}

/// The daemon's metrics. Cloning the families shares their values, so a scrape registers clones.
#[derive(Debug)]
pub struct Metrics {
    attempts: Family<AttemptLabels, Counter>,
    polls: Family<ResultLabel, Counter>,
    rejected_rows: Counter,
    batches_held: Counter,
    rehired_after_removal: Counter,
    time_to_revoke: Family<ConnectorLabel, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            polls: Family::default(),
            rejected_rows: Counter::default(),
            batches_held: Counter::default(),
            rehired_after_removal: Counter::default(),
            time_to_revoke: Family::new_with_constructor(ttr_histogram),
        }
    }
}

impl Metrics {
    /// Records one attempt's result.
    pub fn attempt(&self, connector: &str, result: &str) {
        self.attempts
            .get_or_create(&AttemptLabels {
                connector: connector.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Records one feed poll.
    pub fn poll(&self, result: PollResult) {
        self.polls
            .get_or_create(&ResultLabel {
                result: result.as_str().to_string(),
            })
            .inc();
    }

    /// Records a removal's time to revoke (effective time to done).
    pub fn time_to_revoke(&self, connector: &str, seconds: f64) {
        self.time_to_revoke
            .get_or_create(&ConnectorLabel {
                connector: connector.to_string(),
            })
            .observe(seconds.max(0.0));
    }

    /// Records rows rejected by validation outside a batch (a refused push).
    pub fn rejected_rows(&self, rows: u64) {
        self.rejected_rows.inc_by(rows);
    }

    /// Records what an intake batch did.
    pub fn batch(&self, summary: &crate::feed::intake::BatchSummary) {
        self.rejected_rows.inc_by(summary.rejected);
        if summary.held {
            self.batches_held.inc();
        }
        self.rehired_after_removal
            .inc_by(summary.rehired_after_removal);
    }

    /// The OpenMetrics text exposition: the counters, the histogram and the database gauges.
    pub async fn render(&self, pool: &Pool, now: DateTime<Utc>) -> anyhow::Result<String> {
        let mut registry = Registry::default();

        let removals = Family::<StateLabels, Gauge>::default();
        let mut pending = Vec::new();
        for ((connector, state), n) in crate::store::queue::counts(pool).await? {
            if state == "pending" && n > 0 {
                pending.push(connector.clone());
            }
            removals
                .get_or_create(&StateLabels { connector, state })
                .set(n);
        }
        registry.register(
            "offboard_removals",
            "Removals by connector and state",
            removals,
        );

        let held = Gauge::<i64>::default();
        held.set(reads::undecided_held_batches(pool).await?);
        registry.register(
            "offboard_held_batches",
            "Batches waiting for approve or reject",
            held,
        );

        let pending: Vec<&str> = pending.iter().map(String::as_str).collect();
        let age = match reads::oldest_due_at(pool, &pending, now).await? {
            Some(t) => (now - parse_ts(&t)?).num_milliseconds() as f64 / 1000.0,
            None => 0.0,
        };
        let oldest = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        oldest.set(age.max(0.0));
        registry.register(
            "offboard_oldest_due_removal_age_seconds",
            "How long the oldest due, pending removal has waited (0 when none)",
            oldest,
        );

        if let Some(t) = reads::last_successful_poll_at(pool).await? {
            let last = Gauge::<i64>::default();
            last.set(parse_ts(&t)?.timestamp());
            registry.register(
                "offboard_last_successful_poll_timestamp_seconds",
                "Unix time of the last successful feed poll",
                last,
            );
        }

        registry.register(
            "offboard_removal_attempts",
            "Removal attempts by connector and result",
            self.attempts.clone(),
        );
        registry.register(
            "offboard_feed_polls",
            "Feed polls by result (ingested, unchanged, failed)",
            self.polls.clone(),
        );
        registry.register(
            "offboard_feed_rejected_rows",
            "Feed and push rows rejected by validation",
            self.rejected_rows.clone(),
        );
        registry.register(
            "offboard_batches_held",
            "Batches held by the mass-removal guard",
            self.batches_held.clone(),
        );
        registry.register(
            "offboard_rehired_after_removal",
            "People rehired after a removal was already done",
            self.rehired_after_removal.clone(),
        );
        registry.register(
            "offboard_time_to_revoke_seconds",
            "Time from a termination's effective time to its removal, per connector",
            self.time_to_revoke.clone(),
        );

        let mut out = String::new();
        encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_end_in_total_with_their_labels() {
        let m = Metrics::default();
        m.attempt("panopto-staff", "done");
        m.poll(PollResult::Failed);
        let mut registry = Registry::default();
        registry.register("x", "attempts", m.attempts.clone());
        registry.register("p", "polls", m.polls.clone());
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("x_total{connector=\"panopto-staff\",result=\"done\"} 1"),
            "{out}"
        );
        assert!(out.contains("p_total{result=\"failed\"} 1"), "{out}");
        assert!(out.ends_with("# EOF\n"), "{out}");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.time_to_revoke("x", 30.0);
        m.time_to_revoke("x", 4000.0);
        let mut registry = Registry::default();
        registry.register("ttr", "t", m.time_to_revoke.clone());
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        assert!(
            out.contains("ttr_bucket{le=\"60.0\",connector=\"x\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ttr_bucket{le=\"3600.0\",connector=\"x\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ttr_bucket{le=\"14400.0\",connector=\"x\"} 2"),
            "{out}"
        );
        assert!(out.contains("ttr_count{connector=\"x\"} 2"), "{out}");
    }
}
