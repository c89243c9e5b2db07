//! The writes of ingesting: people, new terminations and removals as multi-row statements (with the
//! text they share bound once), single upserts and inserts for the slower paths, and the batch rows
//! of polls that read nothing.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Entry};
use crate::config::ConnectorConfig;
use crate::domain::Person;
use crate::feed::intake::BatchSource;
use crate::planner::{self};
use crate::store::{Pool, Script, Tx, begin_write, ts};

/// Creates or updates the people rows, many per statement (an unchanged row is not rewritten).
pub(super) fn people_into(
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
         WHERE people.email IS NOT excluded.email OR people.username IS NOT excluded.username \
           OR people.upn IS NOT excluded.upn OR people.display_name IS NOT excluded.display_name \
           OR people.attributes IS NOT excluded.attributes",
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

/// A new active termination and the id it is given.
pub(super) struct NewTermination<'a> {
    pub(super) slot: usize,
    pub(super) id: i64,
    pub(super) person: &'a Person,
    pub(super) effective_at: DateTime<Utc>,
}

/// Inserts active terminations with the ids given, many per statement.
pub(super) fn terminations_into(
    script: &mut Script,
    news: &[NewTermination<'_>],
    source: BatchSource,
    batch_id: i64,
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let t = shared.time(shared.now);
    let source = shared.text(source.as_str());
    let active = shared.text("active");
    script.insert(
        "INSERT INTO terminations (id, employee_id, source, batch_id, effective_at, status, created_at, updated_at)",
        8,
        "",
        news,
        |b, new| {
            b.add(new.id)
                .add(&new.person.employee_id)
                .add(source.clone())
                .add(batch_id)
                .add(shared.time(new.effective_at))
                .add(active.clone())
                .add(t.clone())
                .add(t.clone());
        },
    )?;
    Ok(())
}

/// Inserts the planned removals of new terminations with the ids given, many per statement.
pub(super) fn removals_into(
    script: &mut Script,
    removals: &[(i64, &planner::NewRemoval<'_>)],
    shared: &mut Shared,
) -> anyhow::Result<()> {
    let t = shared.time(shared.now);
    script.insert(
        "INSERT INTO removals (id, termination_id, connector, account, state, due_at, last_error, outcome, \
                               batch_id, created_at, updated_at, finished_at)",
        12,
        "",
        removals,
        |b, (id, new)| {
            let stored = planner::Stored::of(new);
            let outcome = stored.outcome().map(|o| shared.text(o));
            let finished = stored.finished().then(|| t.clone());
            b.add(*id)
                .add(new.termination_id)
                .add(shared.text(new.connector))
                .add(stored.account)
                .add(shared.text(stored.state.as_str()))
                .add(shared.time(new.due_at))
                .add(stored.error)
                .add(outcome)
                .add(new.batch_id)
                .add(t.clone())
                .add(t.clone())
                .add(finished);
        },
    )?;
    Ok(())
}

/// Text that many rows of a batch bind (connector and state names, times), kept once and shared by the rows
/// instead of copied into each.
pub(super) struct Shared {
    now: DateTime<Utc>,
    texts: HashMap<String, Arc<str>>,
    times: HashMap<DateTime<Utc>, Arc<str>>,
}

impl Shared {
    pub(super) fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            texts: HashMap::new(),
            times: HashMap::new(),
        }
    }

    pub(super) fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(text.to_string(), shared.clone());
        shared
    }

    pub(super) fn time(&mut self, t: DateTime<Utc>) -> Arc<str> {
        self.times
            .entry(t)
            .or_insert_with(|| Arc::from(ts(t)))
            .clone()
    }
}

/// Records a batch that could not be read at all (fetch failed, no header, …). Nothing else changes.
pub async fn record_failed_batch(
    pool: &Pool,
    source: BatchSource,
    source_ref: Option<&str>,
    actor: &str,
    error_code: &str,
    message: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let mut tx = begin_write(pool).await?;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, error, actor) \
         VALUES (?, ?, ?, 'failed', ?, ?) RETURNING id",
    )
    .bind(source.as_str())
    .bind(source_ref)
    .bind(ts(now))
    .bind(format!("{error_code}: {message}"))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        now,
        Entry::by(actor, "batch_failed")
            .batch(batch_id)
            .outcome(error_code)
            .detail(json!({"source": source.as_str(), "source_ref": source_ref, "error": message})),
    )
    .await?;
    tx.commit().await?;
    Ok(batch_id)
}

/// Records a poll whose source answered "not modified": nothing to read, nothing changes.
pub async fn record_unchanged_batch(
    pool: &Pool,
    source_ref: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<i64> {
    let mut tx = begin_write(pool).await?;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, actor) VALUES ('feed', ?, ?, 'unchanged', ?) RETURNING id",
    )
    .bind(source_ref)
    .bind(ts(now))
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    audit::append(
        &mut tx,
        now,
        Entry::by(actor, "batch_unchanged")
            .batch(batch_id)
            .detail(json!({"source": "feed", "source_ref": source_ref})),
    )
    .await?;
    tx.commit().await?;
    Ok(batch_id)
}

pub(super) async fn upsert_person(
    tx: &mut Tx,
    person: &Person,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO people (employee_id, email, username, upn, display_name, attributes, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
         ON CONFLICT (employee_id) DO UPDATE SET email = excluded.email, username = excluded.username, \
           upn = excluded.upn, display_name = excluded.display_name, attributes = excluded.attributes, \
           updated_at = excluded.updated_at \
         WHERE people.email IS NOT excluded.email OR people.username IS NOT excluded.username \
           OR people.upn IS NOT excluded.upn OR people.display_name IS NOT excluded.display_name \
           OR people.attributes IS NOT excluded.attributes",
    )
    .bind(&person.employee_id)
    .bind(&person.email)
    .bind(&person.username)
    .bind(&person.upn)
    .bind(&person.display_name)
    .bind(serde_json::to_string(&person.attributes)?)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts one removal unless (termination, connector) already has one; audited. Returns whether it
/// was created. A removal whose account key cannot be rendered starts `failed` with the reason, so
/// an operator sees it instead of it being silently skipped.
pub async fn insert_removal(
    tx: &mut Tx,
    employee_id: &str,
    new: planner::NewRemoval<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let stored = planner::Stored::of(&new);
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO removals (termination_id, connector, account, state, due_at, last_error, outcome, \
                               batch_id, created_at, updated_at, finished_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) \
         ON CONFLICT (termination_id, connector) DO NOTHING RETURNING id",
    )
    .bind(new.termination_id)
    .bind(new.connector)
    .bind(stored.account)
    .bind(stored.state.as_str())
    .bind(ts(new.due_at))
    .bind(&stored.error)
    .bind(stored.outcome())
    .bind(new.batch_id)
    .bind(ts(now))
    .bind(stored.finished().then(|| ts(now)))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    audit::append(
        tx,
        now,
        planner::planned_entry(employee_id, &new, &stored, id),
    )
    .await?;
    Ok(true)
}

/// Moves the due time of a termination's pending and held removals after its effective date changed.
pub async fn move_due(
    tx: &mut Tx,
    connectors: &[ConnectorConfig],
    termination_id: i64,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut moved = 0;
    for c in connectors {
        moved += sqlx::query(
            "UPDATE removals SET due_at = ?1, updated_at = ?2 \
             WHERE termination_id = ?3 AND connector = ?4 AND state IN ('pending', 'held')",
        )
        .bind(ts(planner::due_at(effective_at, c)))
        .bind(ts(now))
        .bind(termination_id)
        .bind(&c.name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(moved)
}
