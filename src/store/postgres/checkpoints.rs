//! The statements of the checkpoint outbox, on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::store::ts;

/// Adds a signed checkpoint to the outbox (once per sequence number).
pub(in crate::store) async fn add(
    pool: &PgPool,
    seq: i64,
    line: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO checkpoint_outbox (seq, line, created_at) VALUES ($1, $2, $3) ON CONFLICT (seq) DO NOTHING")
        .bind(seq)
        .bind(line)
        .bind(ts(now))
        .execute(pool)
        .await?;
    Ok(())
}

/// The checkpoints not yet delivered, oldest first.
pub(in crate::store) async fn unsent(pool: &PgPool) -> Result<Vec<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, line FROM checkpoint_outbox WHERE sent_at IS NULL ORDER BY seq")
        .fetch_all(pool)
        .await
}

/// Records a delivery, or a failed try with its error.
pub(in crate::store) async fn record(
    pool: &PgPool,
    seq: i64,
    error: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE checkpoint_outbox SET attempts = attempts + 1, last_error = $1, \
         sent_at = CASE WHEN $1 IS NULL THEN $2 END WHERE seq = $3",
    )
    .bind(error)
    .bind(ts(now))
    .bind(seq)
    .execute(pool)
    .await?;
    Ok(())
}
