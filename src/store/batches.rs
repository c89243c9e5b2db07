//! Operator decisions on batches held by the mass-removal guard: approve releases their removals,
//! reject cancels them. Both are audited with the operator's name.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{FromRow, SqlitePool};

use super::transition::{To, transition};
use super::{begin_write, ts};
use crate::audit::{Chain, Entry};

/// A batch waiting for a decision.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HeldBatch {
    /// Batch id.
    pub id: i64,
    /// Where it came from.
    pub source: String,
    /// When it arrived.
    pub received_at: String,
    /// Rows in it.
    pub rows: i64,
    /// Terminations it created.
    pub new_terminations: i64,
    /// Removals waiting in `held`.
    pub held_removals: i64,
}

/// Batches held by the guard and not yet decided, oldest first.
pub async fn held(pool: &SqlitePool) -> anyhow::Result<Vec<HeldBatch>> {
    Ok(sqlx::query_as(
        "SELECT b.id, b.source, b.received_at, b.rows, b.new_terminations, \
                (SELECT COUNT(*) FROM removals r WHERE r.batch_id = b.id AND r.state = 'held') AS held_removals \
         FROM batches b WHERE b.held = 1 AND b.decision IS NULL ORDER BY b.id",
    )
    .fetch_all(pool)
    .await?)
}

/// An operator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Release the held removals.
    Approve,
    /// Cancel the held removals and set aside the batch's terminations.
    Reject,
}

/// Applies a decision to a held batch; returns how many removals it changed.
pub async fn decide(
    pool: &SqlitePool,
    batch_id: i64,
    decision: Decision,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = begin_write(pool).await?;
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("SELECT held, decision FROM batches WHERE id = ?")
            .bind(batch_id)
            .fetch_optional(&mut *tx)
            .await?;
    match row {
        None => anyhow::bail!("no batch with id {batch_id}"),
        Some((0, _)) => {
            anyhow::bail!("batch {batch_id} was not held by the guard; nothing to decide")
        }
        Some((_, Some(done))) => anyhow::bail!("batch {batch_id} was already {done}"),
        Some(_) => {}
    }
    let (word, to, event) = match decision {
        Decision::Approve => ("approved", To::Released, "removal_approved"),
        Decision::Reject => ("rejected", To::Cancelled("rejected"), "removal_rejected"),
    };
    let removals: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT r.id, r.connector, t.employee_id FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE r.batch_id = ? AND r.state = 'held' ORDER BY r.id",
    )
    .bind(batch_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut chain = Chain::start(&mut tx).await?;
    for (id, connector, employee) in &removals {
        let entry = Entry::by(actor, event)
            .employee(employee)
            .connector(connector)
            .batch(batch_id);
        transition(&mut tx, &mut chain, *id, "held", to, entry, now).await?;
    }
    if decision == Decision::Reject {
        // The batch is judged wrong: its terminations are set aside so that a later, correct feed row
        // for the same person starts a new termination instead of matching this one.
        let ids: Vec<(i64, String)> = sqlx::query_as(
            "UPDATE terminations SET status = 'rescinded', rescinded_at = ?1, updated_at = ?1 \
             WHERE batch_id = ?2 AND status = 'active' RETURNING id, employee_id",
        )
        .bind(ts(now))
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
        for (id, employee) in ids {
            chain.push(
                now,
                Entry::by(actor, "termination_rejected")
                    .employee(employee)
                    .batch(batch_id)
                    .detail(json!({"termination_id": id})),
            );
        }
    }
    sqlx::query("UPDATE batches SET decision = ?, decided_by = ?, decided_at = ? WHERE id = ?")
        .bind(word)
        .bind(actor)
        .bind(ts(now))
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    chain.push(
        now,
        Entry::by(
            actor,
            if decision == Decision::Approve {
                "batch_approved"
            } else {
                "batch_rejected"
            },
        )
        .batch(batch_id)
        .outcome(word)
        .detail(json!({"removals": removals.len()})),
    );
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(removals.len() as u64)
}

/// Moves a connector's `planned` (dry-run) removals to `pending`, for when its dry-run was turned
/// off after review. Returns how many.
pub async fn approve_planned(
    pool: &SqlitePool,
    connector: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut tx = begin_write(pool).await?;
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT r.id, t.employee_id FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE r.connector = ? AND r.state = 'planned' ORDER BY r.id",
    )
    .bind(connector)
    .fetch_all(&mut *tx)
    .await?;
    let mut chain = Chain::start(&mut tx).await?;
    for (id, employee) in &rows {
        let entry = Entry::by(actor, "removal_approved")
            .employee(employee)
            .connector(connector);
        transition(
            &mut tx,
            &mut chain,
            *id,
            "planned",
            To::Requeued,
            entry,
            now,
        )
        .await?;
    }
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(rows.len() as u64)
}
