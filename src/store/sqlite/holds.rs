//! The statements of legal holds on SQLite.

use chrono::{DateTime, Utc};
use sqlx::SqlitePool;

use super::Tx;
use crate::store::holds::Hold;
use crate::store::ts;

/// The terminations (active) of people under a hold in force at `$now`.
const HELD_TERMINATIONS: &str = "SELECT t.id FROM terminations t JOIN holds h ON h.employee_id = t.employee_id \
     WHERE t.status = 'active' AND h.released_at IS NULL AND (h.until IS NULL OR h.until > ?1)";

/// The open holds (not released), oldest first.
pub(in crate::store) async fn open(pool: &SqlitePool) -> Result<Vec<Hold>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, employee_id, reason, until, source, created_by, created_at FROM holds \
         WHERE released_at IS NULL ORDER BY created_at, id",
    )
    .fetch_all(pool)
    .await
}

/// The open holds, in a write transaction.
pub(in crate::store) async fn open_in_tx(tx: &mut Tx) -> Result<Vec<Hold>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, employee_id, reason, until, source, created_by, created_at FROM holds \
         WHERE released_at IS NULL ORDER BY created_at, id",
    )
    .fetch_all(&mut **tx)
    .await
}

/// The open hold of a person, if any.
pub(in crate::store) async fn of(
    tx: &mut Tx,
    employee_id: &str,
) -> Result<Option<Hold>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, employee_id, reason, until, source, created_by, created_at FROM holds \
         WHERE released_at IS NULL AND employee_id = ?",
    )
    .bind(employee_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Whether any hold is open.
pub(in crate::store) async fn any_open(tx: &mut Tx) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM holds WHERE released_at IS NULL)")
        .fetch_one(&mut **tx)
        .await
}

/// Opens a hold.
pub(in crate::store) async fn insert(
    tx: &mut Tx,
    employee_id: &str,
    reason: &str,
    until: Option<DateTime<Utc>>,
    source: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO holds (employee_id, reason, until, source, created_by, created_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(employee_id)
    .bind(reason)
    .bind(until.map(ts))
    .bind(source)
    .bind(actor)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Releases a person's open hold.
pub(in crate::store) async fn release(
    tx: &mut Tx,
    employee_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE holds SET released_at = ?1, released_by = ?2 WHERE employee_id = ?3 AND released_at IS NULL",
    )
    .bind(ts(now))
    .bind(actor)
    .bind(employee_id)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Whether an open hold has an `until` at or before `now`.
pub(in crate::store) async fn any_expired(
    pool: &SqlitePool,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM holds WHERE released_at IS NULL AND until IS NOT NULL AND until <= ?)",
    )
    .bind(ts(now))
    .fetch_one(pool)
    .await
}

/// The people whose open hold has an `until` at or before `now`.
pub(in crate::store) async fn expired(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT employee_id FROM holds WHERE released_at IS NULL AND until IS NOT NULL AND until <= ? ORDER BY employee_id",
    )
    .bind(ts(now))
    .fetch_all(&mut **tx)
    .await
}

/// Puts on hold the pending removals of `connector` in one of `stages` whose person is under a hold
/// in force; returns (id, employee) of each.
pub(in crate::store) async fn hold_pending(
    tx: &mut Tx,
    connector: &str,
    stages: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE removals SET state = 'on_hold', updated_at = ?1 \
         WHERE state = 'pending' AND connector = ?2 AND stage IN (SELECT value FROM json_each(?3)) \
           AND termination_id IN ({HELD_TERMINATIONS}) \
         RETURNING id, (SELECT employee_id FROM terminations WHERE id = removals.termination_id)"
    )))
    .bind(ts(now))
    .bind(connector)
    .bind(serde_json::to_string(stages).unwrap_or_else(|_| "[]".into()))
    .fetch_all(&mut **tx)
    .await
}

/// Makes a person's on-hold removals pending again (their due times stand; a past one runs at once);
/// returns (id, connector) of each.
pub(in crate::store) async fn unhold(
    tx: &mut Tx,
    employee_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE removals SET state = 'pending', updated_at = ?1 \
         WHERE state = 'on_hold' AND termination_id IN (SELECT id FROM terminations WHERE employee_id = ?2) \
         RETURNING id, connector",
    )
    .bind(ts(now))
    .bind(employee_id)
    .fetch_all(&mut **tx)
    .await
}
