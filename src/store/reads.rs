//! Reads for the views (status, report, metrics, the CLI) and the small state the daemon keeps
//! beside the queue (feed validators, readiness).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::{Pool, begin_write, ts};

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

/// The oldest due, pending removal of `connector` (read from the claim index).
pub async fn oldest_due(
    pool: &Pool,
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

/// The latest failed removals, newest first.
pub async fn recent_failures(pool: &Pool, limit: u32) -> anyhow::Result<Vec<FailedRemoval>> {
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
pub async fn rehired_after_removal(pool: &Pool, limit: u32) -> anyhow::Result<Vec<Rehired>> {
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
pub async fn last_feed_batch(pool: &Pool, ok_only: bool) -> anyhow::Result<Option<LastPoll>> {
    let sql = if ok_only {
        "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
         WHERE source = 'feed' AND status = 'ok' ORDER BY id DESC LIMIT 1"
    } else {
        "SELECT id, received_at, status, error, rows, rejected, new_terminations FROM batches \
         WHERE source = 'feed' ORDER BY id DESC LIMIT 1"
    };
    Ok(sqlx::query_as(sql).fetch_optional(pool).await?)
}

/// One removal with its termination and batches, as the report reads it.
#[derive(Debug, Clone, FromRow)]
pub struct ReportSource {
    /// The termination.
    pub termination_id: i64,
    /// The leaver.
    pub employee_id: String,
    /// When the termination took effect.
    pub effective_at: String,
    /// When its batch was received.
    pub received_at: String,
    /// feed, push or cli.
    pub source: String,
    /// The connector.
    pub connector: String,
    /// The removal's state.
    pub state: String,
    /// Its outcome.
    pub outcome: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Its last error or note.
    pub last_error: Option<String>,
    /// Whether the removal's batch was held by the guard (1) or not (0).
    pub batch_held: i64,
}

/// Every removal of terminations effective in `[since, until)`, optionally of one connector, in
/// effective time, employee and connector order.
pub async fn report_sources(
    pool: &Pool,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    connector: Option<&str>,
) -> anyhow::Result<Vec<ReportSource>> {
    Ok(sqlx::query_as(
        "SELECT t.id AS termination_id, t.employee_id, t.effective_at, b.received_at, t.source, r.connector, r.state, \
                r.outcome, r.finished_at, r.last_error, rb.held AS batch_held \
         FROM terminations t JOIN batches b ON b.id = t.batch_id \
         JOIN removals r ON r.termination_id = t.id JOIN batches rb ON rb.id = r.batch_id \
         WHERE (?1 IS NULL OR t.effective_at >= ?1) AND (?2 IS NULL OR t.effective_at < ?2) \
           AND (?3 IS NULL OR r.connector = ?3) \
         ORDER BY t.effective_at, t.employee_id, r.connector",
    )
    .bind(since.map(ts))
    .bind(until.map(ts))
    .bind(connector)
    .fetch_all(pool)
    .await?)
}

/// Batches waiting for approve or reject.
pub async fn undecided_held_batches(pool: &Pool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM batches WHERE held = 1 AND decision IS NULL")
            .fetch_one(pool)
            .await?,
    )
}

/// The oldest due time over the pending removals of `connectors`, each read from the claim index.
pub async fn oldest_due_at(
    pool: &Pool,
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
pub async fn last_successful_poll_at(pool: &Pool) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT MAX(received_at) FROM batches WHERE source = 'feed' AND status IN ('ok', 'unchanged')",
    )
    .fetch_one(pool)
    .await?)
}

/// Removals pending and held, for the summary of a run.
pub async fn pending_and_held(pool: &Pool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'held'), 0) FROM removals",
    )
    .fetch_one(pool)
    .await?)
}

/// Failed removals.
pub async fn failed_count(pool: &Pool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM removals WHERE state = 'failed'")
            .fetch_one(pool)
            .await?,
    )
}

/// Migrations applied to the database.
pub async fn migrations_applied(pool: &Pool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?)
}

/// Takes and releases the write lock, so a read-only or locked-up database shows.
pub async fn check_writable(pool: &Pool) -> anyhow::Result<()> {
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

/// What the last successful poll of a feed source saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct FeedState {
    /// The ETag the server sent.
    pub etag: Option<String>,
    /// The Last-Modified the server sent.
    pub last_modified: Option<String>,
    /// When the last successful poll started (the incremental cursor).
    pub last_success_at: Option<String>,
}

/// The saved state of a feed source.
pub async fn load_feed_state(pool: &Pool, source_ref: &str) -> anyhow::Result<FeedState> {
    Ok(sqlx::query_as(
        "SELECT etag, last_modified, last_success_at FROM feed_state WHERE source_ref = ?",
    )
    .bind(source_ref)
    .fetch_optional(pool)
    .await?
    .unwrap_or_default())
}

/// Saves the state of a feed source after a successful poll.
pub async fn save_feed_state(
    pool: &Pool,
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
