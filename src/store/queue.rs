//! The SQL of the removal queue: claim, record attempts (fenced), reclaim expired leases, when the
//! next removal falls due. Operator actions and listings are `removals.rs`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{FromRow, SqlitePool};

use crate::audit::{self, Entry};
use crate::connectors::VendorCall;
use crate::domain::{Person, RemovalState};
use crate::store::{Tx, begin_write, parse_ts, ts};

pub use super::removals::{
    RemovalFilter, RemovalView, RetrySelection, cancel, counts, list, retry,
};

/// A removal claimed by a worker, with what the connector needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Removal id.
    pub id: i64,
    /// Its termination.
    pub termination_id: i64,
    /// Connector name.
    pub connector: String,
    /// The account key, if the template could be rendered.
    pub account: Option<String>,
    /// This attempt's number (the fence).
    pub attempt: i64,
    /// Attempts spent before the last operator retry.
    pub retry_base: i64,
    /// Earlier attempts whose credentials the vendor refused (since the last operator retry).
    pub credential_refusals: i64,
    /// The lease owner.
    pub owner: String,
    /// The termination's effective time.
    pub effective_at: DateTime<Utc>,
    /// The person.
    pub person: Person,
}

#[derive(FromRow)]
struct ClaimRow {
    id: i64,
    termination_id: i64,
    connector: String,
    account: Option<String>,
    attempts: i64,
    retry_base: i64,
    credential_refusals: i64,
    due_at: String,
    /// The termination and the person, as a JSON object ([`Who`]).
    who: Option<String>,
}

/// The termination and person columns a claim brings along.
#[derive(serde::Deserialize)]
struct Who {
    effective_at: String,
    employee_id: String,
    email: Option<String>,
    username: Option<String>,
    upn: Option<String>,
    display_name: Option<String>,
    attributes: String,
}

/// Claims up to `limit` due removals of `connector` for `owner`, each under a lease until `now + lease`.
/// One short `BEGIN IMMEDIATE` transaction; each claim is audited.
pub async fn claim(
    pool: &SqlitePool,
    owner: &str,
    connector: &str,
    limit: u32,
    lease: Duration,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Claimed>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let turn = record_and_claim(
        pool,
        &[],
        &[(connector, limit)],
        limit,
        owner,
        lease,
        now,
        now,
    )
    .await?;
    Ok(turn.claimed)
}

/// A finished attempt for [`record_and_claim`]: the claim, the vendor calls it made, and how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The claim the attempt worked on.
    pub claim: Claimed,
    /// Its vendor calls, in order.
    pub calls: Vec<VendorCall>,
    /// How it ended.
    pub completion: Completion,
}

/// What one [`record_and_claim`] did.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// For each recorded attempt, in order: applied, or refused by the fence.
    pub applied: Vec<Applied>,
    /// The removals claimed, per connector in the order asked, each connector's oldest due first.
    pub claimed: Vec<Claimed>,
}

/// One turn of the worker loop in one short `BEGIN IMMEDIATE` transaction, so the whole turn costs a
/// single commit: records `finished` attempts (each fenced as [`complete`] does), then claims, for each
/// `(connector, limit)` of `wanted` in turn, up to `limit` due removals for `owner` under a lease until
/// `now + lease`, and no more than `total` over all connectors. Only removals due at or before `due_by`
/// (capped at `now`) are claimed: a drain takes what was due when it started, never a retry it scheduled
/// itself. Every change is audited in the same transaction.
#[allow(clippy::too_many_arguments)]
pub async fn record_and_claim(
    pool: &SqlitePool,
    finished: &[Attempt],
    wanted: &[(&str, u32)],
    total: u32,
    owner: &str,
    lease: Duration,
    now: DateTime<Utc>,
    due_by: DateTime<Utc>,
) -> anyhow::Result<Turn> {
    let expires = now + chrono::Duration::from_std(lease)?;
    let mut tx = begin_write(pool).await?;
    let mut chain = audit::Chain::start(&mut tx).await?;
    let mut turn = Turn {
        applied: record_all(&mut tx, &mut chain, finished, now).await?,
        claimed: Vec::new(),
    };
    let mut left = total;
    for (connector, limit) in wanted {
        let limit = left.min(*limit);
        if limit > 0 {
            let claimed = claim_in(
                &mut tx, &mut chain, owner, connector, limit, expires, now, due_by,
            )
            .await?;
            left -= u32::try_from(claimed.len()).unwrap_or(limit).min(limit);
            turn.claimed.extend(claimed);
        }
    }
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(turn)
}

/// Claims the next due pending removals of one connector (`?4`, at most `?5`, due by `?6`) for owner `?1`
/// until `?2`, at `?3`. The subquery reads the partial index `removals_claim`, so it never sorts and never sees a
/// finished removal. RETURNING brings the termination and the person along, so a claim is one statement.
const CLAIM_SQL: &str = "UPDATE removals SET state = 'running', attempts = attempts + 1, lease_owner = ?1, \
     lease_expires_at = ?2, updated_at = ?3 \
     WHERE id IN (SELECT id FROM removals WHERE state = 'pending' AND due_at <= ?6 AND connector = ?4 \
                  ORDER BY due_at, id LIMIT ?5) \
     RETURNING id, termination_id, connector, account, attempts, retry_base, credential_refusals, due_at, \
       (SELECT json_object('effective_at', t.effective_at, 'employee_id', p.employee_id, 'email', p.email, \
                           'username', p.username, 'upn', p.upn, 'display_name', p.display_name, \
                           'attributes', p.attributes) \
        FROM terminations t JOIN people p ON p.employee_id = t.employee_id \
        WHERE t.id = removals.termination_id) AS who";

#[allow(clippy::too_many_arguments)]
async fn claim_in(
    tx: &mut Tx,
    chain: &mut audit::Chain,
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
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let who: Who = serde_json::from_str(row.who.as_deref().unwrap_or("null")).map_err(|e| {
            anyhow::anyhow!(
                "removal {}: its termination or person is missing: {e}",
                row.id
            )
        })?;
        chain.push(
            now,
            Entry::daemon("removal_claimed")
                .employee(&who.employee_id)
                .connector(&row.connector)
                .removal(row.id)
                .attempt(row.attempts)
                .detail(json!({"from": "pending", "to": "running", "lease_owner": owner, "lease_expires_at": ts(expires)})),
        );
        claimed.push(Claimed {
            id: row.id,
            termination_id: row.termination_id,
            connector: row.connector,
            account: row.account,
            attempt: row.attempts,
            retry_base: row.retry_base,
            credential_refusals: row.credential_refusals,
            owner: owner.to_string(),
            effective_at: parse_ts(&who.effective_at)?,
            person: Person {
                employee_id: who.employee_id,
                email: who.email,
                username: who.username,
                upn: who.upn,
                display_name: who.display_name,
                attributes: serde_json::from_str(&who.attributes).unwrap_or_default(),
            },
        });
    }
    Ok(claimed)
}

/// How an attempt ended, as the worker decided.
#[derive(Debug, Clone)]
pub enum Completion {
    /// Access is gone.
    Done {
        /// removed, deactivated or already_absent.
        outcome: String,
        /// The vendor's id for the account.
        remote_id: Option<String>,
    },
    /// Dry-run: what would have been done.
    Planned {
        /// In words.
        would: String,
        /// The vendor's id for the account, if resolved.
        remote_id: Option<String>,
    },
    /// Try again at `due_at`.
    Retry {
        /// Why the attempt failed.
        error: String,
        /// When to try again.
        due_at: DateTime<Utc>,
        /// The backoff ceiling that the wait was drawn under.
        ceiling: Duration,
        /// The vendor's Retry-After, if any.
        retry_after: Option<Duration>,
        /// The vendor refused the connector's credentials (counted toward the credential policy).
        credential_refused: bool,
    },
    /// Dead letter.
    Failed {
        /// Why.
        error: String,
    },
    /// Not done because the termination was rescinded meanwhile.
    Cancelled {
        /// Why.
        reason: String,
    },
}

/// Whether a completion was applied or refused by the fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The removal moved to its new state.
    Applied,
    /// A newer attempt owns the removal (this worker's lease expired): nothing changed but the audit.
    Stale,
}

/// Records an attempt's vendor calls and its outcome in one transaction, fenced by the attempt
/// number and lease owner so a worker whose lease expired cannot overwrite a newer attempt.
pub async fn complete(
    pool: &SqlitePool,
    claim: &Claimed,
    calls: &[VendorCall],
    completion: &Completion,
    now: DateTime<Utc>,
) -> anyhow::Result<Applied> {
    let attempt = Attempt {
        claim: claim.clone(),
        calls: calls.to_vec(),
        completion: completion.clone(),
    };
    let turn = record_and_claim(
        pool,
        &[attempt],
        &[],
        0,
        &claim.owner,
        Duration::ZERO,
        now,
        now,
    )
    .await?;
    turn.applied
        .first()
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the completion was not recorded"))
}

/// The new column values of a removal after an attempt.
struct Outcome {
    state: RemovalState,
    outcome: Option<String>,
    remote_id: Option<String>,
    last_error: Option<String>,
    due_at: Option<String>,
    finished_at: Option<String>,
    credential_refused: bool,
}

/// The state an attempt leaves its removal in.
fn state_of(completion: &Completion) -> RemovalState {
    match completion {
        Completion::Done { .. } => RemovalState::Done,
        Completion::Planned { .. } => RemovalState::Planned,
        Completion::Retry { .. } => RemovalState::Pending,
        Completion::Failed { .. } => RemovalState::Failed,
        Completion::Cancelled { .. } => RemovalState::Cancelled,
    }
}

fn outcome_of(completion: &Completion, now: &str) -> Outcome {
    let finished = |state,
                    outcome: Option<&str>,
                    remote_id: &Option<String>,
                    last_error: Option<&String>| Outcome {
        state,
        outcome: outcome.map(str::to_string),
        remote_id: remote_id.clone(),
        last_error: last_error.cloned(),
        due_at: None,
        finished_at: Some(now.to_string()),
        credential_refused: false,
    };
    match completion {
        Completion::Done { outcome, remote_id } => {
            finished(RemovalState::Done, Some(outcome), remote_id, None)
        }
        Completion::Planned { would, remote_id } => finished(
            RemovalState::Planned,
            Some("planned"),
            remote_id,
            Some(would),
        ),
        Completion::Retry {
            error,
            due_at,
            credential_refused,
            ..
        } => Outcome {
            state: RemovalState::Pending,
            outcome: None,
            remote_id: None,
            last_error: Some(error.clone()),
            due_at: Some(ts(*due_at)),
            finished_at: None,
            credential_refused: *credential_refused,
        },
        Completion::Failed { error } => {
            finished(RemovalState::Failed, Some("failed"), &None, Some(error))
        }
        Completion::Cancelled { reason } => finished(
            RemovalState::Cancelled,
            Some("cancelled"),
            &None,
            Some(reason),
        ),
    }
}

/// Records attempts in the caller's transaction: every outcome in one statement, each fenced by the
/// removal's attempt number and lease owner, then per attempt its vendor calls and its outcome (or the
/// refusal) in the audit chain. Returns, per attempt, whether the fence let it through.
async fn record_all(
    tx: &mut Tx,
    chain: &mut audit::Chain,
    attempts: &[Attempt],
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<Applied>> {
    if attempts.is_empty() {
        return Ok(Vec::new());
    }
    let t = ts(now);
    let rows: Vec<serde_json::Value> = attempts
        .iter()
        .map(|a| {
            let o = outcome_of(&a.completion, &t);
            json!({
                "id": a.claim.id, "attempt": a.claim.attempt, "owner": a.claim.owner,
                "state": o.state.as_str(), "outcome": o.outcome, "remote_id": o.remote_id,
                "last_error": o.last_error, "due_at": o.due_at, "finished_at": o.finished_at,
                "refused": i64::from(o.credential_refused),
            })
        })
        .collect();
    // Driven by the attempts (a primary-key lookup each); `+state` keeps the planner off the state index.
    let applied: std::collections::HashSet<(i64, i64)> = sqlx::query_as(
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
    .collect();
    Ok(attempts
        .iter()
        .map(|a| {
            audit_attempt(
                chain,
                a,
                applied.contains(&(a.claim.id, a.claim.attempt)),
                now,
            )
        })
        .collect())
}

/// Pushes an attempt's vendor calls and its outcome (or the fence's refusal) onto the audit chain.
fn audit_attempt(
    chain: &mut audit::Chain,
    attempt: &Attempt,
    applied: bool,
    now: DateTime<Utc>,
) -> Applied {
    let Attempt {
        claim,
        calls,
        completion,
    } = attempt;
    for call in calls {
        chain.push(
            now,
            Entry::daemon("vendor_call")
                .employee(&claim.person.employee_id)
                .connector(&claim.connector)
                .removal(claim.id)
                .attempt(claim.attempt)
                .outcome(if call.error.is_some() { "error" } else { "ok" })
                .detail(json!({
                    "operation": call.operation,
                    "exit_code": call.exit_code,
                    "error": call.error,
                    "evidence": call.evidence,
                }))
                .with_call(call),
        );
    }
    let state = state_of(completion);
    let entry = Entry::daemon("removal_attempt")
        .employee(&claim.person.employee_id)
        .connector(&claim.connector)
        .removal(claim.id)
        .attempt(claim.attempt);
    if applied {
        let (event, detail) = match completion {
            Completion::Done { outcome, remote_id } => (
                "removal_done",
                json!({"from": "running", "to": "done", "outcome": outcome, "remote_id": vendor_id(claim, remote_id)}),
            ),
            Completion::Planned { would, remote_id } => (
                "removal_planned_dry_run",
                json!({"from": "running", "to": "planned", "would": would, "remote_id": vendor_id(claim, remote_id)}),
            ),
            Completion::Retry {
                error,
                due_at,
                ceiling,
                retry_after,
                ..
            } => (
                "removal_retry_scheduled",
                json!({
                    "from": "running", "to": "pending", "error": error, "next_due_at": ts(*due_at),
                    "retry_in_ms": (*due_at - now).num_milliseconds(),
                    "backoff_ceiling_ms": u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX),
                    "retry_after_ms": retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                }),
            ),
            Completion::Failed { error } => (
                "removal_failed",
                json!({"from": "running", "to": "failed", "error": error}),
            ),
            Completion::Cancelled { reason } => (
                "removal_cancelled",
                json!({"from": "running", "to": "cancelled", "reason": reason}),
            ),
        };
        let mut entry = entry.detail(detail).outcome(state.as_str());
        entry.event = event;
        chain.push(now, entry);
        Applied::Applied
    } else {
        let mut entry = entry.outcome("refused").detail(json!({
            "reason": "the lease of this attempt expired and the removal was reclaimed; this late result was not applied",
            "lease_owner": claim.owner,
            "late_result": completion_name(completion),
        }));
        entry.event = "stale_completion_refused";
        chain.push(now, entry);
        Applied::Stale
    }
}

/// The vendor's own id for the audit detail; left out when it is just the account key (often an
/// email), which the audit log does not hold.
fn vendor_id<'a>(claim: &Claimed, remote_id: &'a Option<String>) -> Option<&'a str> {
    remote_id
        .as_deref()
        .filter(|id| Some(*id) != claim.account.as_deref())
}

fn completion_name(c: &Completion) -> &'static str {
    match c {
        Completion::Done { .. } => "done",
        Completion::Planned { .. } => "planned",
        Completion::Retry { .. } => "retry",
        Completion::Failed { .. } => "failed",
        Completion::Cancelled { .. } => "cancelled",
    }
}

impl Entry {
    fn with_call(mut self, call: &VendorCall) -> Self {
        self.http_status = call.http_status.map(i64::from);
        self.duration_ms = Some(i64::try_from(call.duration_ms).unwrap_or(i64::MAX));
        self
    }
}

/// What [`reclaim_expired`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Removals returned to `pending`, to be tried again.
    pub requeued: u64,
    /// Removals moved to `failed`: their attempts, the cut-short ones included, reached the connector's
    /// `max_attempts`.
    pub failed: u64,
}

/// Returns running removals whose lease expired to `pending`, due from the moment the lease ran out. An
/// attempt cut short by a crash or a hang counts toward the connector's retry limit (`max_attempts`
/// gives it for a connector name): a removal whose attempts reached it moves to `failed` instead, so a
/// removal that brings the daemon down on every attempt ends in the dead-letter state rather than being
/// tried forever. Audited per removal, in the same transaction.
pub async fn reclaim_expired(
    pool: &SqlitePool,
    now: DateTime<Utc>,
    max_attempts: impl Fn(&str) -> u32,
) -> anyhow::Result<Reclaimed> {
    // A cheap read first: the write lock is taken only when a lease really expired.
    let any: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM removals WHERE state = 'running' AND lease_expires_at <= ?)",
    )
    .bind(ts(now))
    .fetch_one(pool)
    .await?;
    if !any {
        return Ok(Reclaimed::default());
    }
    let mut tx = begin_write(pool).await?;
    let rows: Vec<(i64, String, i64, i64, Option<String>, String)> = sqlx::query_as(
        "SELECT r.id, r.connector, r.attempts, r.retry_base, r.lease_owner, t.employee_id FROM removals r \
         JOIN terminations t ON t.id = r.termination_id \
         WHERE r.state = 'running' AND r.lease_expires_at <= ?",
    )
    .bind(ts(now))
    .fetch_all(&mut *tx)
    .await?;
    let mut chain = audit::Chain::start(&mut tx).await?;
    let mut reclaimed = Reclaimed::default();
    for (id, connector, attempts, retry_base, owner, employee) in &rows {
        let spent = attempts - retry_base;
        let limit = i64::from(max_attempts(connector));
        let entry = Entry::daemon("lease_expired")
            .employee(employee)
            .connector(connector)
            .removal(*id)
            .attempt(*attempts);
        if spent >= limit {
            let error = format!(
                "gave up after {spent} attempts: the lease of the last one expired before it finished \
                 (the daemon stopped or the call outlived the lease)"
            );
            sqlx::query(
                "UPDATE removals SET state = 'failed', outcome = 'failed', last_error = ?1, \
                 lease_owner = NULL, lease_expires_at = NULL, finished_at = ?2, updated_at = ?2 \
                 WHERE id = ?3 AND state = 'running'",
            )
            .bind(&error)
            .bind(ts(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            chain.push(
                now,
                entry.outcome("failed").detail(json!({
                    "from": "running", "to": "failed", "lease_owner": owner, "error": error,
                })),
            );
            reclaimed.failed += 1;
        } else {
            sqlx::query(
                // Due again from the moment its lease ran out (the column is read before it is cleared).
                "UPDATE removals SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL, \
                 due_at = MIN(lease_expires_at, ?1), updated_at = ?1 WHERE id = ?2 AND state = 'running'",
            )
            .bind(ts(now))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            chain.push(
                now,
                entry.detail(json!({"from": "running", "to": "pending", "lease_owner": owner})),
            );
            reclaimed.requeued += 1;
        }
    }
    chain.write(&mut tx).await?;
    tx.commit().await?;
    Ok(reclaimed)
}

/// The earliest moment work may become claimable for these connectors: a pending removal's due
/// time or a running removal's lease expiry. One read, each part from an index: the next due
/// removal of each connector (removals_claim) and the running removals, which are few.
pub async fn next_wakeup(
    pool: &SqlitePool,
    connectors: &[String],
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let next: Option<String> = sqlx::query_scalar(
        "SELECT MIN(t) FROM ( \
           SELECT (SELECT due_at FROM removals WHERE state = 'pending' AND connector = c.value \
                   ORDER BY due_at LIMIT 1) AS t FROM json_each(?) AS c \
           UNION ALL \
           SELECT (SELECT lease_expires_at FROM removals WHERE state = 'running' \
                   ORDER BY lease_expires_at LIMIT 1))",
    )
    .bind(serde_json::to_string(connectors)?)
    .fetch_one(pool)
    .await?;
    next.as_deref().map(parse_ts).transpose()
}

/// How many removals are due now for a connector.
pub async fn count_due(
    pool: &SqlitePool,
    connector: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM removals WHERE state = 'pending' AND connector = ? AND due_at <= ?",
    )
    .bind(connector)
    .bind(ts(now))
    .fetch_one(pool)
    .await?)
}

/// Whether the termination is still active (re-checked right before a destructive call).
pub async fn termination_is_active(pool: &SqlitePool, termination_id: i64) -> anyhow::Result<bool> {
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM terminations WHERE id = ?")
        .bind(termination_id)
        .fetch_optional(pool)
        .await?;
    Ok(status.as_deref() == Some("active"))
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
        let pool = crate::store::open(&dir.path().join("q.db"), 1, Duration::from_secs(5))
            .await
            .unwrap();

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
