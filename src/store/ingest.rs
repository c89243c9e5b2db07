//! Ingesting a batch: validated rows → people, terminations, rescinds and the removals the planner
//! decides, with rejects and audit rows, all in one transaction. The store's busiest write: chunks of
//! 512 employees, each one multi-row command, prepared while SQLite runs the one before.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::transition::{To, transition};
use super::{Pool, Script, Tx, begin_write, max_rowid, parse_ts, ts};
use crate::audit::{self, Chain, Entry};
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, Person, RemovalState};
use crate::feed::intake::{Batch, BatchSource, BatchSummary, Record};
use crate::feed::rows::Fault;
use crate::planner::{self, PlanLine};

/// Ingests one batch in a single transaction and returns what it did.
pub async fn ingest(
    pool: &Pool,
    connectors: &[ConnectorConfig],
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    let mut tx = begin_write(pool).await?;
    let (summary, _) = ingest_in(&mut tx, connectors, safety, batch, now, false).await?;
    tx.commit().await?;
    if summary.held {
        tracing::error!(
            batch_id = summary.batch_id,
            new_terminations = summary.new_terminations,
            limit = summary.limit,
            "Mass-removal guard: batch held; nothing is removed until an operator runs `offboard approve {}` or `offboard reject {}`.",
            summary.batch_id,
            summary.batch_id
        );
    }
    Ok(summary)
}

/// Works out what a batch would do, per person and connector, and rolls everything back: the
/// same code path as [`ingest`], so the plan cannot drift from what a poll does.
pub async fn simulate(
    pool: &Pool,
    connectors: &[ConnectorConfig],
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<(BatchSummary, Vec<PlanLine>)> {
    let mut tx = begin_write(pool).await?;
    let result = ingest_in(&mut tx, connectors, safety, batch, now, true).await;
    tx.rollback().await?;
    result
}

/// What the rows of a batch say for one employee, decided before anything is written so the guard
/// can count new terminations first.
enum Decision {
    New(FeedRow),
    Move(FeedRow, i64, String),
    Same(FeedRow, i64),
    Rescind(FeedRow, i64),
    Nothing(FeedRow),
}

/// What an employee's row means, before the row is taken: [`Decision`] without the row.
enum Kind {
    New,
    Move(i64, String),
    Same(i64),
    Rescind(i64),
    Nothing,
}

impl Kind {
    fn with(self, row: FeedRow) -> Decision {
        match self {
            Kind::New => Decision::New(row),
            Kind::Move(id, current) => Decision::Move(row, id, current),
            Kind::Same(id) => Decision::Same(row, id),
            Kind::Rescind(id) => Decision::Rescind(row, id),
            Kind::Nothing => Decision::Nothing(row),
        }
    }
}

/// The employee id of a valid record ("" for a rejected one, which is never asked).
fn employee_of(record: &Record) -> &str {
    record
        .result
        .as_ref()
        .map_or("", |row| row.person.employee_id.as_str())
}

/// Employees whose rows are applied together: their people rows, new terminations and removals are each
/// written with a few multi-row statements.
const CHUNK: usize = 512;

async fn ingest_in(
    tx: &mut Tx,
    connectors: &[ConnectorConfig],
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
    want_lines: bool,
) -> anyhow::Result<(BatchSummary, Vec<PlanLine>)> {
    let rows = batch.records.len() as u64;
    let rejected = batch.records.iter().filter(|r| r.result.is_err()).count() as u64;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, content_sha256, rows, accepted, rejected, actor) \
         VALUES (?, ?, ?, 'ok', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(batch.source.as_str())
    .bind(&batch.source_ref)
    .bind(ts(now))
    .bind(&batch.content_sha256)
    .bind(rows as i64)
    .bind((rows - rejected) as i64)
    .bind(rejected as i64)
    .bind(&batch.actor)
    .fetch_one(&mut **tx)
    .await?;
    let mut summary = BatchSummary {
        batch_id,
        rows,
        accepted: rows - rejected,
        rejected,
        ..BatchSummary::default()
    };
    let mut lines: Vec<(usize, PlanLine)> = Vec::new();
    let mut chain = Chain::start(tx).await?;

    // Collapse per employee: the last valid row wins; rejected rows have no effect at all. Rows stay in
    // `records` until their chunk is applied: only indices are kept meanwhile, so a large feed is held in
    // memory once.
    let mut records = batch.records;
    let mut rejects: Vec<(u64, Option<u64>, Fault)> = Vec::new();
    // For each employee, in the order of their first valid row: the index of their last valid row.
    let mut slots: Vec<usize> = Vec::new();
    {
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        for (i, record) in records.iter_mut().enumerate() {
            match &mut record.result {
                Err(faults) => {
                    rejects.extend(
                        std::mem::take(faults)
                            .into_iter()
                            .map(|f| (record.row, record.line, f)),
                    );
                }
                Ok(row) => match slot_of.entry(row.person.employee_id.as_str()) {
                    std::collections::hash_map::Entry::Occupied(e) => slots[*e.get()] = i,
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(slots.len());
                        slots.push(i);
                    }
                },
            }
        }
    }
    insert_rejects(tx, batch_id, rejects).await?;

    // What each employee's row means, against the active terminations, before anything is written.
    let mut kinds: Vec<Kind> = Vec::with_capacity(slots.len());
    for chunk in slots.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|&i| employee_of(&records[i])).collect();
        let mut active: HashMap<String, (i64, String)> = sqlx::query_as(
            "SELECT employee_id, id, effective_at FROM terminations \
             WHERE status = 'active' AND employee_id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&ids)?)
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(employee, id, effective_at): (String, i64, String)| (employee, (id, effective_at)))
        .collect();
        for &i in chunk {
            let Ok(row) = &records[i].result else {
                anyhow::bail!("row {} was collapsed as valid but is not", records[i].row);
            };
            kinds.push(
                match (row.status, active.remove(row.person.employee_id.as_str())) {
                    (HrStatus::Terminated { .. }, None) => Kind::New,
                    (HrStatus::Terminated { effective_at }, Some((id, current))) => {
                        if parse_ts(&current)? == effective_at {
                            Kind::Same(id)
                        } else {
                            Kind::Move(id, current)
                        }
                    }
                    (HrStatus::Active, Some((id, _))) => Kind::Rescind(id),
                    (HrStatus::Active, None) => Kind::Nothing,
                },
            );
        }
    }

    let new = kinds.iter().filter(|k| matches!(k, Kind::New)).count() as u64;
    summary.limit = safety.batch_limit(rows, batch.source == BatchSource::Feed);
    summary.held = new > summary.limit;
    let first_state = if summary.held {
        RemovalState::Held
    } else {
        RemovalState::Pending
    };

    let applying = Applying {
        connectors,
        safety,
        batch_id,
        source: batch.source,
        first_state,
        now,
        want_lines,
    };
    // New rows get the ids after the largest: the write transaction keeps every other writer out.
    let mut carry = Carry {
        termination: max_rowid(tx, "terminations").await?,
        removal: max_rowid(tx, "removals").await?,
        shared: Shared::new(now),
    };
    let mut kinds = kinds.into_iter();
    // Each chunk's writes go to SQLite as one command, and the next chunk is prepared while SQLite runs it,
    // so the two threads work side by side. A chunk with moves or rescinds is finished before the next is
    // prepared: those read the database and add to the audit chain.
    let mut flight: Option<Prepared> = None;
    let mut spent = None;
    for chunk in slots.chunks(CHUNK) {
        let mut decisions = Vec::with_capacity(chunk.len());
        for (&i, kind) in chunk.iter().zip(kinds.by_ref()) {
            // The row moves out of `records`; nothing reads it there again.
            let Ok(row) = std::mem::replace(&mut records[i].result, Err(Vec::new())) else {
                anyhow::bail!("row {} was collapsed as valid but is not", records[i].row);
            };
            decisions.push((i, kind.with(row)));
        }
        let next = match flight.take() {
            Some(prev) if prev.later.is_empty() => {
                // While SQLite runs the last chunk, this thread frees the values of the one before and
                // prepares the next.
                let (ran, next) = prev
                    .script
                    .execute_alongside(tx, || {
                        drop(spent.take());
                        applying.prepare(
                            decisions,
                            &mut carry,
                            &mut chain,
                            &mut summary,
                            &mut lines,
                        )
                    })
                    .await?;
                spent = Some(ran);
                next?
            }
            Some(prev) => {
                applying
                    .finish(tx, &mut chain, prev, &mut summary, &mut lines)
                    .await?;
                applying.prepare(decisions, &mut carry, &mut chain, &mut summary, &mut lines)?
            }
            None => {
                applying.prepare(decisions, &mut carry, &mut chain, &mut summary, &mut lines)?
            }
        };
        flight = Some(next);
    }
    if let Some(prev) = flight {
        applying
            .finish(tx, &mut chain, prev, &mut summary, &mut lines)
            .await?;
    }
    drop(records);

    sqlx::query(
        "UPDATE batches SET new_terminations = ?, rescinded = ?, moved = ?, held = ? WHERE id = ?",
    )
    .bind(summary.new_terminations as i64)
    .bind(summary.rescinded as i64)
    .bind(summary.moved as i64)
    .bind(i64::from(summary.held))
    .bind(batch_id)
    .execute(&mut **tx)
    .await?;
    chain.push(
        now,
        Entry::by(&batch.actor, "batch_received")
            .batch(batch_id)
            .outcome(if summary.held { "held" } else { "accepted" })
            .detail(json!({
                "source": batch.source.as_str(),
                "source_ref": batch.source_ref,
                "content_sha256": batch.content_sha256,
                "rows": summary.rows,
                "accepted": summary.accepted,
                "rejected": summary.rejected,
                "new_terminations": summary.new_terminations,
                "rescinded": summary.rescinded,
                "moved": summary.moved,
                "removals_planned": summary.removals_planned,
                "excluded": summary.excluded,
                "held": summary.held,
                "limit": summary.limit,
            })),
    );
    chain.write(tx).await?;
    // Plan lines in input order: those of moves and rescinds were made after their chunk's new terminations.
    lines.sort_by_key(|(slot, _)| *slot);
    Ok((summary, lines.into_iter().map(|(_, line)| line).collect()))
}

/// Stores the faults of rejected rows, many per statement.
async fn insert_rejects(
    tx: &mut Tx,
    batch_id: i64,
    rejects: Vec<(u64, Option<u64>, Fault)>,
) -> anyhow::Result<()> {
    let mut script = Script::default();
    script.insert(
        "INSERT INTO feed_rejects (batch_id, row, line, field, reason)",
        5,
        "",
        rejects,
        |b, (row, line, fault)| {
            b.add(batch_id)
                .add(row as i64)
                .add(line.map(|l| l as i64))
                .add(fault.field)
                .add(fault.reason.as_str());
        },
    )?;
    script.execute(tx).await?;
    Ok(())
}

/// What applying the decisions of a batch needs to know.
struct Applying<'a> {
    connectors: &'a [ConnectorConfig],
    safety: &'a SafetyConfig,
    batch_id: i64,
    source: BatchSource,
    first_state: RemovalState,
    now: DateTime<Utc>,
    want_lines: bool,
}

/// What preparing a chunk hands on to the next: the ids given to the last new termination and removal, and
/// the shared text.
struct Carry {
    termination: i64,
    removal: i64,
    shared: Shared,
}

/// A chunk's writes, ready to run as one command, and its decisions that read the database (moves,
/// rescinds, the plan lines of existing terminations), applied after the command ran.
struct Prepared {
    script: Script,
    later: Vec<(usize, Decision)>,
}

impl Applying<'_> {
    /// Prepares a chunk without touching the database: every person's row, the new terminations and their
    /// removals with the ids they will have, and the audit rows of the new terminations (plus any the chain
    /// holds from earlier chunks), as multi-row inserts. Plan lines are tagged with the input position.
    fn prepare(
        &self,
        chunk: Vec<(usize, Decision)>,
        carry: &mut Carry,
        chain: &mut Chain,
        summary: &mut BatchSummary,
        lines: &mut Vec<(usize, PlanLine)>,
    ) -> anyhow::Result<Prepared> {
        let now = self.now;
        let mut script = Script::default();
        let people: Vec<&Person> = chunk.iter().map(|(_, d)| &d.row().person).collect();
        people_into(&mut script, &people, &mut carry.shared)?;
        drop(people);

        // New terminations, then their removals.
        let mut news: Vec<NewTermination<'_>> = Vec::new();
        let mut planned: Vec<(usize, planner::Decided<'_>)> = Vec::new();
        for (slot, decision) in &chunk {
            if let Decision::New(FeedRow {
                person,
                status: HrStatus::Terminated { effective_at },
            }) = decision
            {
                carry.termination += 1;
                let termination = planner::Planned {
                    termination_id: carry.termination,
                    effective_at: *effective_at,
                    batch_id: self.batch_id,
                    state: self.first_state,
                };
                planned.extend(
                    planner::decide(self.connectors, self.safety, person, termination)
                        .into_iter()
                        .map(|d| (news.len(), d)),
                );
                news.push(NewTermination {
                    slot: *slot,
                    id: carry.termination,
                    person,
                    effective_at: *effective_at,
                });
            }
        }
        terminations_into(
            &mut script,
            &news,
            self.source,
            self.batch_id,
            &mut carry.shared,
        )?;
        let removal_ids: Vec<Option<i64>> = planned
            .iter()
            .map(|(_, d)| {
                d.removal.as_ref().map(|_| {
                    carry.removal += 1;
                    carry.removal
                })
            })
            .collect();
        let removals: Vec<(i64, &planner::NewRemoval<'_>)> = planned
            .iter()
            .zip(&removal_ids)
            .filter_map(|((_, d), id)| Some((*id.as_ref()?, d.removal.as_ref()?)))
            .collect();
        removals_into(&mut script, &removals, &mut carry.shared)?;
        drop(removals);

        // The termination and the removals planned for it are one change, recorded as one audit row that
        // lists each removal with its connector, first state and due time.
        let mut planned = planned.into_iter().zip(removal_ids).peekable();
        for (k, new) in news.iter().enumerate() {
            let mut removals = Vec::new();
            while let Some(((_, decided), removal_id)) = planned.next_if(|((i, _), _)| *i == k) {
                if let (Some(removal), Some(removal_id)) = (&decided.removal, removal_id) {
                    removals.push(planner::planned_item(
                        removal,
                        &planner::Stored::of(removal),
                        removal_id,
                    ));
                    summary.removals_planned += 1;
                    if decided.excluded {
                        summary.excluded += 1;
                    }
                }
                if self.want_lines {
                    lines.push((new.slot, decided.line));
                }
            }
            summary.new_terminations += 1;
            chain.push(
                now,
                Entry::daemon("termination_created")
                    .employee(&new.person.employee_id)
                    .batch(self.batch_id)
                    .detail(json!({
                        "termination_id": new.id, "effective_at": ts(new.effective_at),
                        "source": self.source.as_str(), "removals": removals,
                    })),
            );
        }
        chain.write_into(&mut script)?;
        drop(news);

        let later = chunk
            .into_iter()
            .filter(|(_, d)| match d {
                Decision::Move(..) | Decision::Rescind(..) => true,
                Decision::Same(..) => self.want_lines,
                Decision::New(_) | Decision::Nothing(_) => false,
            })
            .collect();
        Ok(Prepared { script, later })
    }

    /// Runs a prepared chunk's command, then its moves, rescinds and plan lines of existing terminations, in
    /// input order. Their audit rows stay on the chain for the next command.
    async fn finish(
        &self,
        tx: &mut Tx,
        chain: &mut Chain,
        prepared: Prepared,
        summary: &mut BatchSummary,
        lines: &mut Vec<(usize, PlanLine)>,
    ) -> anyhow::Result<()> {
        let now = self.now;
        prepared.script.execute(tx).await?;
        for (slot, decision) in prepared.later {
            let mut made = Vec::new();
            match decision {
                Decision::Move(row, id, current) => {
                    let HrStatus::Terminated { effective_at } = row.status else {
                        continue;
                    };
                    sqlx::query(
                        "UPDATE terminations SET effective_at = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(ts(effective_at))
                    .bind(ts(now))
                    .bind(id)
                    .execute(&mut **tx)
                    .await?;
                    let moved = move_due(tx, self.connectors, id, effective_at, now).await?;
                    summary.moved += 1;
                    chain.push(
                        now,
                        Entry::daemon("termination_moved")
                            .employee(&row.person.employee_id)
                            .batch(self.batch_id)
                            .detail(json!({
                                "termination_id": id, "from": current, "to": ts(effective_at), "removals_moved": moved,
                            })),
                    );
                    if self.want_lines {
                        made.push(PlanLine {
                            employee_id: row.person.employee_id.clone(),
                            connector: None,
                            action: "moved".into(),
                            due_at: None,
                            account: None,
                            note: Some(format!("effective {current} → {}", ts(effective_at))),
                        });
                        made.extend(existing_lines(tx, &row.person.employee_id, id).await?);
                    }
                }
                Decision::Same(row, id) => {
                    if self.want_lines {
                        made.extend(existing_lines(tx, &row.person.employee_id, id).await?);
                    }
                }
                Decision::Rescind(row, id) => {
                    rescind(
                        tx,
                        chain,
                        &row.person.employee_id,
                        id,
                        self.batch_id,
                        now,
                        summary,
                        &mut made,
                    )
                    .await?;
                }
                Decision::New(_) | Decision::Nothing(_) => {}
            }
            lines.extend(made.into_iter().map(|line| (slot, line)));
        }
        Ok(())
    }
}

impl Decision {
    fn row(&self) -> &FeedRow {
        match self {
            Decision::New(row)
            | Decision::Move(row, ..)
            | Decision::Same(row, _)
            | Decision::Rescind(row, _)
            | Decision::Nothing(row) => row,
        }
    }
}

/// Creates or updates the people rows, many per statement (an unchanged row is not rewritten).
fn people_into(script: &mut Script, people: &[&Person], shared: &mut Shared) -> anyhow::Result<()> {
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
struct NewTermination<'a> {
    slot: usize,
    id: i64,
    person: &'a Person,
    effective_at: DateTime<Utc>,
}

/// Inserts active terminations with the ids given, many per statement.
fn terminations_into(
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
fn removals_into(
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
struct Shared {
    now: DateTime<Utc>,
    texts: HashMap<String, Arc<str>>,
    times: HashMap<DateTime<Utc>, Arc<str>>,
}

impl Shared {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            texts: HashMap::new(),
            times: HashMap::new(),
        }
    }

    fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(text.to_string(), shared.clone());
        shared
    }

    fn time(&mut self, t: DateTime<Utc>) -> Arc<str> {
        self.times
            .entry(t)
            .or_insert_with(|| Arc::from(ts(t)))
            .clone()
    }
}

/// Plan lines for the removals an existing termination already has.
async fn existing_lines(
    tx: &mut Tx,
    employee_id: &str,
    termination_id: i64,
) -> anyhow::Result<Vec<PlanLine>> {
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT connector, state, due_at, account FROM removals WHERE termination_id = ? ORDER BY connector",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(connector, state, due_at, account)| PlanLine {
            employee_id: employee_id.to_string(),
            connector: Some(connector),
            action: format!("already_{state}"),
            due_at: Some(due_at),
            account,
            note: None,
        })
        .collect())
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

async fn upsert_person(tx: &mut Tx, person: &Person, now: DateTime<Utc>) -> anyhow::Result<()> {
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

#[allow(clippy::too_many_arguments)]
async fn rescind(
    tx: &mut Tx,
    chain: &mut Chain,
    employee_id: &str,
    termination_id: i64,
    batch_id: i64,
    now: DateTime<Utc>,
    summary: &mut BatchSummary,
    lines: &mut Vec<PlanLine>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE terminations SET status = 'rescinded', rescinded_at = ?1, updated_at = ?1 WHERE id = ?2",
    )
    .bind(ts(now))
    .bind(termination_id)
    .execute(&mut **tx)
    .await?;
    summary.rescinded += 1;
    lines.push(PlanLine {
        employee_id: employee_id.to_string(),
        connector: None,
        action: "rescinded".into(),
        due_at: None,
        account: None,
        note: None,
    });
    chain.push(
        now,
        Entry::daemon("termination_rescinded")
            .employee(employee_id)
            .batch(batch_id)
            .detail(json!({"termination_id": termination_id})),
    );
    let cancelled: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, connector, state FROM removals WHERE termination_id = ? AND state IN ('pending', 'held')",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await?;
    for (id, connector, state) in &cancelled {
        let entry = Entry::daemon("removal_cancelled")
            .employee(employee_id)
            .connector(connector)
            .batch(batch_id);
        transition(
            tx,
            chain,
            *id,
            state,
            To::Cancelled("rescinded"),
            entry,
            now,
        )
        .await?;
        lines.push(PlanLine {
            employee_id: employee_id.to_string(),
            connector: Some(connector.clone()),
            action: "cancelled".into(),
            due_at: None,
            account: None,
            note: Some(format!("was {state}; rescinded")),
        });
    }
    summary.removals_cancelled += cancelled.len() as u64;
    let done: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, connector FROM removals WHERE termination_id = ? AND state = 'done'",
    )
    .bind(termination_id)
    .fetch_all(&mut **tx)
    .await?;
    if !done.is_empty() {
        summary.rehired_after_removal += 1;
        let connectors: Vec<&str> = done.iter().map(|(_, c)| c.as_str()).collect();
        tracing::warn!(
            employee_id,
            connectors = ?connectors,
            "Rehired after removal: access was already removed and must be restored by hand."
        );
        for connector in &connectors {
            lines.push(PlanLine {
                employee_id: employee_id.to_string(),
                connector: Some((*connector).to_string()),
                action: "rehired_after_removal".into(),
                due_at: None,
                account: None,
                note: Some("access was already removed; restore it by hand".into()),
            });
        }
        chain.push(
            now,
            Entry::daemon("rehired_after_removal")
                .employee(employee_id)
                .batch(batch_id)
                .detail(json!({"termination_id": termination_id, "removed_on": connectors})),
        );
    }
    Ok(())
}

/// `offboard import`: queues the removal of every account listed in `column` of a vendor's user
/// export, on one connector, as one audited batch. Each account gets its own termination (source
/// `import`, effective now) under a synthetic employee id `import-BATCH-ROW`, so the report and the
/// audit log treat it like any other leaver without inventing HR data. Accounts matching a
/// `never_remove` pattern are created cancelled (`excluded`); an import of more accounts than
/// `safety.max_terminations_per_batch` is held for `offboard approve`, like any other batch. The
/// connector's grace and scope do not apply: an import is an explicit, immediate clean-up.
#[allow(clippy::too_many_arguments)]
pub async fn import_accounts(
    pool: &Pool,
    connector: &ConnectorConfig,
    safety: &SafetyConfig,
    bytes: &[u8],
    column: &str,
    source_ref: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    use crate::feed::rows::Reason;

    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| anyhow::anyhow!("{source_ref}: cannot read the header: {e}"))?
        .clone();
    let wanted = column.trim();
    let index = headers
        .iter()
        .position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim().eq_ignore_ascii_case(wanted)))
        .ok_or_else(|| anyhow::anyhow!("{source_ref}: no column named {column:?} in the header"))?;

    let mut accounts: Vec<(u64, String)> = Vec::new();
    let mut rejects: Vec<(u64, Reason)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.byte_records().enumerate() {
        let row = i as u64 + 1;
        let record = record.map_err(|e| anyhow::anyhow!("{source_ref}: row {row}: {e}"))?;
        let Some(raw) = record.get(index) else {
            rejects.push((row, Reason::ColumnCount));
            continue;
        };
        let Ok(value) = std::str::from_utf8(raw) else {
            rejects.push((row, Reason::InvalidUtf8));
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            rejects.push((row, Reason::Missing));
        } else if value.chars().any(char::is_control) {
            rejects.push((row, Reason::ControlChar));
        } else if value.len() > 1024 {
            rejects.push((row, Reason::TooLong));
        } else if seen.insert(value.to_string()) {
            accounts.push((row, value.to_string()));
        }
    }

    let rows = accounts.len() as u64 + rejects.len() as u64;
    let limit = safety.batch_limit(rows, false);
    let held = accounts.len() as u64 > limit;
    let mut tx = begin_write(pool).await?;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, content_sha256, rows, accepted, rejected, actor) \
         VALUES ('import', ?, ?, 'ok', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(format!("{source_ref} → {}", connector.name))
    .bind(ts(now))
    .bind(crate::feed::sha256_hex(bytes))
    .bind(rows as i64)
    .bind(accounts.len() as i64)
    .bind(rejects.len() as i64)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    for (row, reason) in &rejects {
        sqlx::query(
            "INSERT INTO feed_rejects (batch_id, row, field, reason) VALUES (?, ?, 'account', ?)",
        )
        .bind(batch_id)
        .bind(*row as i64)
        .bind(reason.as_str())
        .execute(&mut *tx)
        .await?;
    }
    let mut planned = 0;
    let mut excluded = 0;
    for (row, account) in accounts {
        let protected = safety
            .never_remove
            .iter()
            .chain(connector.never_remove.iter())
            .any(|p| p.matches(&account));
        let state = match (protected, held) {
            (true, _) => RemovalState::Cancelled,
            (false, true) => RemovalState::Held,
            (false, false) => RemovalState::Pending,
        };
        let person = Person {
            employee_id: format!("import-{batch_id}-{row}"),
            ..Person::default()
        };
        upsert_person(&mut tx, &person, now).await?;
        let termination_id: i64 = sqlx::query_scalar(
            "INSERT INTO terminations (employee_id, source, batch_id, effective_at, status, created_at, updated_at) \
             VALUES (?1, 'import', ?2, ?3, 'active', ?3, ?3) RETURNING id",
        )
        .bind(&person.employee_id)
        .bind(batch_id)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        let new = planner::NewRemoval {
            termination_id,
            connector: &connector.name,
            account: Ok(account),
            due_at: now,
            batch_id,
            state,
        };
        if insert_removal(&mut tx, &person.employee_id, new, now).await? {
            planned += 1;
            if protected {
                excluded += 1;
            }
        }
    }
    sqlx::query("UPDATE batches SET new_terminations = ?, held = ? WHERE id = ?")
        .bind(planned as i64)
        .bind(i64::from(held))
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        now,
        Entry::by(actor, "batch_received")
            .batch(batch_id)
            .connector(&connector.name)
            .detail(json!({
                "source": "import", "source_ref": source_ref, "column": column,
                "rows": rows, "accepted": planned, "rejected": rejects.len(),
                "excluded": excluded, "held": held, "limit": limit,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(BatchSummary {
        batch_id,
        rows,
        accepted: rows - rejects.len() as u64,
        rejected: rejects.len() as u64,
        new_terminations: planned,
        removals_planned: planned,
        excluded,
        held,
        limit,
        ..BatchSummary::default()
    })
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
