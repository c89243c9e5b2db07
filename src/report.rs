//! `offboard report`: the evidence an auditor samples: per leaver and connector, when access was
//! removed (or why not), the time to revoke, and whether it breached the SLA.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::connectors::RemovalOutcome;
use crate::output::{Format, extra, main};
use crate::store::{Store, parse_ts, ts};

/// Which terminations the report covers.
#[derive(Debug, Clone, Default)]
pub struct ReportFilter {
    /// Effective at or after.
    pub since: Option<DateTime<Utc>>,
    /// Effective before.
    pub until: Option<DateTime<Utc>>,
    /// Only this connector.
    pub connector: Option<String>,
}

/// One removal in the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportRow {
    /// The removal this row is about (a staged connector's first stage).
    pub removal_id: i64,
    /// The leaver.
    pub employee_id: String,
    /// The connector.
    pub connector: String,
    /// The termination's effective time.
    pub effective_at: String,
    /// When offboard received the termination.
    pub received_at: String,
    /// Where it came from (feed, push, cli, import).
    pub source: String,
    /// The removal's state.
    pub state: String,
    /// removed, deactivated, already_absent, …
    pub outcome: Option<String>,
    /// When access was removed (done removals).
    pub removed_at: Option<String>,
    /// What `removed_at` rests on: `answer`, the vendor's answer to the call that removed it, or
    /// `lost_answer`, the moment the earliest call that may have removed it was sent, whose answer
    /// was lost (outcome `removed_unconfirmed`: a later attempt found the account gone).
    pub removed_at_from: Option<&'static str>,
    /// Seconds from the effective time to the removal.
    pub time_to_revoke_seconds: Option<i64>,
    /// Access had to be gone by then: effective time + grace + SLA.
    pub deadline: String,
    /// Removed after the deadline, or still not removed past it.
    pub breach: bool,
    /// Why not removed (held, excluded, failed: reason), when it was not.
    pub note: Option<String>,
    /// For a connector with stages, the stage this row is about (the first: the one that removes
    /// access) and what became of the later ones (a deletion 30 days on), e.g.
    /// `delete: done 2027-01-04T09:00:00Z`; not part of the time to revoke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The later stages, as above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub later_stages: Option<String>,
}

/// The report's summary figures.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReportSummary {
    /// Terminations covered.
    pub leavers: u64,
    /// Removals covered.
    pub removals: u64,
    /// Done.
    pub done: u64,
    /// Not yet done: pending, running or held.
    pub open: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled: rescinded, excluded or rejected.
    pub cancelled: u64,
    /// Dry-run only.
    pub planned: u64,
    /// Median time to revoke of done removals, in seconds.
    pub median_time_to_revoke_seconds: Option<i64>,
    /// Worst time to revoke of done removals, in seconds.
    pub worst_time_to_revoke_seconds: Option<i64>,
    /// Removals that breached the SLA.
    pub breaches: u64,
    /// The SLA in seconds.
    pub sla_seconds: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// When it was made.
    pub generated_at: String,
    /// One row per removal.
    pub rows: Vec<ReportRow>,
    /// Figures.
    pub summary: ReportSummary,
}

/// Builds the report for terminations effective in the filter's window.
pub async fn build(
    store: &Store,
    config: &Config,
    filter: &ReportFilter,
    now: DateTime<Utc>,
) -> anyhow::Result<Report> {
    let raw = store
        .report_sources(filter.since, filter.until, filter.connector.as_deref())
        .await?;

    let sla = chrono::Duration::from_std(config.report.sla)?;
    let mut rows = Vec::with_capacity(raw.len());
    let mut summary = ReportSummary {
        sla_seconds: config.report.sla.as_secs(),
        ..ReportSummary::default()
    };
    let mut leavers = std::collections::BTreeSet::new();
    let mut ttrs = Vec::new();
    // A staged connector's later stages (a deletion after the deactivation) are told on the row of
    // its first stage: the time to revoke is the first stage's.
    let mut later: std::collections::HashMap<(i64, String), Vec<String>> =
        std::collections::HashMap::new();
    for r in raw.iter().filter(|r| r.stage_index > 0) {
        let what = match r.state.as_str() {
            "done" => format!(
                "{}: done {}",
                r.stage,
                r.finished_at.as_deref().unwrap_or("")
            ),
            "pending" | "held" => format!("{}: {} (due {})", r.stage, r.state, r.due_at),
            "on_hold" => format!("{}: on_hold (legal hold)", r.stage),
            state => format!("{}: {state}", r.stage),
        };
        later
            .entry((r.termination_id, r.connector.clone()))
            .or_default()
            .push(what);
    }
    for r in raw.into_iter().filter(|r| r.stage_index == 0) {
        leavers.insert(r.termination_id);
        let effective = parse_ts(&r.effective_at)?;
        let grace = config
            .connector(&r.connector)
            .and_then(|c| chrono::Duration::from_std(c.grace).ok())
            .unwrap_or_else(chrono::Duration::zero);
        let deadline = effective + grace + sla;
        let unconfirmed = r.outcome.as_deref() == Some(RemovalOutcome::RemovedUnconfirmed.as_str());
        let removed_at_from =
            (r.state == "done").then_some(if unconfirmed { "lost_answer" } else { "answer" });
        let (removed_at, ttr, breach, note) = match r.state.as_str() {
            "done" => {
                let removed_at = if unconfirmed {
                    r.remove_sent_at.clone().or_else(|| r.finished_at.clone())
                } else {
                    r.finished_at.clone()
                };
                let at = removed_at.as_deref().map(parse_ts).transpose()?;
                let ttr = at.map(|at| (at - effective).num_seconds());
                if let Some(t) = ttr {
                    ttrs.push(t);
                }
                (removed_at, ttr, at.is_some_and(|at| at > deadline), None)
            }
            "cancelled" => (None, None, false, r.last_error.clone()),
            "held" => (
                None,
                None,
                now > deadline,
                Some("held by the mass-removal guard".into()),
            ),
            "planned" => (
                None,
                None,
                now > deadline,
                Some("dry-run: nothing was removed".into()),
            ),
            "failed" => (None, None, now > deadline, r.last_error.clone()),
            "on_hold" => (
                None,
                None,
                now > deadline,
                Some("waits for a legal hold to end (`offboard hold list`)".into()),
            ),
            _ => (
                None,
                None,
                now > deadline,
                r.last_error
                    .clone()
                    .or_else(|| (r.batch_held == 1).then(|| "approved after being held".into())),
            ),
        };
        summary.removals += 1;
        match r.state.as_str() {
            "done" => summary.done += 1,
            "failed" => summary.failed += 1,
            "cancelled" => summary.cancelled += 1,
            "planned" => summary.planned += 1,
            _ => summary.open += 1,
        }
        if breach {
            summary.breaches += 1;
        }
        let later_stages = later
            .remove(&(r.termination_id, r.connector.clone()))
            .map(|l| l.join("; "));
        rows.push(ReportRow {
            removal_id: r.removal_id,
            stage: (!r.stage.is_empty()).then(|| r.stage.clone()),
            later_stages,
            employee_id: r.employee_id,
            connector: r.connector,
            effective_at: r.effective_at,
            received_at: r.received_at,
            source: r.source,
            state: r.state,
            outcome: r.outcome,
            removed_at,
            removed_at_from,
            time_to_revoke_seconds: ttr,
            deadline: ts(deadline),
            breach,
            note,
        });
    }
    summary.leavers = leavers.len() as u64;
    ttrs.sort_unstable();
    summary.median_time_to_revoke_seconds = median(&ttrs);
    summary.worst_time_to_revoke_seconds = ttrs.last().copied();
    Ok(Report {
        generated_at: ts(now),
        rows,
        summary,
    })
}

/// The median of sorted values (the mean of the two middle ones for an even count, rounded down).
fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]).div_euclid(2)),
    }
}

/// Seconds as a short human duration: `45s`, `12m 5s`, `3h 20m`, `2d 4h`.
pub fn human(seconds: i64) -> String {
    let sign = if seconds < 0 { "-" } else { "" };
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    };
    format!("{sign}{text}")
}

/// Prints the report.
pub fn print(out: &mut impl Write, report: &Report, format: Format) -> anyhow::Result<()> {
    if matches!(format, Format::Json | Format::Yaml) {
        return crate::output::document(out, format, report);
    }
    crate::output::list(
        out,
        format,
        &[
            extra("removal_id"),
            main("employee_id"),
            main("connector"),
            extra("stage"),
            main("effective_at"),
            extra("received_at"),
            extra("source"),
            main("state"),
            extra("outcome"),
            main("removed_at"),
            extra("removed_at_from"),
            main("time_to_revoke_seconds"),
            extra("deadline"),
            main("breach"),
            main("note"),
            extra("later_stages"),
        ],
        &report.rows,
    )?;
    if format.is_table() {
        let s = &report.summary;
        writeln!(
            out,
            "\n{} leavers, {} removals: {} done, {} open, {} failed, {} cancelled, {} dry-run; time to revoke median {}, worst {}; {} SLA breaches (SLA {}).",
            s.leavers,
            s.removals,
            s.done,
            s.open,
            s.failed,
            s.cancelled,
            s.planned,
            s.median_time_to_revoke_seconds.map_or("-".into(), human),
            s.worst_time_to_revoke_seconds.map_or("-".into(), human),
            s.breaches,
            human(i64::try_from(s.sla_seconds).unwrap_or(i64::MAX)),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_human_durations() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[5]), Some(5));
        assert_eq!(median(&[1, 3, 10]), Some(3));
        assert_eq!(median(&[1, 3, 10, 20]), Some(6));
        assert_eq!(human(45), "45s");
        assert_eq!(human(725), "12m 5s");
        assert_eq!(human(12_000), "3h 20m");
        assert_eq!(human(187_200), "2d 4h");
        assert_eq!(human(-30), "-30s");
    }
}
