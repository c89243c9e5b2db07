//! The statements of ingesting a batch on PostgreSQL: the batch row and its rejects, the active terminations
//! of a chunk's employees (`= ANY`), a chunk's people, terminations, removals and audit rows as multi-row
//! inserts of one [`Script`] (people upserted only when a column changed: `IS DISTINCT FROM`), moves and
//! rescinds.

use chrono::{DateTime, Utc};

use super::{Script, Tx};
use crate::domain::{Person, RemovalState};
use crate::store::ingest::{BatchCounts, NewBatch, Reject, RemovalRow, Shared, TerminationRow};
use crate::store::ts;

/// Inserts a batch received whole (`status = 'ok'`); returns its id.
pub(in crate::store) async fn insert_batch(
    tx: &mut Tx,
    batch: &NewBatch<'_>,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, content_sha256, rows, accepted, rejected, actor) \
         VALUES ($1, $2, $3, 'ok', $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(batch.source)
    .bind(batch.source_ref)
    .bind(ts(now))
    .bind(batch.content_sha256)
    .bind(batch.rows as i64)
    .bind(batch.accepted as i64)
    .bind(batch.rejected as i64)
    .bind(batch.actor)
    .fetch_one(&mut **tx)
    .await
}

/// Inserts a batch that was not read (`status` is `failed` with `error`, or `unchanged`); returns its id.
pub(in crate::store) async fn insert_unread_batch(
    tx: &mut Tx,
    source: &str,
    source_ref: Option<&str>,
    status: &str,
    error: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, error, actor) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(source)
    .bind(source_ref)
    .bind(ts(now))
    .bind(status)
    .bind(error)
    .bind(actor)
    .fetch_one(&mut **tx)
    .await
}

/// Stores the faults of rejected rows, many per statement.
pub(in crate::store) async fn insert_rejects(
    tx: &mut Tx,
    batch_id: i64,
    rejects: Vec<Reject>,
) -> Result<(), sqlx::Error> {
    let mut script = Script::default();
    script.insert(
        "INSERT INTO feed_rejects (batch_id, row, line, field, reason)",
        5,
        "",
        rejects,
        |b, r| {
            b.add(batch_id)
                .add(r.row as i64)
                .add(r.line.map(|l| l as i64))
                .add(r.field)
                .add(r.reason);
        },
    )?;
    script.execute(tx).await
}

/// The active terminations of these employees: employee, id and effective time.
/// The effective times of the rejections in force (`offboard reject`, not lifted) of these employees.
pub(in crate::store) async fn rejected_terminations(
    tx: &mut Tx,
    employee_ids: &[&str],
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT employee_id, effective_at FROM terminations \
         WHERE rejected_at IS NOT NULL AND unrejected_at IS NULL \
           AND employee_id = ANY($1)",
    )
    .bind(employee_ids)
    .fetch_all(&mut **tx)
    .await?)
}

pub(in crate::store) async fn active_terminations(
    tx: &mut Tx,
    employee_ids: &[&str],
) -> anyhow::Result<Vec<(String, i64, String)>> {
    Ok(sqlx::query_as(
        "SELECT employee_id, id, effective_at FROM terminations \
         WHERE status = 'active' AND employee_id = ANY($1)",
    )
    .bind(employee_ids)
    .fetch_all(&mut **tx)
    .await?)
}

/// Moves a termination's effective time.
pub(in crate::store) async fn move_termination(
    tx: &mut Tx,
    id: i64,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE terminations SET effective_at = $1, updated_at = $2 WHERE id = $3")
        .bind(ts(effective_at))
        .bind(ts(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Moves the due time of a termination's pending, held and on-hold removals of one connector's stage;
/// returns how many.
pub(in crate::store) async fn move_due(
    tx: &mut Tx,
    termination_id: i64,
    connector: &str,
    stage: &str,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE removals SET due_at = $1, updated_at = $2 \
         WHERE termination_id = $3 AND connector = $4 AND stage = $5 AND state IN ('pending', 'held', 'on_hold')",
    )
    .bind(ts(due_at))
    .bind(ts(now))
    .bind(termination_id)
    .bind(connector)
    .bind(stage)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Marks a termination rescinded.
pub(in crate::store) async fn rescind(
    tx: &mut Tx,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE terminations SET status = 'rescinded', rescinded_at = $1, updated_at = $1 WHERE id = $2",
    )
    .bind(ts(now))
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A termination's pending and held removals: id, connector and state.
pub(in crate::store) async fn open_removals(
    tx: &mut Tx,
    termination_id: i64,
) -> Result<Vec<(i64, String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, connector, state FROM removals WHERE termination_id = $1 AND state IN ('pending', 'held', 'on_hold')",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await
}

/// The connectors (and stages) on which a termination's removal is done.
pub(in crate::store) async fn done_connectors(
    tx: &mut Tx,
    termination_id: i64,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT connector, stage FROM removals WHERE termination_id = $1 AND state = 'done' \
         ORDER BY connector, stage_index",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await
}

/// Every removal of a termination: connector, stage, state, due time and account, in connector and
/// stage order.
pub(in crate::store) async fn removals_of(
    tx: &mut Tx,
    termination_id: i64,
) -> Result<Vec<(String, String, String, String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT connector, stage, state, due_at, account FROM removals WHERE termination_id = $1 \
         ORDER BY connector, stage_index",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await
}

/// The connectors on which a termination's account was deactivated and not deleted since.
pub(in crate::store) async fn deactivated(
    tx: &mut Tx,
    termination_id: i64,
) -> Result<Vec<(String, Option<String>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT DISTINCT r.connector, r.account FROM removals r \
         WHERE r.termination_id = $1 AND r.state = 'done' AND r.outcome = 'deactivated' \
           AND NOT EXISTS (SELECT 1 FROM removals d WHERE d.termination_id = r.termination_id \
                           AND d.connector = r.connector AND d.state = 'done' \
                           AND d.outcome IN ('removed', 'removed_unconfirmed')) \
         ORDER BY r.connector",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await
}

/// Queues a reactivation (stage `reactivate`, after every stage, due now) with the next id; `None`
/// when the termination has one on the connector already.
pub(in crate::store) async fn add_reactivation(
    tx: &mut Tx,
    termination_id: i64,
    connector: &str,
    account: Option<&str>,
    batch_id: i64,
    now: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO removals (id, termination_id, connector, stage, stage_index, account, state, due_at, \
                               batch_id, created_at, updated_at) \
         SELECT COALESCE(MAX(id), 0) + 1, $1, $2, 'reactivate', 1000, $3, 'pending', $4, $5, $4, $4 \
         FROM removals WHERE true \
         ON CONFLICT (termination_id, connector, stage) DO NOTHING RETURNING id",
    )
    .bind(termination_id)
    .bind(connector)
    .bind(account)
    .bind(ts(now))
    .bind(batch_id)
    .fetch_optional(&mut **tx)
    .await
}

/// Stores what a batch did.
pub(in crate::store) async fn set_counts(
    tx: &mut Tx,
    batch_id: i64,
    counts: &BatchCounts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE batches SET new_terminations = $1, rescinded = $2, moved = $3, held = $4 WHERE id = $5",
    )
    .bind(counts.new_terminations as i64)
    .bind(counts.rescinded as i64)
    .bind(counts.moved as i64)
    .bind(i64::from(counts.held))
    .bind(batch_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Creates or updates the people rows, many per statement (an unchanged row is not rewritten).
pub(in crate::store) fn people_into(
    script: &mut Script,
    people: &[&Person],
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let t = shared.time(shared.now);
    let attributes: Vec<String> = people
        .iter()
        .map(|p| serde_json::to_string(&p.attributes))
        .collect::<Result<_, _>>()?;
    script.insert(
        "INSERT INTO people (employee_id, email, username, upn, display_name, attributes, created_at, updated_at)",
        8,
        " ON CONFLICT (employee_id) DO UPDATE SET email = excluded.email, username = excluded.username, \
           upn = excluded.upn, display_name = excluded.display_name, attributes = excluded.attributes, \
           updated_at = excluded.updated_at \
         WHERE people.email IS DISTINCT FROM excluded.email \
           OR people.username IS DISTINCT FROM excluded.username \
           OR people.upn IS DISTINCT FROM excluded.upn \
           OR people.display_name IS DISTINCT FROM excluded.display_name \
           OR people.attributes IS DISTINCT FROM excluded.attributes",
        people.iter().zip(attributes),
        |b, (person, attributes)| {
            b.add(&person.employee_id)
                .add(&person.email)
                .add(&person.username)
                .add(&person.upn)
                .add(&person.display_name)
                .add(attributes)
                .add(t.clone())
                .add(t.clone());
        },
    )?;
    Ok(())
}

/// Inserts active terminations with the ids given, many per statement.
pub(in crate::store) fn terminations_into(
    script: &mut Script,
    terminations: &[TerminationRow<'_>],
    source: &str,
    batch_id: i64,
    shared: &mut Shared,
) -> Result<(), sqlx::Error> {
    let t = shared.time(shared.now);
    let source = shared.text(source);
    let active = shared.text("active");
    script.insert(
        "INSERT INTO terminations (id, employee_id, source, batch_id, effective_at, status, created_at, updated_at)",
        8,
        "",
        terminations,
        |b, new| {
            b.add(new.id)
                .add(new.employee_id)
                .add(source.clone())
                .add(batch_id)
                .add(shared.time(new.effective_at))
                .add(active.clone())
                .add(t.clone())
                .add(t.clone());
        },
    )
}

/// Inserts removals with the ids given, many per statement. A removal that starts failed or cancelled starts
/// finished, with that outcome.
pub(in crate::store) fn removals_into(
    script: &mut Script,
    removals: Vec<RemovalRow<'_>>,
    shared: &mut Shared,
) -> Result<(), sqlx::Error> {
    let t = shared.time(shared.now);
    script.insert(
        "INSERT INTO removals (id, termination_id, connector, stage, stage_index, account, state, due_at, \
                               last_error, outcome, batch_id, created_at, updated_at, finished_at)",
        14,
        "",
        removals,
        |b, new| {
            let outcome = match new.state {
                RemovalState::Failed => Some(shared.text("failed")),
                RemovalState::Cancelled => Some(shared.text("cancelled")),
                _ => None,
            };
            let finished = outcome.is_some().then(|| t.clone());
            b.add(new.id)
                .add(new.termination_id)
                .add(shared.text(new.connector))
                .add(shared.text(new.stage))
                .add(new.stage_index)
                .add(new.account)
                .add(shared.text(new.state.as_str()))
                .add(shared.time(new.due_at))
                .add(new.error)
                .add(outcome)
                .add(new.batch_id)
                .add(t.clone())
                .add(t.clone())
                .add(finished);
        },
    )
}
