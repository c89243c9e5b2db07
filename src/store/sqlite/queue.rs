//! The statements of the removal queue: claims (one `UPDATE … RETURNING` that brings the termination and the
//! person along), attempts recorded many per statement through `json_each`, expired leases, wake-ups read from
//! the claim index, operator selections and listings.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::SqlitePool;

use super::Tx;
use crate::connectors::Bound;
use crate::store::queue::{Claimed, Expired, Outcome, RemovalFilter, RemovalView, RetrySelection};
use crate::store::rows::{ACCOUNT_ROW_SQL, AccountRow, ClaimRow, account_row};
use crate::store::ts;

/// Claims the next due pending removals of one connector (`?4`, at most `?5`, due by `?6`) for owner `?1`
/// until `?2`, at `?3`. The subquery reads the partial index `removals_claim`, so it never sorts and never sees a
/// finished removal. RETURNING brings the termination and the person along, so a claim is one statement.
const CLAIM_SQL: &str = "UPDATE removals SET state = 'running', attempts = attempts + 1, lease_owner = ?1, \
     lease_expires_at = ?2, updated_at = ?3 \
     WHERE id IN (SELECT id FROM removals WHERE state = 'pending' AND due_at <= ?6 AND connector = ?4 \
                  ORDER BY due_at, id LIMIT ?5) \
     RETURNING id, termination_id, connector, stage, stage_index, account, attempts, retry_base, credential_refusals, due_at, \
       remote_id, bound_key, remove_sent_at, \
       (SELECT json_object('effective_at', t.effective_at, 'employee_id', p.employee_id, 'email', p.email, \
                           'username', p.username, 'upn', p.upn, 'display_name', p.display_name, \
                           'attributes', p.attributes) \
        FROM terminations t JOIN people p ON p.employee_id = t.employee_id \
        WHERE t.id = removals.termination_id) AS who";

/// Claims the next due pending removals of `connector` (at most `limit`, due by `due_by`, capped at `now`) for
/// `owner` under a lease until `expires`, oldest due first.
pub(in crate::store) async fn claim(
    tx: &mut Tx,
    owner: &str,
    connector: &str,
    limit: u32,
    expires: DateTime<Utc>,
    now: DateTime<Utc>,
    due_by: DateTime<Utc>,
) -> anyhow::Result<Vec<Claimed>> {
    let mut rows: Vec<ClaimRow> = sqlx::query_as(CLAIM_SQL)
        .bind(owner)
        .bind(ts(expires))
        .bind(ts(now))
        .bind(connector)
        .bind(limit)
        .bind(ts(due_by.min(now)))
        .fetch_all(&mut **tx)
        .await?;
    // RETURNING gives no order: work (and audit) oldest due first.
    rows.sort_by(|a, b| (&a.due_at, a.id).cmp(&(&b.due_at, b.id)));
    rows.into_iter().map(|row| row.claimed(owner)).collect()
}

/// Stores the outcome of each attempt in one statement, each fenced by the removal's attempt number and
/// lease owner; returns the `(removal, attempt)` pairs the fence let through.
pub(in crate::store) async fn record(
    tx: &mut Tx,
    outcomes: &[(&Claimed, Outcome)],
    now: DateTime<Utc>,
) -> anyhow::Result<HashSet<(i64, i64)>> {
    let t = ts(now);
    let rows: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|(claim, o)| {
            json!({
                "id": claim.id, "attempt": claim.attempt, "owner": claim.owner,
                "state": o.state.as_str(), "outcome": o.outcome, "remote_id": o.remote_id,
                "last_error": o.last_error, "due_at": o.due_at.map(ts),
                "finished_at": o.finished.then_some(t.as_str()),
                "refused": i64::from(o.credential_refused),
            })
        })
        .collect();
    // Driven by the attempts (a primary-key lookup each); `+state` keeps the planner off the state index.
    Ok(sqlx::query_as(
        "UPDATE removals SET state = c.value->>'state', \
           outcome = COALESCE(c.value->>'outcome', removals.outcome), \
           remote_id = COALESCE(c.value->>'remote_id', removals.remote_id), \
           last_error = c.value->>'last_error', due_at = COALESCE(c.value->>'due_at', removals.due_at), \
           finished_at = c.value->>'finished_at', \
           credential_refusals = removals.credential_refusals + (c.value->>'refused'), lease_owner = NULL, lease_expires_at = NULL, updated_at = ?2 \
         FROM json_each(?1) AS c \
         WHERE removals.id = c.value->>'id' AND +removals.state = 'running' \
           AND removals.attempts = c.value->>'attempt' AND removals.lease_owner = c.value->>'owner' \
         RETURNING removals.id, removals.attempts",
    )
    .bind(serde_json::Value::Array(rows).to_string())
    .bind(&t)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect())
}

/// Binds a running removal to `account` for the attempt that resolved it, fenced by attempt number
/// and lease owner; keeps the earliest `remove_sent_at`. Whether the fence let it through.
pub(in crate::store) async fn bind(
    tx: &mut Tx,
    claim: &Claimed,
    account: &Bound,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let t = ts(now);
    let bound: Option<i64> = sqlx::query_scalar(
        "UPDATE removals SET remote_id = ?1, bound_key = ?2, remove_sent_at = COALESCE(remove_sent_at, ?3), \
           updated_at = ?3 \
         WHERE id = ?4 AND state = 'running' AND attempts = ?5 AND lease_owner = ?6 RETURNING id",
    )
    .bind(&account.id)
    .bind(&account.key)
    .bind(&t)
    .bind(claim.id)
    .bind(claim.attempt)
    .bind(&claim.owner)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(bound.is_some())
}

/// Whether a running removal's lease expired by `now` (a cheap read, outside any transaction).
pub(in crate::store) async fn any_expired(
    pool: &SqlitePool,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM removals WHERE state = 'running' AND lease_expires_at <= ?)",
    )
    .bind(ts(now))
    .fetch_one(pool)
    .await
}

/// The running removals whose lease expired by `now`.
pub(in crate::store) async fn expired(
    tx: &mut Tx,
    now: DateTime<Utc>,
) -> Result<Vec<Expired>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.connector, r.attempts, r.retry_base, r.lease_owner, t.employee_id FROM removals r \
         JOIN terminations t ON t.id = r.termination_id \
         WHERE r.state = 'running' AND r.lease_expires_at <= ?",
    )
    .bind(ts(now))
    .fetch_all(&mut **tx)
    .await
}

/// Every running removal, with its lease owner.
pub(in crate::store) async fn running(tx: &mut Tx) -> Result<Vec<Expired>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, r.connector, r.attempts, r.retry_base, r.lease_owner, t.employee_id FROM removals r \
         JOIN terminations t ON t.id = r.termination_id WHERE r.state = 'running'",
    )
    .fetch_all(&mut **tx)
    .await
}

/// Moves a running removal whose lease expired to `failed` with `error`.
pub(in crate::store) async fn fail_expired(
    tx: &mut Tx,
    id: i64,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE removals SET state = 'failed', outcome = 'failed', last_error = ?1, \
         lease_owner = NULL, lease_expires_at = NULL, finished_at = ?2, updated_at = ?2 \
         WHERE id = ?3 AND state = 'running'",
    )
    .bind(error)
    .bind(ts(now))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Returns a running removal whose lease expired to `pending`, due from the moment its lease ran out.
pub(in crate::store) async fn requeue_expired(
    tx: &mut Tx,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        // The lease's end is read before the column is cleared.
        "UPDATE removals SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
         due_at = MIN(lease_expires_at, ?1), updated_at = ?1 WHERE id = ?2 AND state = 'running'",
    )
    .bind(ts(now))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The earliest pending due time of `connectors` or running lease expiry: the next due removal of each
/// connector (from `removals_claim`) and the running removals, which are few.
pub(in crate::store) async fn next_wakeup(
    pool: &SqlitePool,
    connectors: &[String],
) -> anyhow::Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT MIN(t) FROM ( \
           SELECT (SELECT due_at FROM removals WHERE state = 'pending' AND connector = c.value \
                   ORDER BY due_at LIMIT 1) AS t FROM json_each(?) AS c \
           UNION ALL \
           SELECT (SELECT lease_expires_at FROM removals WHERE state = 'running' \
                   ORDER BY lease_expires_at LIMIT 1))",
    )
    .bind(serde_json::to_string(connectors)?)
    .fetch_one(pool)
    .await?)
}

/// How many removals of `connector` are due by `now`.
pub(in crate::store) async fn count_due(
    pool: &SqlitePool,
    connector: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM removals WHERE state = 'pending' AND connector = ? AND due_at <= ?",
    )
    .bind(connector)
    .bind(ts(now))
    .fetch_one(pool)
    .await
}

/// The status of a termination, if it exists.
pub(in crate::store) async fn termination_status(
    pool: &SqlitePool,
    termination_id: i64,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT status FROM terminations WHERE id = ?")
        .bind(termination_id)
        .fetch_optional(pool)
        .await
}

/// Whether the person of a termination has an active termination now (a later one, after a rescind).
pub(in crate::store) async fn terminated_again(
    pool: &SqlitePool,
    termination_id: i64,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM terminations a JOIN terminations t ON t.employee_id = a.employee_id \
         WHERE t.id = ? AND a.status = 'active')",
    )
    .bind(termination_id)
    .fetch_one(pool)
    .await
}

/// Removals as the CLI lists them, oldest due first.
pub(in crate::store) async fn list(
    pool: &SqlitePool,
    filter: &RemovalFilter,
) -> Result<Vec<RemovalView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.id, t.employee_id, r.connector, r.stage, r.account, r.state, r.due_at, r.attempts, \
                r.outcome, r.last_error, t.effective_at, r.finished_at \
         FROM removals r JOIN terminations t ON t.id = r.termination_id \
         WHERE (?1 IS NULL OR r.state = ?1) AND (?2 IS NULL OR r.connector = ?2) AND (?3 IS NULL OR t.employee_id = ?3) \
           AND (?4 IS NULL OR r.id = ?4) AND (?5 IS NULL OR r.batch_id = ?5) \
         ORDER BY r.due_at, r.id LIMIT ?6",
    )
    .bind(filter.state.map(|s| s.as_str()))
    .bind(&filter.connector)
    .bind(&filter.employee_id)
    .bind(filter.id)
    .bind(filter.batch_id)
    .bind(filter.limit.map_or(i64::MAX, i64::from))
    .fetch_all(pool)
    .await
}

/// Removals by connector and state.
pub(in crate::store) async fn counts(
    pool: &SqlitePool,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT connector, state, COUNT(*) FROM removals GROUP BY connector, state")
        .fetch_all(pool)
        .await
}

/// The removals an operator's retry selects: id, connector, state and employee.
pub(in crate::store) async fn selected(
    tx: &mut Tx,
    selection: &RetrySelection,
) -> Result<Vec<(i64, String, String, String)>, sqlx::Error> {
    match selection {
        RetrySelection::One(id) => {
            sqlx::query_as(
                "SELECT r.id, r.connector, r.state, t.employee_id FROM removals r \
                 JOIN terminations t ON t.id = r.termination_id WHERE r.id = ?",
            )
            .bind(id)
            .fetch_all(&mut **tx)
            .await
        }
        RetrySelection::Failed { connector } => {
            sqlx::query_as(
                "SELECT r.id, r.connector, r.state, t.employee_id FROM removals r \
                 JOIN terminations t ON t.id = r.termination_id \
                 WHERE r.state = 'failed' AND (?1 IS NULL OR r.connector = ?1) ORDER BY r.id",
            )
            .bind(connector)
            .fetch_all(&mut **tx)
            .await
        }
    }
}

/// One removal's connector, state and employee.
pub(in crate::store) async fn removal(
    tx: &mut Tx,
    id: i64,
) -> Result<Option<(String, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.connector, r.state, t.employee_id FROM removals r \
         JOIN terminations t ON t.id = r.termination_id WHERE r.id = ?",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Each removal of `ids` with what its account is made from: the person as stored now.
pub(in crate::store) async fn account_sources(
    tx: &mut Tx,
    ids: &[i64],
) -> anyhow::Result<Vec<crate::store::queue::AccountSource>> {
    let rows: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ACCOUNT_ROW_SQL} WHERE r.id IN (SELECT value FROM json_each(?)) ORDER BY r.id"
    )))
    .bind(serde_json::to_string(ids)?)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(account_row).collect()
}

/// The removals that failed at planning for want of an account (a field the template needs was
/// missing, or the kind refused the key) and whose termination is still active.
pub(in crate::store) async fn failed_without_account(
    tx: &mut Tx,
) -> anyhow::Result<Vec<crate::store::queue::AccountSource>> {
    let rows: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{ACCOUNT_ROW_SQL} WHERE r.state = 'failed' AND r.account IS NULL AND t.status = 'active' ORDER BY r.id"
    )))
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(account_row).collect()
}

/// Sets a removal's account; a changed account also drops the binding to the old one's vendor account.
pub(in crate::store) async fn set_account(
    tx: &mut Tx,
    id: i64,
    account: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE removals SET account = ?1, updated_at = ?2, \
           remote_id = CASE WHEN account IS ?1 THEN remote_id END, \
           bound_key = CASE WHEN account IS ?1 THEN bound_key END, \
           remove_sent_at = CASE WHEN account IS ?1 THEN remove_sent_at END \
         WHERE id = ?3",
    )
    .bind(account)
    .bind(ts(now))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a failed removal to `pending`, due at `due_at`, with a fresh attempt budget.
pub(in crate::store) async fn replan(
    tx: &mut Tx,
    id: i64,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE removals SET state = 'pending', due_at = ?1, retry_base = attempts, credential_refusals = 0, \
           outcome = NULL, last_error = NULL, finished_at = NULL, updated_at = ?2 \
         WHERE id = ?3 AND state = 'failed'",
    )
    .bind(ts(due_at))
    .bind(ts(now))
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

/// Whether attempt `attempt` of removal `id` already has its completion (or its refusal) in the audit log.
pub(in crate::store) async fn completion_recorded(
    tx: &mut Tx,
    id: i64,
    attempt: i64,
) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM audit_log WHERE removal_id = $1 AND attempt = $2 \
           AND event IN ('removal_done', 'removal_planned_dry_run', 'removal_retry_scheduled', \
                         'removal_failed', 'removal_cancelled', 'stale_completion_refused') LIMIT 1) AS c",
    )
    .bind(id)
    .bind(attempt)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql` as one line per step.
    async fn plan(pool: &SqlitePool, sql: &str) -> String {
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(pool)
                .await
                .unwrap();
        rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n")
    }

    #[tokio::test]
    async fn claims_and_wake_ups_read_small_indexes_and_never_sort() {
        let dir = tempfile::tempdir().unwrap();
        let pool = super::super::connect(
            &dir.path().join("q.db"),
            1,
            std::time::Duration::from_secs(5),
        )
        .await
        .unwrap();
        super::super::migrate(&pool).await.unwrap();

        let claim = plan(&pool, CLAIM_SQL).await;
        assert!(claim.contains("INDEX removals_claim"), "{claim}");
        assert!(!claim.contains("TEMP B-TREE"), "{claim}");
        let record = plan(
            &pool,
            "UPDATE removals SET state = c.value->>'state' FROM json_each(?1) AS c \
             WHERE removals.id = c.value->>'id' AND +removals.state = 'running'",
        )
        .await;
        assert!(record.contains("INTEGER PRIMARY KEY"), "{record}");
        let wake = plan(
            &pool,
            "SELECT due_at FROM removals WHERE state = 'pending' AND connector = ?1 ORDER BY due_at LIMIT 1",
        )
        .await;
        assert!(wake.contains("INDEX removals_claim"), "{wake}");
        assert!(!wake.contains("TEMP B-TREE"), "{wake}");
        let oldest = plan(
            &pool,
            "SELECT id FROM removals WHERE state = 'pending' AND connector = ?1 AND due_at <= ?2 \
             ORDER BY due_at, id LIMIT 1",
        )
        .await;
        assert!(oldest.contains("INDEX removals_claim"), "{oldest}");
        assert!(!oldest.contains("TEMP B-TREE"), "{oldest}");
    }
}
