//! Removals as operators see and handle them: the listing, counts per connector and state, and the
//! operator's retry and cancel (each through `transition`, audited with the operator's name).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{FromRow, SqlitePool};

use super::transition::{To, transition};
use crate::audit::{self, Entry};
use crate::domain::RemovalState;
use crate::store::begin_write;

/// A removal as listed by the CLI.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RemovalView {
    /// Removal id.
    pub id: i64,
    /// Employee id.
    pub employee_id: String,
    /// Connector name.
    pub connector: String,
    /// Account key.
    pub account: Option<String>,
    /// State.
    pub state: String,
    /// When it is (or was) due.
    pub due_at: String,
    /// Attempts made.
    pub attempts: i64,
    /// Outcome when finished.
    pub outcome: Option<String>,
    /// Last error or reason.
    pub last_error: Option<String>,
    /// Termination effective time.
    pub effective_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
}

/// Which removals to list.
#[derive(Debug, Clone, Default)]
pub struct RemovalFilter {
    /// Only this state.
    pub state: Option<RemovalState>,
    /// Only this connector.
    pub connector: Option<String>,
    /// Only this employee.
    pub employee_id: Option<String>,
}

/// Lists removals, oldest due first.
pub async fn list(pool: &SqlitePool, filter: &RemovalFilter) -> anyhow::Result<Vec<RemovalView>> {
    Ok(sqlx::query_as(
        "SELECT r.id, t.employee_id, r.connector, r.account, r.state, r.due_at, r.attempts, r.outcome, \
                r.last_error, t.effective_at, r.finished_at \
         FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE (?1 IS NULL OR r.state = ?1) AND (?2 IS NULL OR r.connector = ?2) AND (?3 IS NULL OR t.employee_id = ?3) \
         ORDER BY r.due_at, r.id",
    )
    .bind(filter.state.map(|s| s.as_str()))
    .bind(&filter.connector)
    .bind(&filter.employee_id)
    .fetch_all(pool)
    .await?)
}

/// Counts of removals by connector and state.
pub async fn counts(pool: &SqlitePool) -> anyhow::Result<BTreeMap<(String, String), i64>> {
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT connector, state, COUNT(*) FROM removals GROUP BY connector, state")
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().map(|(c, s, n)| ((c, s), n)).collect())
}

/// Which removals an operator retry applies to.
#[derive(Debug, Clone)]
pub enum RetrySelection {
    /// One removal (failed or planned).
    One(i64),
    /// Every failed removal, optionally of one connector.
    Failed {
        /// Only this connector.
        connector: Option<String>,
    },
}

/// Puts failed (or planned) removals back to `pending`, due now, with a fresh attempt budget.
/// Returns the ids retried.
pub async fn retry(
    pool: &SqlitePool,
    selection: &RetrySelection,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<i64>> {
    let mut tx = begin_write(pool).await?;
    let rows: Vec<(i64, String, String, String)> = match selection {
        RetrySelection::One(id) => {
            sqlx::query_as(
                "SELECT r.id, r.connector, r.state, t.employee_id FROM removals r \
             JOIN terminations t ON t.id = r.termination_id WHERE r.id = ?",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?
        }
        RetrySelection::Failed { connector } => {
            sqlx::query_as(
                "SELECT r.id, r.connector, r.state, t.employee_id FROM removals r \
             JOIN terminations t ON t.id = r.termination_id \
             WHERE r.state = 'failed' AND (?1 IS NULL OR r.connector = ?1) ORDER BY r.id",
            )
            .bind(connector)
            .fetch_all(&mut *tx)
            .await?
        }
    };
    if let RetrySelection::One(id) = selection {
        match rows.first() {
            None => anyhow::bail!("no removal with id {id}"),
            Some((_, _, state, _)) if state != "failed" && state != "planned" => {
                anyhow::bail!(
                    "removal {id} is {state}; only failed or planned removals can be retried"
                )
            }
            _ => {}
        }
    }
    let mut chain = audit::Chain::start(&mut tx).await?;
    for (id, connector, state, employee) in &rows {
        let entry = Entry::by(actor, "operator_retry")
            .employee(employee)
            .connector(connector);
        transition(&mut tx, &mut chain, *id, state, To::Requeued, entry, now).await?;
    }
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Cancels a pending, held or failed removal with the operator's reason.
pub async fn cancel(
    pool: &SqlitePool,
    id: i64,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = begin_write(pool).await?;
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT r.connector, r.state, t.employee_id FROM removals r \
         JOIN terminations t ON t.id = r.termination_id WHERE r.id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((connector, state, employee)) = row else {
        anyhow::bail!("no removal with id {id}");
    };
    if !matches!(state.as_str(), "pending" | "held" | "failed" | "planned") {
        anyhow::bail!(
            "removal {id} is {state}; only pending, held, failed or planned removals can be cancelled"
        );
    }
    let mut chain = audit::Chain::start(&mut tx).await?;
    let entry = Entry::by(actor, "operator_cancel")
        .employee(employee)
        .connector(connector);
    transition(
        &mut tx,
        &mut chain,
        id,
        &state,
        To::Cancelled(reason),
        entry,
        now,
    )
    .await?;
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
