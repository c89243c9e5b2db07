//! Intake: one batch of checked rows, from a poll, a push, the CLI or an import, into people,
//! terminations, rescinds and the removals the planner plans, with rejects and audit rows, all in one
//! transaction ([`crate::store::ingest::Ingest`]). Rows are collapsed per employee, judged against the
//! active terminations, counted by the mass-removal guard, then written in chunks of 512 employees: each
//! chunk is prepared (planner decisions, rows, audit rows) while the store writes the one before.

mod chunks;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::audit::{Chain, Entry};
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, RemovalState};
use crate::feed::rows::Fault;
use crate::store::Store;
use crate::store::ingest::{BatchCounts, Ingest, NewBatch, Reject};
use crate::store::parse_ts;
use chunks::{Applying, Carry, Prepared};

pub use crate::planner::PlanLine;

/// Where a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchSource {
    /// A scheduled feed poll.
    Feed,
    /// A pushed body.
    Push,
    /// `offboard enqueue`.
    Cli,
    /// `offboard import`.
    Import,
    /// An inactivity scan (`[connector.inactive]`): accounts unused past the connector's threshold.
    Inactive,
}

impl BatchSource {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feed => "feed",
            Self::Push => "push",
            Self::Cli => "cli",
            Self::Import => "import",
            Self::Inactive => "inactive",
        }
    }

    /// The kind of batch as the batches table records it: an inactivity scan is an import of the
    /// app's accounts (its terminations keep the source `inactive`).
    pub fn batch_kind(self) -> &'static str {
        match self {
            Self::Inactive => "import",
            other => other.as_str(),
        }
    }
}

/// One input record after validation.
#[derive(Debug, Clone)]
pub struct Record {
    /// 1-based row number (header excluded).
    pub row: u64,
    /// Physical line where the record starts, when the source has lines.
    pub line: Option<u64>,
    /// The valid row, or its faults.
    pub result: Result<FeedRow, Vec<Fault>>,
}

/// A batch to ingest.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Where it came from.
    pub source: BatchSource,
    /// A path or URL without credentials, or a connector name for imports.
    pub source_ref: Option<String>,
    /// Who sent it: the daemon or an operator.
    pub actor: String,
    /// SHA-256 of the input bytes, as evidence of what was read.
    pub content_sha256: Option<String>,
    /// Its records in input order.
    pub records: Vec<Record>,
}

/// What a batch did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BatchSummary {
    /// The batch id.
    pub batch_id: i64,
    /// Records read.
    pub rows: u64,
    /// Valid records.
    pub accepted: u64,
    /// Rejected records.
    pub rejected: u64,
    /// Terminations created.
    pub new_terminations: u64,
    /// Terminations rescinded (rehire or reversal).
    pub rescinded: u64,
    /// Removals created `failed` because no account could be made (the HR record lacks a field the
    /// connector's template needs): re-sending the person with it, or `offboard retry` once the record
    /// has it, lets them run.
    pub failed_at_planning: u64,
    /// Removals that had failed for want of an account (a field the template needs) and that the
    /// re-sent HR record lets run: back in the queue.
    pub replanned: u64,
    /// Terminations not taken because an operator rejected the same person and effective time before
    /// (`offboard reject`; `offboard unreject` lifts it).
    pub still_rejected: u64,
    /// Terminations whose effective date moved.
    pub moved: u64,
    /// Removals planned.
    pub removals_planned: u64,
    /// Removals cancelled by rescinds.
    pub removals_cancelled: u64,
    /// Removals created cancelled because the person is on a `never_remove` list.
    pub excluded: u64,
    /// People rehired after at least one removal was already done.
    pub rehired_after_removal: u64,
    /// Accounts a rehire gives back: reactivations queued (connectors with `reactivate_on_rehire`).
    pub reactivations: u64,
    /// The rescinded terminations with a deactivated account, found while the batch is applied:
    /// (termination, employee, connector, account); queued once every chunk is written.
    #[serde(skip)]
    pub deactivated: Vec<(i64, String, String, Option<String>)>,
    /// Whether the mass-removal guard held the batch for approval.
    pub held: bool,
    /// The guard's limit for this batch.
    pub limit: u64,
}

/// What the removals of a new termination are planned on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Planning<'a> {
    /// Every configured connector, as the planner decides for an HR row.
    Connectors(&'a [ConnectorConfig]),
    /// One connector and the account each record stands for (`offboard import`, an inactivity scan;
    /// by record index). Without `stable_ids` the records' people get the employee id
    /// `import-BATCH-ROW` once the batch has its id; with it they keep theirs (an inactivity scan's
    /// `inactive:CONNECTOR:ACCOUNT`, the same at every scan, so a scan repeats nothing).
    Accounts {
        /// The connector.
        connector: &'a ConnectorConfig,
        /// The account of each record ("" for a rejected one).
        accounts: &'a [String],
        /// The column the accounts were read from, for the audit row.
        column: &'a str,
        /// The records carry their own employee ids.
        stable_ids: bool,
    },
}

/// Ingests one batch in a single transaction and returns what it did.
pub async fn ingest(
    store: &Store,
    connectors: &[ConnectorConfig],
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    let planning = Planning::Connectors(connectors);
    ingest_planned(store, planning, safety, batch, now).await
}

/// [`ingest`] with the removals planned as `planning` says.
pub(crate) async fn ingest_planned(
    store: &Store,
    planning: Planning<'_>,
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    let mut ingest = store.begin_ingest().await?;
    let (summary, _) = ingest_in(&mut ingest, planning, safety, batch, now, false).await?;
    ingest.commit().await?;
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
    store: &Store,
    connectors: &[ConnectorConfig],
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<(BatchSummary, Vec<PlanLine>)> {
    simulate_planned(store, Planning::Connectors(connectors), safety, batch, now).await
}

/// [`simulate`] with the removals planned as `planning` says.
pub(crate) async fn simulate_planned(
    store: &Store,
    planning: Planning<'_>,
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
) -> anyhow::Result<(BatchSummary, Vec<PlanLine>)> {
    let mut ingest = store.begin_ingest().await?;
    let result = ingest_in(&mut ingest, planning, safety, batch, now, true).await;
    ingest.rollback().await?;
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
    ingest: &mut Ingest,
    planning: Planning<'_>,
    safety: &SafetyConfig,
    batch: Batch,
    now: DateTime<Utc>,
    want_lines: bool,
) -> anyhow::Result<(BatchSummary, Vec<PlanLine>)> {
    let rows = batch.records.len() as u64;
    let rejected = batch.records.iter().filter(|r| r.result.is_err()).count() as u64;
    let batch_id = ingest
        .insert_batch(
            &NewBatch {
                source: batch.source.batch_kind(),
                source_ref: batch.source_ref.as_deref(),
                content_sha256: batch.content_sha256.as_deref(),
                rows,
                accepted: rows - rejected,
                rejected,
                actor: &batch.actor,
            },
            now,
        )
        .await?;
    let mut summary = BatchSummary {
        batch_id,
        rows,
        accepted: rows - rejected,
        rejected,
        ..BatchSummary::default()
    };
    let mut lines: Vec<(usize, PlanLine)> = Vec::new();
    let mut chain = Chain::start(ingest.tx()).await?;

    let mut records = batch.records;
    if let Planning::Accounts {
        stable_ids: false, ..
    } = planning
    {
        for record in &mut records {
            if let Ok(row) = &mut record.result {
                row.person.employee_id = format!("import-{batch_id}-{}", record.row);
            }
        }
    }
    // Collapse per employee: the last valid row wins; rejected rows have no effect at all. Rows stay in
    // `records` until their chunk is applied: only indices are kept meanwhile, so a large feed is held in
    // memory once.
    let mut rejects: Vec<Reject> = Vec::new();
    // For each employee, in the order of their first valid row: the index of their last valid row.
    let mut slots: Vec<usize> = Vec::new();
    {
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        for (i, record) in records.iter_mut().enumerate() {
            match &mut record.result {
                Err(faults) => {
                    rejects.extend(std::mem::take(faults).into_iter().map(|f| Reject {
                        row: record.row,
                        line: record.line,
                        field: f.field,
                        reason: f.reason.as_str(),
                    }));
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
    ingest.insert_rejects(batch_id, rejects).await?;

    // Legal holds the feed places and lifts, read before the rows move on (applied once the batch's
    // removals exist, in the same transaction).
    let (mut flagged, mut cleared) = (Vec::new(), Vec::new());
    if let (Some(attribute), Planning::Connectors(_)) = (&safety.legal_hold_attribute, &planning) {
        for &i in &slots {
            if let Ok(row) = &records[i].result {
                // The feed maps the attribute, so a row without it (an empty cell) clears it; a
                // push says something only when it carries the attribute; an operator's enqueue,
                // an import or a scan never places or lifts a hold.
                let value = row.person.attributes.get(attribute).map(String::as_str);
                match (batch.source, value) {
                    (BatchSource::Feed | BatchSource::Push, Some(v)) if SafetyConfig::holds(v) => {
                        flagged.push(row.person.employee_id.clone());
                    }
                    (BatchSource::Feed, _) | (BatchSource::Push, Some(_)) => {
                        cleared.push(row.person.employee_id.clone());
                    }
                    _ => {}
                }
            }
        }
    }

    // Removals that failed at planning for want of an account: a re-sent termination of the same person
    // gives them a second chance with the record as it is now (read again once the batch's people are
    // written).
    let waiting: Vec<(i64, String)> = match planning {
        Planning::Connectors(_) => ingest
            .failed_without_account()
            .await?
            .into_iter()
            .filter(|s| !s.imported)
            .map(|s| (s.id, s.person.employee_id))
            .collect(),
        Planning::Accounts { .. } => Vec::new(),
    };
    let waiting_for: HashSet<&str> = waiting.iter().map(|(_, e)| e.as_str()).collect();
    let mut resent: HashSet<String> = HashSet::new();

    // What each employee's row means, against the active terminations, before anything is written.
    let mut kinds: Vec<Kind> = Vec::with_capacity(slots.len());
    for chunk in slots.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|&i| employee_of(&records[i])).collect();
        let mut active = ingest.active_terminations(&ids).await?;
        // An operator's reject holds for the automated sources; `enqueue` and `import` are operators'
        // own acts.
        let rejected = if matches!(batch.source, BatchSource::Feed | BatchSource::Push) {
            ingest.rejected_terminations(&ids).await?
        } else {
            HashMap::new()
        };
        for &i in chunk {
            let Ok(row) = &records[i].result else {
                anyhow::bail!("row {} was collapsed as valid but is not", records[i].row);
            };
            if matches!(row.status, HrStatus::Terminated { .. })
                && waiting_for.contains(row.person.employee_id.as_str())
            {
                resent.insert(row.person.employee_id.clone());
            }
            kinds.push(
                match (row.status, active.remove(row.person.employee_id.as_str())) {
                    (HrStatus::Terminated { effective_at }, None)
                        if rejected
                            .get(row.person.employee_id.as_str())
                            .is_some_and(|times| {
                                times
                                    .iter()
                                    .any(|t| parse_ts(t).is_ok_and(|t| t == effective_at))
                            }) =>
                    {
                        summary.still_rejected += 1;
                        Kind::Nothing
                    }
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
        planning,
        safety,
        batch_id,
        source: batch.source,
        first_state,
        now,
        want_lines,
    };
    let last = ingest.last_ids().await?;
    let mut carry = Carry {
        termination: last.termination,
        removal: last.removal,
        writes: ingest.writes(now),
    };
    let mut kinds = kinds.into_iter();
    // Each chunk's writes go to the store as one command, and the next chunk is prepared while it runs, so
    // SQLite's thread and this one work side by side. A chunk with moves or rescinds is finished before the
    // next is prepared: those read the database and add to the audit chain.
    let mut flight: Option<Prepared> = None;
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
                ingest
                    .write_alongside(prev.chunk, || {
                        applying.prepare(
                            decisions,
                            &mut carry,
                            &mut chain,
                            &mut summary,
                            &mut lines,
                        )
                    })
                    .await??
            }
            Some(prev) => {
                applying
                    .finish(ingest, &mut chain, prev, &mut summary, &mut lines)
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
            .finish(ingest, &mut chain, prev, &mut summary, &mut lines)
            .await?;
    }
    drop(records);

    if let Planning::Connectors(connectors) = planning
        && !resent.is_empty()
    {
        let ids: Vec<i64> = waiting
            .iter()
            .filter(|(_, e)| resent.contains(e))
            .map(|(id, _)| *id)
            .collect();
        for source in ingest.account_sources(&ids).await? {
            let Some(connector) = connectors.iter().find(|c| c.name == source.connector) else {
                continue;
            };
            if let Ok(account) = crate::planner::account_for(connector, &source.person) {
                let due =
                    crate::planner::stage_due_at(source.effective_at, connector, &source.stage);
                if ingest
                    .replan(&mut chain, &source, &account, due, batch_id, now)
                    .await?
                {
                    summary.replanned += 1;
                }
            }
        }
    }

    // A rehire gives back what a deactivation took, on connectors that reactivate: a removal of its
    // own (stage `reactivate`), queued now that every chunk's ids are taken.
    if let Planning::Connectors(connectors) = &planning {
        for (termination_id, employee, connector, account) in
            std::mem::take(&mut summary.deactivated)
        {
            if !connectors
                .iter()
                .any(|c| c.name == connector && c.kind.reactivates())
            {
                continue;
            }
            if let Some(id) = ingest
                .add_reactivation(
                    termination_id,
                    &connector,
                    account.as_deref(),
                    batch_id,
                    now,
                )
                .await?
            {
                summary.reactivations += 1;
                chain.push(
                    now,
                    Entry::daemon("reactivation_planned")
                        .employee(&employee)
                        .connector(&connector)
                        .removal(id)
                        .batch(batch_id)
                        .detail(json!({"termination_id": termination_id, "to": "pending", "reason": "rehired after deactivation"})),
                );
            }
        }
    }

    if let (Some(attribute), Planning::Connectors(connectors)) =
        (&safety.legal_hold_attribute, &planning)
        && (!flagged.is_empty() || !cleared.is_empty())
    {
        let stages = crate::config::hold_stages(connectors);
        let (placed, lifted) = crate::store::holds::sync_feed_holds(
            ingest.tx(),
            &mut chain,
            attribute,
            &flagged,
            &cleared,
            &stages,
            now,
        )
        .await?;
        if placed + lifted > 0 {
            tracing::info!(
                placed,
                lifted,
                attribute,
                "Legal holds from the feed: placed on the people it flags, lifted where it no longer does."
            );
        }
    }

    let counts = BatchCounts {
        new_terminations: summary.new_terminations,
        rescinded: summary.rescinded,
        moved: summary.moved,
        held: summary.held,
    };
    ingest.set_counts(batch_id, &counts).await?;
    if summary.held {
        ingest
            .tx()
            .notify(
                &format!("batch_held:{batch_id}"),
                "batch_held",
                &format!(
                    "Batch {batch_id} is held by the mass-removal guard: {} new terminations (limit {}); nothing in it is removed until `offboard approve {batch_id}` or `offboard reject {batch_id}`",
                    summary.new_terminations, summary.limit
                ),
                &json!({"batch_id": batch_id, "new_terminations": summary.new_terminations, "limit": summary.limit}),
                now,
            )
            .await?;
    }
    if summary.failed_at_planning > 0 && !want_lines {
        tracing::error!(
            batch_id,
            removals = summary.failed_at_planning,
            "Removals failed at once: the HR record lacks a field a connector's account template needs. \
             Send the person again with it (feed, push or enqueue), or run `offboard retry` once the record has it; \
             `offboard removals --state failed` shows each reason."
        );
    }
    if summary.replanned > 0 {
        tracing::info!(
            batch_id,
            removals = summary.replanned,
            "Removals that had failed for want of an account field are queued again: the re-sent HR record has it."
        );
    }
    let mut received = Entry::by(&batch.actor, "batch_received")
        .batch(batch_id)
        .outcome(if summary.held { "held" } else { "accepted" });
    let mut detail = json!({
        "source": batch.source.as_str(),
        "source_ref": batch.source_ref,
        "content_sha256": batch.content_sha256,
        "rows": summary.rows,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "new_terminations": summary.new_terminations,
        "rescinded": summary.rescinded,
        "still_rejected": summary.still_rejected,
        "failed_at_planning": summary.failed_at_planning,
        "replanned": summary.replanned,
        "moved": summary.moved,
        "removals_planned": summary.removals_planned,
        "excluded": summary.excluded,
        "held": summary.held,
        "limit": summary.limit,
    });
    if let Planning::Accounts {
        connector, column, ..
    } = planning
    {
        received = received.connector(&connector.name);
        detail["column"] = json!(column);
    }
    chain.push(now, received.detail(detail));
    chain.write(ingest.tx()).await?;
    // Plan lines in input order: those of moves and rescinds were made after their chunk's new terminations.
    lines.sort_by_key(|(slot, _)| *slot);
    Ok((summary, lines.into_iter().map(|(_, line)| line).collect()))
}
