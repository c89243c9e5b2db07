//! The statements of the reads: status, report, metrics, the CLI, the readiness probe, the feed validators.

use chrono::{DateTime, Utc};

use sqlx::SqlitePool;

use super::begin_write;
use crate::store::reads::{
    FailedRemoval, FeedState, LastPoll, OldestDue, Rehired, RejectedRow, ReportSource,
};
use crate::store::ts;

/// The oldest due, pending removal of `connector` (read from the claim index).
pub(in crate::store) async fn oldest_due(
    pool: &SqlitePool,
    connector: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<OldestDue>> {
    Ok(sqlx::query_as(
        "SELECT r.id, t.employee_id, r.connector, r.due_at FROM removals r \
         JOIN terminations t ON t.id = r.termination_id \
         WHERE r.id = (SELECT id FROM removals WHERE state = 'pending' AND connector = ?1 \
                       AND due_at <= ?2 ORDER BY due_at, id LIMIT 1)",
    )
    .bind(connector)
    .bind(ts(now))
    .fetch_optional(pool)
    .await?)
}

/// The rejected feed rows of batch `batch` (or of every batch), newest batch first, in row order.
pub(in crate::store) async fn rejected_rows(
    pool: &SqlitePool,
    batch: Option<i64>,
) -> anyhow::Result<Vec<RejectedRow>> {
    Ok(sqlx::query_as(
        "SELECT f.batch_id, b.received_at, b.source, f.row, f.line, f.field, f.reason \
         FROM feed_rejects f JOIN batches b ON b.id = f.batch_id \
         WHERE ?1 IS NULL OR f.batch_id = ?1 ORDER BY f.batch_id DESC, f.row",
    )
    .bind(batch)
    .fetch_all(pool)
    .await?)
}

/// Every removal in a final state (done, failed, cancelled): id and state.
pub(in crate::store) async fn finished_removals(
    pool: &SqlitePool,
) -> anyhow::Result<Vec<(i64, String, Option<String>)>> {
    Ok(sqlx::query_as(
        "SELECT id, state, COALESCE(finished_at, updated_at) FROM removals WHERE state IN ('done', 'failed', 'cancelled') ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}

/// The latest failed removals, newest first.
pub(in crate::store) async fn recent_failures(
    pool: &SqlitePool,
    limit: u32,
) -> anyhow::Result<Vec<FailedRemoval>> {
    Ok(sqlx::query_as(
        "SELECT r.id, t.employee_id, r.connector, r.attempts, r.last_error, r.finished_at FROM removals r \
         JOIN terminations t ON t.id = r.termination_id WHERE r.state = 'failed' \
         ORDER BY r.finished_at DESC, r.id DESC LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// People whose termination was rescinded after a removal was already done, latest first.
pub(in crate::store) async fn rehired_after_removal(
    pool: &SqlitePool,
    limit: u32,
) -> anyhow::Result<Vec<Rehired>> {
    Ok(sqlx::query_as(
        "SELECT t.employee_id, t.rescinded_at, group_concat(r.connector, ',') AS connectors \
         FROM terminations t JOIN removals r ON r.termination_id = t.id \
         WHERE t.status = 'rescinded' AND r.state = 'done' GROUP BY t.id ORDER BY t.rescinded_at DESC LIMIT ?1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The last feed batch, or with `ok_only` the last successful one.
pub(in crate::store) async fn last_feed_batch(
    pool: &SqlitePool,
    ok_only: bool,
) -> anyhow::Result<Option<LastPoll>> {
    let sql = if ok_only {
        "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
         WHERE source = 'feed' AND status = 'ok' ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
         WHERE source = 'feed' ORDER BY id DESC LIMIT 1"
    };
    Ok(sqlx::query_as(sql).fetch_optional(pool).await?)
}

/// Every removal of terminations effective in `[since, until)`, optionally of one connector, in
/// effective time, employee and connector order.
pub(in crate::store) async fn report_sources(
    pool: &SqlitePool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    connector: Option<&str>,
) -> anyhow::Result<Vec<ReportSource>> {
    Ok(sqlx::query_as(
        "SELECT t.id AS termination_id, t.employee_id, t.effective_at, b.received_at, t.source, r.id AS removal_id, r.connector, \
                r.stage, r.stage_index, r.due_at, r.state, r.outcome, r.finished_at, r.remove_sent_at, r.last_error, rb.held AS batch_held \
         FROM terminations t JOIN batches b ON b.id = t.batch_id \
         JOIN removals r ON r.termination_id = t.id JOIN batches rb ON rb.id = r.batch_id \
         WHERE (?1 IS NULL OR t.effective_at >= ?1) AND (?2 IS NULL OR t.effective_at < ?2) \
           AND (?3 IS NULL OR r.connector = ?3) \
         ORDER BY t.effective_at, t.employee_id, r.connector, r.stage_index",
    )
    .bind(since.map(ts))
    .bind(until.map(ts))
    .bind(connector)
    .fetch_all(pool)
    .await?)
}

/// Batches waiting for approve or reject.
pub(in crate::store) async fn undecided_held_batches(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM batches WHERE held = 1 AND decision IS NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// The oldest due time over the pending removals of `connectors`, each read from the claim index.
pub(in crate::store) async fn oldest_due_at(
    pool: &SqlitePool,
    connectors: &[&str],
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(t) FROM (SELECT (SELECT due_at FROM removals WHERE state = 'pending' \
           AND connector = c.value AND due_at <= ?2 ORDER BY due_at LIMIT 1) AS t FROM json_each(?1) AS c)",
    )
    .bind(serde_json::to_string(connectors)?)
    .bind(ts(now))
    .fetch_one(pool)
    .await?)
}

/// When the feed was last polled successfully (changed or not).
pub(in crate::store) async fn last_successful_poll_at(
    pool: &SqlitePool,
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(received_at) FROM batches WHERE source = 'feed' AND status IN ('ok', 'unchanged')",
    )
    .fetch_one(pool)
    .await?)
}

/// A person's attributes (JSON text), if the person is known.
pub(in crate::store) async fn person_attributes(
    pool: &SqlitePool,
    employee_id: &str,
) -> anyhow::Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT attributes FROM people WHERE employee_id = ?1")
            .bind(employee_id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Removals pending and held, for the summary of a run.
pub(in crate::store) async fn pending_and_held(pool: &SqlitePool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'held'), 0) FROM removals",
    )
    .fetch_one(pool)
    .await?)
}

/// Failed removals.
pub(in crate::store) async fn failed_count(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM removals WHERE state = 'failed'")
            .fetch_one(pool)
            .await?,
    )
}

/// Migrations applied to the database.
pub(in crate::store) async fn migrations_applied(pool: &SqlitePool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?)
}

/// Takes and releases the write lock, so a read-only or locked-up database shows.
pub(in crate::store) async fn check_writable(pool: &SqlitePool) -> anyhow::Result<()> {
    let mut tx = tokio::time::timeout(std::time::Duration::from_secs(5), begin_write(pool))
        .await
        .map_err(|_| anyhow::anyhow!("no write lock within 5 s"))??;
    // A write that changes nothing durable: it fails on a read-only database file.
    sqlx::query("CREATE TEMP TABLE IF NOT EXISTS readiness_probe (x INTEGER)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("PRAGMA main.user_version = 0")
        .execute(&mut *tx)
        .await?;
    tx.rollback().await?;
    Ok(())
}

/// The saved state of a feed source.
pub(in crate::store) async fn load_feed_state(
    pool: &SqlitePool,
    source_ref: &str,
) -> anyhow::Result<FeedState> {
    Ok(sqlx::query_as(
        "SELECT etag, last_modified, last_success_at FROM feed_state WHERE source_ref = ?",
    )
    .bind(source_ref)
    .fetch_optional(pool)
    .await?
    .unwrap_or_default())
}

/// Saves the state of a feed source after a successful poll.
pub(in crate::store) async fn save_feed_state(
    pool: &SqlitePool,
    source_ref: &str,
    state: &FeedState,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut tx = begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO feed_state (source_ref, etag, last_modified, last_success_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (source_ref) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified, \
         last_success_at = excluded.last_success_at, updated_at = excluded.updated_at",
    )
    .bind(source_ref)
    .bind(&state.etag)
    .bind(&state.last_modified)
    .bind(&state.last_success_at)
    .bind(ts(now))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
