//! Ingesting a batch: validated rows → people, terminations, rescinds and the removals the planner
//! decides, with rejects and audit rows, all in one transaction. The store's busiest write: chunks of
//! 512 employees, each one multi-row command, prepared while SQLite runs the one before.

mod import;
mod rows;

pub use import::import_accounts;
use rows::{NewTermination, Shared, people_into, removals_into, terminations_into};
pub use rows::{insert_removal, move_due, record_failed_batch, record_unchanged_batch};

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{Chain, Entry};
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, Person, RemovalState};
use crate::feed::intake::{Batch, BatchSource, BatchSummary, Record};
use crate::feed::rows::Fault;
use crate::planner::{self, PlanLine};
use crate::store::transition::{To, transition};
use crate::store::{Pool, Script, Tx, begin_write, max_rowid, parse_ts, ts};

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
