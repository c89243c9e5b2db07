//! How intake writes a batch's decisions, chunk by chunk: each chunk's people, new terminations, the
//! removals the planner plans for them and their audit rows are prepared as one command of the store, while
//! the store runs the chunk before; moves and rescinds, which read the database, follow their chunk.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{BatchSource, BatchSummary, Decision, PlanLine, Planning};
use crate::audit::{Chain, Entry};
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, Person, RemovalState};
use crate::planner;
use crate::store::ingest::{Chunk, Ingest, RemovalRow, TerminationRow, Writes};
use crate::store::transition::To;
use crate::store::ts;

/// What applying the decisions of a batch needs to know.
pub(super) struct Applying<'a> {
    pub(super) planning: Planning<'a>,
    pub(super) safety: &'a SafetyConfig,
    pub(super) batch_id: i64,
    pub(super) source: BatchSource,
    pub(super) first_state: RemovalState,
    pub(super) now: DateTime<Utc>,
    pub(super) want_lines: bool,
}

/// What preparing a chunk hands on to the next: the ids given to the last new termination and removal, and
/// the batch's writes.
pub(super) struct Carry {
    pub(super) termination: i64,
    pub(super) removal: i64,
    pub(super) writes: Writes,
}

/// A chunk's writes, ready to run as one command, and its decisions that read the database (moves,
/// rescinds, the plan lines of existing terminations), applied after the command ran.
pub(super) struct Prepared {
    pub(super) chunk: Chunk,
    pub(super) later: Vec<(usize, Decision)>,
}

/// A new termination and the id it is given.
struct NewTermination<'a> {
    slot: usize,
    id: i64,
    person: &'a Person,
    effective_at: DateTime<Utc>,
}

impl<'a> Applying<'a> {
    /// What the planner decides for a new termination of the record at `slot`.
    fn decide(
        &self,
        slot: usize,
        person: &Person,
        termination: planner::Planned,
    ) -> Vec<planner::Decided<'a>> {
        match self.planning {
            Planning::Connectors(connectors) => {
                planner::decide(connectors, self.safety, person, termination)
            }
            Planning::Accounts {
                connector,
                accounts,
                ..
            } => planner::decide_account(
                connector,
                self.safety,
                person,
                &accounts[slot],
                termination,
            ),
        }
    }

    /// Prepares a chunk without touching the database: every person's row, the new terminations and their
    /// removals with the ids they will have, and the audit rows of the new terminations (plus any the chain
    /// holds from earlier chunks), as one command. Plan lines are tagged with the input position.
    pub(super) fn prepare(
        &self,
        chunk: Vec<(usize, Decision)>,
        carry: &mut Carry,
        chain: &mut Chain,
        summary: &mut BatchSummary,
        lines: &mut Vec<(usize, PlanLine)>,
    ) -> anyhow::Result<Prepared> {
        let now = self.now;
        let people: Vec<&Person> = chunk.iter().map(|(_, d)| &d.row().person).collect();
        carry.writes.people(&people)?;
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
                    self.decide(*slot, person, termination)
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
        let rows: Vec<TerminationRow<'_>> = news
            .iter()
            .map(|new| TerminationRow {
                id: new.id,
                employee_id: &new.person.employee_id,
                effective_at: new.effective_at,
            })
            .collect();
        carry
            .writes
            .terminations(&rows, self.source.as_str(), self.batch_id)?;
        drop(rows);
        let removal_ids: Vec<Option<i64>> = planned
            .iter()
            .map(|(_, d)| {
                d.removal.as_ref().map(|_| {
                    carry.removal += 1;
                    carry.removal
                })
            })
            .collect();
        // Sized up front: a row is large, and a growing vector would copy them again and again.
        let mut removals: Vec<RemovalRow<'_>> = Vec::with_capacity(planned.len());
        for ((_, decided), id) in planned.iter().zip(&removal_ids) {
            if let (Some(new), Some(id)) = (&decided.removal, id) {
                removals.push(removal_row(*id, new));
            }
        }
        carry.writes.removals(removals)?;

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
                    } else if removal.account.is_err() {
                        summary.failed_at_planning += 1;
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
        chain.write_into(&mut carry.writes)?;
        drop(news);

        let later = chunk
            .into_iter()
            .filter(|(_, d)| match d {
                Decision::Move(..) | Decision::Rescind(..) => true,
                Decision::Same(..) => self.want_lines,
                Decision::New(_) | Decision::Nothing(_) => false,
            })
            .collect();
        Ok(Prepared {
            chunk: carry.writes.take(),
            later,
        })
    }

    /// Runs a prepared chunk's command, then its moves, rescinds and plan lines of existing terminations, in
    /// input order. Their audit rows stay on the chain for the next command.
    pub(super) async fn finish(
        &self,
        ingest: &mut Ingest,
        chain: &mut Chain,
        prepared: Prepared,
        summary: &mut BatchSummary,
        lines: &mut Vec<(usize, PlanLine)>,
    ) -> anyhow::Result<()> {
        let now = self.now;
        ingest.write(prepared.chunk).await?;
        for (slot, decision) in prepared.later {
            let mut made = Vec::new();
            match decision {
                Decision::Move(row, id, current) => {
                    let HrStatus::Terminated { effective_at } = row.status else {
                        continue;
                    };
                    let connectors: &[ConnectorConfig] = match self.planning {
                        Planning::Connectors(connectors) => connectors,
                        Planning::Accounts { connector, .. } => std::slice::from_ref(connector),
                    };
                    // An account's removals (import, inactivity) start at the effective time, later
                    // stages as long after it as in the connector's list (`decide_account`).
                    let accounts = matches!(self.planning, Planning::Accounts { .. });
                    let due: Vec<(&str, &str, DateTime<Utc>)> = connectors
                        .iter()
                        .flat_map(|c| {
                            c.stages.iter().map(move |s| {
                                let after = if accounts {
                                    s.after.saturating_sub(c.grace)
                                } else {
                                    s.after
                                };
                                (
                                    c.name.as_str(),
                                    s.action.as_str(),
                                    planner::due_at(effective_at, after),
                                )
                            })
                        })
                        .collect();
                    let moved = ingest.move_termination(id, effective_at, &due, now).await?;
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
                            stage: None,
                            action: "moved".into(),
                            due_at: None,
                            account: None,
                            note: Some(format!("effective {current} → {}", ts(effective_at))),
                        });
                        made.extend(existing_lines(ingest, &row.person.employee_id, id).await?);
                    }
                }
                Decision::Same(row, id) => {
                    if self.want_lines {
                        made.extend(existing_lines(ingest, &row.person.employee_id, id).await?);
                    }
                }
                Decision::Rescind(row, id) => {
                    let rescinded = Rescinded {
                        employee_id: &row.person.employee_id,
                        termination_id: id,
                        batch_id: self.batch_id,
                        now,
                    };
                    rescinded.apply(ingest, chain, summary, &mut made).await?;
                }
                Decision::New(_) | Decision::Nothing(_) => {}
            }
            lines.extend(made.into_iter().map(|line| (slot, line)));
        }
        Ok(())
    }
}

/// The row a planned removal is stored as, with the id it is given.
fn removal_row<'a>(id: i64, new: &'a planner::NewRemoval<'_>) -> RemovalRow<'a> {
    let stored = planner::Stored::of(new);
    RemovalRow {
        id,
        termination_id: new.termination_id,
        connector: new.connector,
        stage: new.stage,
        stage_index: new.stage_index,
        account: stored.account,
        state: stored.state,
        due_at: new.due_at,
        error: stored.error,
        batch_id: new.batch_id,
    }
}

/// Plan lines for the removals an existing termination already has.
async fn existing_lines(
    ingest: &mut Ingest,
    employee_id: &str,
    termination_id: i64,
) -> anyhow::Result<Vec<PlanLine>> {
    Ok(ingest
        .removals_of(termination_id)
        .await?
        .into_iter()
        .map(|(connector, stage, state, due_at, account)| PlanLine {
            employee_id: employee_id.to_string(),
            connector: Some(connector),
            stage: (!stage.is_empty()).then_some(stage),
            action: format!("already_{state}"),
            due_at: Some(due_at),
            account,
            note: None,
        })
        .collect())
}

/// An active termination that a row rescinds (a rehire or a reversal).
struct Rescinded<'a> {
    employee_id: &'a str,
    termination_id: i64,
    batch_id: i64,
    now: DateTime<Utc>,
}

impl Rescinded<'_> {
    /// Rescinds the termination and cancels its pending and held removals; a removal already done is
    /// reported as a rehire after removal, to be restored by hand.
    async fn apply(
        &self,
        ingest: &mut Ingest,
        chain: &mut Chain,
        summary: &mut BatchSummary,
        lines: &mut Vec<PlanLine>,
    ) -> anyhow::Result<()> {
        let Self {
            employee_id,
            termination_id,
            batch_id,
            now,
        } = *self;
        let line = |connector: Option<&str>, action: &str, note: Option<String>| PlanLine {
            employee_id: employee_id.to_string(),
            connector: connector.map(str::to_string),
            stage: None,
            action: action.into(),
            due_at: None,
            account: None,
            note,
        };
        ingest.rescind(termination_id, now).await?;
        summary.rescinded += 1;
        lines.push(line(None, "rescinded", None));
        chain.push(
            now,
            Entry::daemon("termination_rescinded")
                .employee(employee_id)
                .batch(batch_id)
                .detail(json!({"termination_id": termination_id})),
        );
        let cancelled = ingest.open_removals(termination_id).await?;
        for (id, connector, state) in &cancelled {
            let entry = Entry::daemon("removal_cancelled")
                .employee(employee_id)
                .connector(connector)
                .batch(batch_id);
            ingest
                .tx()
                .transition(chain, *id, state, To::Cancelled("rescinded"), entry, now)
                .await?;
            let note = format!("was {state}; rescinded");
            lines.push(line(Some(connector), "cancelled", Some(note)));
        }
        summary.removals_cancelled += cancelled.len() as u64;
        for (connector, account) in ingest.deactivated(termination_id).await? {
            summary
                .deactivated
                .push((termination_id, employee_id.to_string(), connector, account));
        }
        let done = ingest.done_connectors(termination_id).await?;
        if !done.is_empty() {
            summary.rehired_after_removal += 1;
            tracing::warn!(
                employee_id,
                connectors = ?done,
                "Rehired after removal: access was already removed and must be restored by hand."
            );
            for (connector, stage) in &done {
                let note = match stage.as_str() {
                    "" => "access was already removed; restore it by hand".to_string(),
                    stage => format!(
                        "rehired after the {stage} stage: undo it by hand in {connector} (later stages are cancelled)"
                    ),
                };
                lines.push(line(Some(connector), "rehired_after_removal", Some(note)));
            }
            let mut removed_on: Vec<String> = done.iter().map(|(c, _)| c.clone()).collect();
            removed_on.dedup();
            let stages: Vec<serde_json::Value> = done
                .iter()
                .filter(|(_, s)| !s.is_empty())
                .map(|(c, s)| json!({"connector": c, "stage": s}))
                .collect();
            let mut detail = json!({"termination_id": termination_id, "removed_on": removed_on});
            if !stages.is_empty() {
                detail["stages_done"] = json!(stages);
            }
            chain.push(
                now,
                Entry::daemon("rehired_after_removal")
                    .employee(employee_id)
                    .batch(batch_id)
                    .detail(detail),
            );
        }
        Ok(())
    }
}
