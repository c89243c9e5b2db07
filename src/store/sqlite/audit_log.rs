//! The audit log's statements: the head of the chain, multi-row inserts, reads in chain order.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sqlx::SqlitePool;

use super::{Script, Tx, statement_sizes};
use crate::store::audit_log::{AuditRow, AuditSearch};
use crate::store::ts;

/// The head of the chain (its last sequence number and hash), read in the caller's write transaction.
pub(in crate::store) async fn head(tx: &mut Tx) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
}

/// The head of the chain, read outside any transaction.
pub(in crate::store) async fn head_now(
    pool: &SqlitePool,
) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(pool)
        .await
}

/// Adds the inserts of `rows` to `script`.
pub(in crate::store) fn insert_rows(
    script: &mut Script,
    rows: impl IntoIterator<Item = AuditRow, IntoIter: ExactSizeIterator>,
) -> Result<(), sqlx::Error> {
    script.insert(
        "INSERT INTO audit_log (seq, at, actor, event, employee_id, connector, removal_id, batch_id, \
         attempt, outcome, http_status, duration_ms, detail, prev_hash, hash)",
        15,
        "",
        rows,
        |b, row| {
            b.add(row.seq)
                .add(row.at)
                .add(row.actor)
                .add(row.event)
                .add(row.employee_id)
                .add(row.connector)
                .add(row.removal_id)
                .add(row.batch_id)
                .add(row.attempt)
                .add(row.outcome)
                .add(row.http_status)
                .add(row.duration_ms)
                .add(row.detail)
                .add(row.prev_hash)
                .add(row.hash);
        },
    )
}

/// Inserts `rows` in the caller's transaction, one statement per command, so each size stays prepared on the
/// connection.
pub(in crate::store) async fn insert(tx: &mut Tx, rows: Vec<AuditRow>) -> Result<(), sqlx::Error> {
    let mut rows = rows.into_iter();
    for size in statement_sizes(rows.len()) {
        let mut script = Script::default();
        insert_rows(&mut script, rows.by_ref().take(size))?;
        script.execute(tx).await?;
    }
    Ok(())
}

/// Every row in chain order, read as a stream.
pub(in crate::store) fn in_order(
    pool: &SqlitePool,
) -> BoxStream<'_, Result<AuditRow, sqlx::Error>> {
    sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_log ORDER BY seq").fetch(pool)
}

/// The rows of one employee, since a time, of one connector (each when given), in chain order.
pub(in crate::store) async fn matching(
    pool: &SqlitePool,
    employee_id: Option<&str>,
    since: Option<DateTime<Utc>>,
    connector: Option<&str>,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(
        "SELECT * FROM audit_log \
         WHERE (?1 IS NULL OR employee_id = ?1) AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR connector = ?3) \
         ORDER BY seq",
    )
    .bind(employee_id)
    .bind(since.map(ts))
    .bind(connector)
    .fetch_all(pool)
    .await
}

/// The anchor the chain starts after, if rows were archived.
pub(in crate::store) async fn anchor(
    pool: &SqlitePool,
) -> Result<Option<crate::store::audit_log::Anchor>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, hash, last_at, checkpoint, segment, segment_sha256 FROM audit_anchor \
         ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await
}

/// The rows after `after` up to `through`, in order.
pub(in crate::store) async fn range(
    pool: &SqlitePool,
    after: i64,
    through: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_log WHERE seq > ? AND seq <= ? ORDER BY seq")
        .bind(after)
        .bind(through)
        .fetch_all(pool)
        .await
}

/// Records a new anchor and deletes the rows up to it (the delete trigger lets rows up to an anchor go).
pub(in crate::store) async fn archive(
    tx: &mut Tx,
    anchor: &crate::store::audit_log::Anchor,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_anchor (seq, hash, last_at, checkpoint, segment, segment_sha256, archived_by, archived_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(anchor.seq)
    .bind(&anchor.hash)
    .bind(&anchor.last_at)
    .bind(&anchor.checkpoint)
    .bind(&anchor.segment)
    .bind(&anchor.segment_sha256)
    .bind(actor)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(sqlx::query("DELETE FROM audit_log WHERE seq <= ?")
        .bind(anchor.seq)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

/// The rows of one removal, in chain order (read from `audit_log_removal`).
pub(in crate::store) async fn of_removal(
    pool: &SqlitePool,
    removal_id: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_log WHERE removal_id = $1 ORDER BY seq")
        .bind(removal_id)
        .fetch_all(pool)
        .await
}

const SEARCH_WHERE: &str = "WHERE ($1 IS NULL OR employee_id = $1) AND ($2 IS NULL OR connector = $2) \
     AND ($3 IS NULL OR event = $3) AND ($4 IS NULL OR at >= $4) AND ($5 IS NULL OR at < $5)";

/// How many rows match `search`.
pub(in crate::store) async fn count_matching(
    pool: &SqlitePool,
    search: &AuditSearch,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM audit_log {SEARCH_WHERE}"
    )))
    .bind(&search.employee_id)
    .bind(&search.connector)
    .bind(&search.event)
    .bind(search.since.map(ts))
    .bind(search.until.map(ts))
    .fetch_one(pool)
    .await
}

/// The last `limit` rows matching `search`, newest first.
pub(in crate::store) async fn search(
    pool: &SqlitePool,
    search: &AuditSearch,
    limit: i64,
) -> Result<Vec<AuditRow>, sqlx::Error> {
    sqlx::query_as::<_, AuditRow>(sqlx::AssertSqlSafe(format!(
        "SELECT * FROM audit_log {SEARCH_WHERE} ORDER BY seq DESC LIMIT $6"
    )))
    .bind(&search.employee_id)
    .bind(&search.connector)
    .bind(&search.event)
    .bind(search.since.map(ts))
    .bind(search.until.map(ts))
    .bind(limit)
    .fetch_all(pool)
    .await
}
