//! Prometheus metrics: counters and a time-to-revoke histogram kept in the process, and queue
//! gauges read from the database at scrape time. Labels are bounded: connector, state, result.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::store::{Pool, parse_ts, reads};

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

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; TTR_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    ttr: BTreeMap<String, Histogram>,
}

/// The daemon's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Counter descriptions: name, help.
const COUNTERS: &[(&str, &str)] = &[
    (
        "offboard_removal_attempts_total",
        "Removal attempts by connector and result.",
    ),
    (
        "offboard_feed_polls_total",
        "Feed polls by result (ingested, unchanged, failed).",
    ),
    (
        "offboard_feed_rejected_rows_total",
        "Feed and push rows rejected by validation.",
    ),
    (
        "offboard_batches_held_total",
        "Batches held by the mass-removal guard.",
    ),
    (
        "offboard_rehired_after_removal_total",
        "People rehired after a removal was already done.",
    ),
];

impl Metrics {
    /// Adds `by` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let labels: Labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
        if let Ok(mut inner) = self.inner.lock() {
            *inner.counters.entry((name, labels)).or_default() += by;
        }
    }

    /// Records one attempt's result.
    pub fn attempt(&self, connector: &str, result: &str) {
        self.add(
            "offboard_removal_attempts_total",
            &[("connector", connector), ("result", result)],
            1,
        );
    }

    /// Records a removal's time to revoke (effective time to done).
    pub fn time_to_revoke(&self, connector: &str, seconds: f64) {
        if let Ok(mut inner) = self.inner.lock() {
            let h = inner.ttr.entry(connector.to_string()).or_default();
            for (i, bound) in TTR_BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds.max(0.0);
        }
    }

    /// Records what an intake batch did.
    pub fn batch(&self, summary: &crate::feed::intake::BatchSummary) {
        if summary.rejected > 0 {
            self.add("offboard_feed_rejected_rows_total", &[], summary.rejected);
        }
        if summary.held {
            self.add("offboard_batches_held_total", &[], 1);
        }
        if summary.rehired_after_removal > 0 {
            self.add(
                "offboard_rehired_after_removal_total",
                &[],
                summary.rehired_after_removal,
            );
        }
    }

    /// The Prometheus text exposition: the counters, the histogram and the database gauges.
    pub async fn render(&self, pool: &Pool, now: DateTime<Utc>) -> anyhow::Result<String> {
        let mut out = String::new();
        let by_state: Vec<(String, String, i64)> = crate::store::queue::counts(pool)
            .await?
            .into_iter()
            .map(|((connector, state), n)| (connector, state, n))
            .collect();
        header(
            &mut out,
            "offboard_removals",
            "Removals by connector and state.",
            "gauge",
        );
        let pending: Vec<&str> = by_state
            .iter()
            .filter(|(_, state, n)| state == "pending" && *n > 0)
            .map(|(connector, _, _)| connector.as_str())
            .collect();
        for (connector, state, n) in &by_state {
            sample(
                &mut out,
                "offboard_removals",
                &[("connector", connector), ("state", state)],
                *n as f64,
            );
        }
        let held = reads::undecided_held_batches(pool).await?;
        header(
            &mut out,
            "offboard_held_batches",
            "Batches waiting for approve or reject.",
            "gauge",
        );
        sample(&mut out, "offboard_held_batches", &[], held as f64);
        // The oldest due time of each connector with pending removals, each read from the claim index.
        let oldest = reads::oldest_due_at(pool, &pending, now).await?;
        let age = match oldest {
            Some(t) => (now - parse_ts(&t)?).num_milliseconds() as f64 / 1000.0,
            None => 0.0,
        };
        header(
            &mut out,
            "offboard_oldest_due_removal_age_seconds",
            "How long the oldest due, pending removal has waited (0 when none).",
            "gauge",
        );
        sample(
            &mut out,
            "offboard_oldest_due_removal_age_seconds",
            &[],
            age.max(0.0),
        );
        let last_ok = reads::last_successful_poll_at(pool).await?;
        if let Some(t) = last_ok {
            header(
                &mut out,
                "offboard_last_successful_poll_timestamp_seconds",
                "Unix time of the last successful feed poll.",
                "gauge",
            );
            sample(
                &mut out,
                "offboard_last_successful_poll_timestamp_seconds",
                &[],
                parse_ts(&t)?.timestamp() as f64,
            );
        }

        let Ok(inner) = self.inner.lock() else {
            return Ok(out);
        };
        for (name, help) in COUNTERS {
            header(&mut out, name, help, "counter");
            let mut any = false;
            for ((n, labels), value) in &inner.counters {
                if n == name {
                    any = true;
                    let labels: Vec<(&str, &str)> =
                        labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    sample(&mut out, name, &labels, *value as f64);
                }
            }
            if !any && !name.ends_with("attempts_total") && !name.ends_with("polls_total") {
                sample(&mut out, name, &[], 0.0);
            }
        }
        let name = "offboard_time_to_revoke_seconds";
        header(
            &mut out,
            name,
            "Time from a termination's effective time to its removal, per connector.",
            "histogram",
        );
        for (connector, h) in &inner.ttr {
            for (bound, count) in TTR_BUCKETS.iter().zip(h.counts) {
                let le = format!("{bound}");
                sample(
                    &mut out,
                    &format!("{name}_bucket"),
                    &[("connector", connector), ("le", &le)],
                    count as f64,
                );
            }
            sample(
                &mut out,
                &format!("{name}_bucket"),
                &[("connector", connector), ("le", "+Inf")],
                h.count as f64,
            );
            sample(
                &mut out,
                &format!("{name}_sum"),
                &[("connector", connector)],
                h.sum,
            );
            sample(
                &mut out,
                &format!("{name}_count"),
                &[("connector", connector)],
                h.count as f64,
            );
        }
        Ok(out)
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let escaped = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(out, "{k}=\"{escaped}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("connector", "a\"b\\c\nd")], 1.0);
        assert_eq!(out, "m{connector=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.time_to_revoke("x", 30.0);
        m.time_to_revoke("x", 4000.0);
        let inner = m.inner.lock().unwrap();
        let h = &inner.ttr["x"];
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[3], 1);
        assert_eq!(h.counts[4], 2);
        assert_eq!(h.count, 2);
    }
}
