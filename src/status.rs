//! `offboard status`: the queue by state and connector, the oldest due removal, failures, rehires
//! after removal, and the last feed poll.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, SqlitePool};

use crate::cli::{Format, write_table};
use crate::db::{parse_ts, ts};
use crate::domain::RemovalState;

/// Everything `status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// When it was gathered.
    pub at: String,
    /// Batches held by the mass-removal guard, waiting for `offboard approve` or `reject`.
    pub held_batches: Vec<crate::batches::HeldBatch>,
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

/// The oldest due removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OldestDue {
    /// Removal id.
    pub id: i64,
    /// Employee.
    pub employee_id: String,
    /// Connector.
    pub connector: String,
    /// Due since.
    pub due_at: String,
    /// Seconds it has been due.
    #[sqlx(skip)]
    pub age_seconds: i64,
}

/// A failed removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct FailedRemoval {
    /// Removal id.
    pub id: i64,
    /// Employee.
    pub employee_id: String,
    /// Connector.
    pub connector: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why.
    pub last_error: Option<String>,
    /// When.
    pub finished_at: Option<String>,
}

/// A rehire after removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Rehired {
    /// Employee.
    pub employee_id: String,
    /// When the termination was rescinded.
    pub rescinded_at: Option<String>,
    /// Connectors on which access had already been removed (comma-separated).
    pub connectors: String,
}

/// A feed batch.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LastPoll {
    /// Batch id.
    pub id: i64,
    /// When.
    pub received_at: String,
    /// ok or failed.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Rows read.
    pub rows: i64,
    /// Rows rejected.
    pub rejected: i64,
    /// Terminations created.
    pub new_terminations: i64,
}

/// Reads the status from the database.
pub async fn gather(pool: &SqlitePool, now: DateTime<Utc>) -> anyhow::Result<Status> {
    let mut counts: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for ((connector, state), n) in crate::queue::counts(pool).await? {
        counts.entry(connector).or_default().insert(state, n);
    }
    // The oldest due removal of each connector with pending ones, from the claim index, then the oldest.
    let mut oldest_due: Option<OldestDue> = None;
    for (connector, states) in &counts {
        if states.get("pending").copied().unwrap_or(0) == 0 {
            continue;
        }
        let due: Option<OldestDue> = sqlx::query_as(
            "SELECT r.id, t.employee_id, r.connector, r.due_at FROM removals r \
             JOIN terminations t ON t.id = r.termination_id \
             WHERE r.id = (SELECT id FROM removals WHERE state = 'pending' AND connector = ?1 \
                           AND due_at <= ?2 ORDER BY due_at, id LIMIT 1)",
        )
        .bind(connector)
        .bind(ts(now))
        .fetch_optional(pool)
        .await?;
        if let Some(due) = due
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
    let failed = sqlx::query_as(
        "SELECT r.id, t.employee_id, r.connector, r.attempts, r.last_error, r.finished_at FROM removals r \
         JOIN terminations t ON t.id = r.termination_id WHERE r.state = 'failed' \
         ORDER BY r.finished_at DESC, r.id DESC LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    let rehired_after_removal = sqlx::query_as(
        "SELECT t.employee_id, t.rescinded_at, group_concat(r.connector, ',') AS connectors \
         FROM terminations t JOIN removals r ON r.termination_id = t.id \
         WHERE t.status = 'rescinded' AND r.state = 'done' GROUP BY t.id ORDER BY t.rescinded_at DESC LIMIT 50",
    )
    .fetch_all(pool)
    .await?;
    let poll = |extra: &'static str| {
        sqlx::query_as::<_, LastPoll>(match extra {
            "ok" => "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
                     WHERE source = 'feed' AND status = 'ok' ORDER BY id DESC LIMIT 1",
            _ => "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
                  WHERE source = 'feed' ORDER BY id DESC LIMIT 1",
        })
        .fetch_optional(pool)
    };
    let last_poll = poll("any").await?;
    let last_successful_poll = poll("ok").await?;
    Ok(Status {
        held_batches: crate::batches::held(pool).await?,
        at: ts(now),
        counts,
        oldest_due,
        failed,
        rehired_after_removal,
        last_poll,
        last_successful_poll,
    })
}

/// Prints the status.
pub fn print(out: &mut impl Write, status: &Status, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        writeln!(out, "{}", serde_json::to_string_pretty(status)?)?;
        return Ok(());
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
