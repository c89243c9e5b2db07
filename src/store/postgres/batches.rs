//! The statements of held batches and the operator's decisions on them, on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Tx;
use crate::store::batches::{BatchView, HeldBatch};
use crate::store::ts;

/// Batches held by the guard and not yet decided, oldest first.
pub(in crate::store) async fn held(pool: &PgPool) -> Result<Vec<HeldBatch>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.id, b.source, b.received_at, b.rows, b.new_terminations, \
                (SELECT COUNT(*)::BIGINT FROM removals r WHERE r.batch_id = b.id AND r.state = 'held') AS held_removals \
         FROM batches b WHERE b.held = 1 AND b.decision IS NULL ORDER BY b.id",
    )
    .fetch_all(pool)
    .await
}

/// Whether batch `id` was held (0 or 1) and the decision taken on it, if it exists.
pub(in crate::store) async fn held_and_decision(
    tx: &mut Tx,
    id: i64,
) -> Result<Option<(i64, Option<String>)>, sqlx::Error> {
    sqlx::query_as("SELECT held, decision FROM batches WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
}

/// The held removals of a batch: id, connector and employee, in id order.
pub(in crate::store) async fn held_removals(
    tx: &mut Tx,
    batch_id: i64,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.connector, t.employee_id FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE r.batch_id = $1 AND r.state = 'held' ORDER BY r.id",
    )
    .bind(batch_id)
    .fetch_all(&mut **tx)
    .await
}

/// Sets aside the active terminations of a batch, remembered as rejected by `actor`; returns their ids
/// and employees.
pub(in crate::store) async fn rescind_terminations_of(
    tx: &mut Tx,
    batch_id: i64,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE terminations SET status = 'rescinded', rescinded_at = $1, updated_at = $1, \
           rejected_at = $1, rejected_by = $3 \
         WHERE batch_id = $2 AND status = 'active' RETURNING id, employee_id",
    )
    .bind(ts(now))
    .bind(batch_id)
    .bind(actor)
    .fetch_all(&mut **tx)
    .await
}

/// Records the operator's decision on a batch.
pub(in crate::store) async fn set_decision(
    tx: &mut Tx,
    batch_id: i64,
    decision: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE batches SET decision = $1, decided_by = $2, decided_at = $3 WHERE id = $4")
        .bind(decision)
        .bind(actor)
        .bind(ts(now))
        .bind(batch_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The `planned` (dry-run) removals of a connector: id and employee, in id order.
pub(in crate::store) async fn planned_removals(
    tx: &mut Tx,
    connector: &str,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, t.employee_id FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE r.connector = $1 AND r.state = 'planned' ORDER BY r.id",
    )
    .bind(connector)
    .fetch_all(&mut **tx)
    .await
}

/// The rejections still in force: termination id, employee, effective time, batch, who and when.
pub(in crate::store) async fn rejected(
    pool: &PgPool,
) -> Result<Vec<crate::store::batches::Rejected>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id AS termination_id, employee_id, effective_at, batch_id, rejected_by, rejected_at \
         FROM terminations WHERE rejected_at IS NOT NULL AND unrejected_at IS NULL ORDER BY rejected_at, id",
    )
    .fetch_all(pool)
    .await
}

/// Lifts the rejections in force of `employee`; returns the termination ids.
pub(in crate::store) async fn unreject(
    tx: &mut Tx,
    employee: &str,
    now: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE terminations SET unrejected_at = $1, updated_at = $1 \
         WHERE employee_id = $2 AND rejected_at IS NOT NULL AND unrejected_at IS NULL RETURNING id",
    )
    .bind(ts(now))
    .bind(employee)
    .fetch_all(&mut **tx)
    .await
}

/// One batch.
pub(in crate::store) async fn view(
    pool: &PgPool,
    id: i64,
) -> Result<Option<BatchView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, source, source_ref, received_at, rows, accepted, rejected, new_terminations, held, decision, \
                decided_by, decided_at, actor FROM batches WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}
