//! The statements of the time-to-revoke figures on SQLite: seconds from `julianday`, weeks from the
//! Unix day, percentiles with `ROW_NUMBER()`.

use sqlx::SqlitePool;

use crate::store::revoke::{CountedBreach, RevokeCounts, RevokeWeek};

/// Every removal of leavers effective since `$1` (the first stage of a staged connector: the one that
/// removes access; a later deletion is not time to revoke), with when access was removed (the first removing
/// call's time for a removal whose answer was lost, as `report` gives it).
const REMOVALS: &str = "SELECT r.connector AS connector, r.state AS state, t.effective_at AS effective_at, \
       t.employee_id AS employee_id, t.id AS termination_id, r.last_error AS last_error, \
       CASE WHEN r.outcome = 'removed_unconfirmed' THEN COALESCE(r.remove_sent_at, r.finished_at) \
            ELSE r.finished_at END AS removed_at \
     FROM removals r JOIN terminations t ON t.id = r.termination_id \
     WHERE t.effective_at >= $1 AND r.stage_index = 0";

/// Seconds from the effective time to the removal (truncated, as `chrono`'s `num_seconds`).
const SECONDS: &str = "CAST((julianday(removed_at) - julianday(effective_at)) * 86400 AS INTEGER)";

pub(in crate::store) async fn weeks(
    pool: &SqlitePool,
    since: &str,
) -> Result<Vec<RevokeWeek>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH d AS ({REMOVALS}), \
         s AS (SELECT connector, CAST((julianday(effective_at) - 2440587.5 - 4) / 7 AS INTEGER) AS wk, \
                      {SECONDS} AS s FROM d WHERE state = 'done' AND removed_at IS NOT NULL), \
         r AS (SELECT connector, wk, s, ROW_NUMBER() OVER (PARTITION BY connector, wk ORDER BY s) AS rn, \
                      COUNT(*) OVER (PARTITION BY connector, wk) AS n FROM s) \
         SELECT connector, wk AS week, MAX(n) AS n, MAX(CASE WHEN rn = (n + 1) / 2 THEN s END) AS median_s, \
                MAX(CASE WHEN rn = (95 * n + 99) / 100 THEN s END) AS p95_s, MAX(s) AS worst_s \
         FROM r GROUP BY connector, wk ORDER BY connector, wk"
    )))
    .bind(since)
    .fetch_all(pool)
    .await
}

pub(in crate::store) async fn counts(
    pool: &SqlitePool,
    since: &str,
) -> Result<RevokeCounts, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH d AS ({REMOVALS}), \
         s AS (SELECT {SECONDS} AS s FROM d WHERE state = 'done' AND removed_at IS NOT NULL), \
         r AS (SELECT s, ROW_NUMBER() OVER (ORDER BY s) AS rn, COUNT(*) OVER () AS n FROM s) \
         SELECT COUNT(DISTINCT termination_id) AS leavers, COUNT(*) AS removals, \
                COUNT(*) FILTER (WHERE state = 'done') AS done, \
                COUNT(*) FILTER (WHERE state NOT IN ('done', 'failed', 'cancelled', 'planned')) AS open, \
                COUNT(*) FILTER (WHERE state = 'failed') AS failed, \
                COUNT(*) FILTER (WHERE state = 'cancelled') AS cancelled, \
                COUNT(*) FILTER (WHERE state = 'planned') AS planned, \
                (SELECT MAX(CASE WHEN rn = (n + 1) / 2 THEN s END) FROM r) AS median_low_s, \
                (SELECT MAX(CASE WHEN rn = n / 2 + 1 THEN s END) FROM r) AS median_high_s, \
                (SELECT MAX(s) FROM r) AS worst_s \
         FROM d"
    )))
    .bind(since)
    .fetch_one(pool)
    .await
}

pub(in crate::store) async fn breaches(
    pool: &SqlitePool,
    since: &str,
    connector: &str,
    limit_ms: i64,
    cutoff: &str,
    max: i64,
) -> Result<Vec<CountedBreach>, sqlx::Error> {
    let late = format!(
        "WITH d AS ({REMOVALS}) SELECT employee_id, connector, effective_at, state, removed_at, last_error \
         FROM d WHERE connector = $2 AND ((state = 'done' AND removed_at IS NOT NULL \
           AND (julianday(removed_at) - julianday(effective_at)) * 86400000 > $3) \
           OR (state IN ('held', 'planned', 'failed', 'pending', 'on_hold', 'running') AND effective_at < $4))"
    );
    // One pass: the rows asked for, each carrying how many there are in all.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) OVER () AS total, late.* FROM ({late}) AS late \
             ORDER BY effective_at, employee_id LIMIT $5"
    )))
    .bind(since)
    .bind(connector)
    .bind(limit_ms)
    .bind(cutoff)
    .bind(max)
    .fetch_all(pool)
    .await
}
