//! `offboard status`: the queue by state and connector, the oldest due removal, failures, rehires
//! after removal, and the last feed poll.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::RemovalState;
use crate::output::{Format, write_table};
pub use crate::store::reads::{FailedRemoval, LastPoll, OldestDue, Rehired};
use crate::store::{Store, parse_ts, ts};

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When it was gathered.
    pub at: String,
    /// Batches held by the mass-removal guard, waiting for `offboard approve` or `reject`.
    pub held_batches: Vec<crate::store::batches::HeldBatch>,
    /// Connectors quarantined (their vendor kept failing) or paused by an operator.
    pub connectors_stopped: Vec<crate::store::connectors::ConnectorState>,
    /// Rejected terminations remembered: the feed repeating them is not held again (`offboard rejected`).
    pub rejected_terminations: usize,
    /// Legal holds in force: these people's deletions wait (`offboard hold list`).
    pub legal_holds: Vec<crate::store::holds::Hold>,
    /// Counts per connector and state.
    pub counts: BTreeMap<String, BTreeMap<String, i64>>,
    /// The oldest pending removal that is due, if any.
    pub oldest_due: Option<OldestDue>,
    /// Failed removals, newest first (at most 20).
    pub failed: Vec<FailedRemoval>,
    /// People rehired after a removal was already done.
    pub rehired_after_removal: Vec<Rehired>,
    /// The last feed batch.
    pub last_poll: Option<LastPoll>,
    /// The last successful feed batch.
    pub last_successful_poll: Option<LastPoll>,
}

/// Reads the status from the database.
pub async fn gather(store: &Store, now: DateTime<Utc>) -> anyhow::Result<Status> {
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for ((connector, state), n) in store.removal_counts().await? {
        counts.entry(connector).or_default().insert(state, n);
    }
    // The oldest due removal of each connector with pending ones, then the oldest of those.
    let mut oldest_due: Option<OldestDue> = None;
    for (connector, states) in &counts {
        if states.get("pending").copied().unwrap_or(0) == 0 {
            continue;
        }
        if let Some(due) = store.oldest_due(connector, now).await?
            && oldest_due
                .as_ref()
                .is_none_or(|o| (&due.due_at, due.id) < (&o.due_at, o.id))
        {
            oldest_due = Some(due);
        }
    }
    if let Some(o) = oldest_due.as_mut() {
        o.age_seconds = (now - parse_ts(&o.due_at)?).num_seconds();
    }
    Ok(Status {
        held_batches: store.held_batches().await?,
        rejected_terminations: store.rejected_terminations().await?.len(),
        legal_holds: store.holds().await?,
        connectors_stopped: store.connector_states().await?,
        at: ts(now),
        counts,
        oldest_due,
        failed: store.recent_failures(20).await?,
        rehired_after_removal: store.rehired_after_removal(50).await?,
        last_poll: store.last_feed_batch(false).await?,
        last_successful_poll: store.last_feed_batch(true).await?,
    })
}

/// Prints the status.
pub fn print(out: &mut impl Write, status: &Status, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json | Format::Yaml => return crate::output::document(out, format, status),
        // The queue as rows: connector, state, removals.
        Format::Csv => {
            let rows: Vec<serde_json::Value> = status
                .counts
                .iter()
                .flat_map(|(connector, states)| {
                    states.iter().map(move |(state, n)| {
                        serde_json::json!({"connector": connector, "state": state, "removals": n})
                    })
                })
                .collect();
            return crate::output::list(
                out,
                format,
                &[
                    crate::output::main("connector"),
                    crate::output::main("state"),
                    crate::output::main("removals"),
                ],
                &rows,
            );
        }
        Format::Table | Format::Wide => {}
    }
    if !status.held_batches.is_empty() {
        writeln!(
            out,
            "HELD BATCHES: nothing in them is removed until `offboard approve BATCH` (or `offboard reject BATCH`)"
        )?;
        write_table(
            out,
            &[
                "batch",
                "source",
                "received_at",
                "rows",
                "new_terminations",
                "held_removals",
            ],
            &status
                .held_batches
                .iter()
                .map(|b| {
                    vec![
                        b.id.to_string(),
                        b.source.clone(),
                        b.received_at.clone(),
                        b.rows.to_string(),
                        b.new_terminations.to_string(),
                        b.held_removals.to_string(),
                    ]
                })
                .collect::<Vec<_>>(),
        )?;
        writeln!(out)?;
    }
    if !status.connectors_stopped.is_empty() {
        writeln!(
            out,
            "CONNECTORS NOT RUNNING: their removals wait, attempts untouched (`offboard connector resume NAME`)"
        )?;
        write_table(
            out,
            &["connector", "state", "since", "next_probe_at", "reason"],
            &status
                .connectors_stopped
                .iter()
                .map(|s| {
                    vec![
                        s.connector.clone(),
                        s.state.clone(),
                        s.since.clone(),
                        s.next_probe_at.clone().unwrap_or_default(),
                        s.reason.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        )?;
        writeln!(out)?;
    }
    if !status.legal_holds.is_empty() {
        writeln!(
            out,
            "Legal holds: {} people whose deletions wait, access still removed (`offboard hold list`; `offboard hold remove EMPLOYEE` lifts one)\n",
            status.legal_holds.len()
        )?;
    }
    if status.rejected_terminations > 0 {
        writeln!(
            out,
            "Rejected terminations remembered: {} (the feed repeating them is not held again; `offboard rejected` lists them, `offboard unreject EMPLOYEE` lifts one)\n",
            status.rejected_terminations
        )?;
    }
    let mut headers = vec!["connector"];
    headers.extend(RemovalState::ALL.iter().map(|s| s.as_str()));
    let rows: Vec<Vec<String>> = status
        .counts
        .iter()
        .map(|(connector, by_state)| {
            let mut row = vec![connector.clone()];
            row.extend(
                RemovalState::ALL
                    .iter()
                    .map(|s| by_state.get(s.as_str()).copied().unwrap_or(0).to_string()),
            );
            row
        })
        .collect();
    writeln!(out, "Removals by connector and state")?;
    write_table(out, &headers, &rows)?;
    writeln!(out)?;
    match &status.oldest_due {
        Some(o) => writeln!(
            out,
            "Oldest due removal: {} ({} on {}), due since {} ({}s ago)",
            o.id, o.employee_id, o.connector, o.due_at, o.age_seconds
        )?,
        None => writeln!(out, "Oldest due removal: none")?,
    }
    for (label, poll) in [
        ("Last feed poll", &status.last_poll),
        ("Last successful feed poll", &status.last_successful_poll),
    ] {
        match poll {
            Some(p) => writeln!(
                out,
                "{label}: batch {} at {}: {}{} ({} rows, {} rejected, {} new terminations)",
                p.id,
                p.received_at,
                p.status,
                p.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                p.rows,
                p.rejected,
                p.new_terminations
            )?,
            None => writeln!(out, "{label}: never")?,
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Failed removals ({}; `offboard retry ID` puts one back)",
        status.failed.len()
    )?;
    write_table(
        out,
        &[
            "id",
            "employee",
            "connector",
            "attempts",
            "finished_at",
            "error",
        ],
        &status
            .failed
            .iter()
            .map(|f| {
                vec![
                    f.id.to_string(),
                    f.employee_id.clone(),
                    f.connector.clone(),
                    f.attempts.to_string(),
                    f.finished_at.clone().unwrap_or_default(),
                    f.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    writeln!(out)?;
    writeln!(out, "Rehired after removal (restore their access by hand)")?;
    write_table(
        out,
        &["employee", "rescinded_at", "removed_on"],
        &status
            .rehired_after_removal
            .iter()
            .map(|r| {
                vec![
                    r.employee_id.clone(),
                    r.rescinded_at.clone().unwrap_or_default(),
                    r.connectors.clone(),
                ]
            })
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
