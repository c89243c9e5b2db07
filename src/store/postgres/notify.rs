//! The statements of the notification outbox, on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Tx;
use crate::store::notify::NotifyEvent;
use crate::store::ts;

/// Adds an event once (by its key) in the caller's transaction.
pub(in crate::store) async fn add(
    tx: &mut Tx,
    key: &str,
    event: &str,
    summary: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notify_events (key, event, at, summary, detail) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(event)
    .bind(ts(now))
    .bind(summary)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Removals not done, of active terminations effective by `now`: id, connector, state, employee and
/// effective time (for the SLA scan).
pub(in crate::store) async fn open_removals(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<Vec<(i64, String, String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.connector, r.state, t.employee_id, t.effective_at FROM removals r \
         JOIN terminations t ON t.id = r.termination_id \
         WHERE r.state IN ('held', 'pending', 'on_hold', 'running', 'failed') AND r.stage_index = 0 AND t.status = 'active' AND t.effective_at <= $1",
    )
    .bind(ts(now))
    .fetch_all(pool)
    .await
}

/// The events of `kinds` not yet delivered to `channel` whose next try is due, oldest first.
pub(in crate::store) async fn due(
    pool: &PgPool,
    channel: &str,
    kinds: &[&str],
    now: DateTime<Utc>,
    limit: u32,
) -> anyhow::Result<Vec<NotifyEvent>> {
    Ok(sqlx::query_as(
        "SELECT e.id, e.key, e.event, e.at, e.summary, e.detail, COALESCE(d.attempts, 0)::BIGINT AS attempts \
         FROM notify_events e LEFT JOIN notify_deliveries d ON d.event_id = e.id AND d.channel = $1 \
         WHERE e.event = ANY($2) AND d.sent_at IS NULL \
           AND (d.next_at IS NULL OR d.next_at <= $3) \
         ORDER BY e.id LIMIT $4",
    )
    .bind(channel)
    .bind(kinds)
    .bind(ts(now))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?)
}

/// Records a delivery, or a failed try and when to try again.
pub(in crate::store) async fn record(
    pool: &PgPool,
    event_id: i64,
    channel: &str,
    error: Option<&str>,
    next_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notify_deliveries (event_id, channel, attempts, next_at, sent_at, last_error) \
         VALUES ($1, $2, 1, $3, CASE WHEN $4 IS NULL THEN $5 END, $4) \
         ON CONFLICT (event_id, channel) DO UPDATE SET attempts = notify_deliveries.attempts + 1, next_at = $3, \
           sent_at = CASE WHEN $4 IS NULL THEN $5 END, last_error = $4",
    )
    .bind(event_id)
    .bind(channel)
    .bind(next_at.map(ts))
    .bind(error)
    .bind(ts(now))
    .execute(pool)
    .await?;
    Ok(())
}
