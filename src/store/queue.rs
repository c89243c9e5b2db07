//! The removal queue: claim, record attempts (fenced), reclaim expired leases, operator retry and cancel,
//! and the listings. Every change is audited in its own transaction.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use super::holds::HoldStages;
use super::transition::To;
use super::{Store, Tx, parse_ts, ts};
use crate::audit::{self, Entry};
use crate::connectors::{Bound, VendorCall};
use crate::domain::{Person, RemovalState};

/// A running removal whose lease expired (or, at start, one this host's dead process held).
#[derive(FromRow)]
pub(in crate::store) struct Expired {
    pub(in crate::store) id: i64,
    pub(in crate::store) connector: String,
    pub(in crate::store) attempts: i64,
    pub(in crate::store) retry_base: i64,
    pub(in crate::store) lease_owner: Option<String>,
    pub(in crate::store) employee_id: String,
}

/// The account a removal is bound to, and since when (see [`Store::bind`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The account.
    pub account: Bound,
    /// When an attempt first was about to send the call that acts on it.
    pub remove_sent_at: DateTime<Utc>,
}

/// A removal with what its account key is made from (see [`Store::retry`], `Ingest::replan_failed`).
#[derive(Debug, Clone)]
pub struct AccountSource {
    /// Removal id.
    pub id: i64,
    /// Connector name.
    pub connector: String,
    /// The stage's action ("" for a connector without stages).
    pub stage: String,
    /// Its state.
    pub state: String,
    /// The account key it holds, if one could be made.
    pub account: Option<String>,
    /// The account came from an `import` file, not from a template: never made again.
    pub imported: bool,
    /// The termination's effective time.
    pub effective_at: DateTime<Utc>,
    /// The person as stored now.
    pub person: Person,
}

/// How a removal's account key is made again from the person's current HR data: the connector's
/// template (`planner::account_for`); `None` for a connector no longer configured.
pub type Render<'a> = &'a (dyn Fn(&str, &Person) -> Option<Result<String, String>> + Sync);

/// A removal a retry left `failed`, and why.
#[derive(Debug, Clone, Serialize)]
pub struct NotRetried {
    /// Removal id.
    pub id: i64,
    /// Why: the account still cannot be made.
    pub reason: String,
}

/// A removal claimed by a worker, with what the connector needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Removal id.
    pub id: i64,
    /// The account an earlier attempt bound the removal to, if one did.
    pub bound: Option<Binding>,
    /// Its termination.
    pub termination_id: i64,
    /// Connector name.
    pub connector: String,
    /// The stage's action ("" for a connector without stages).
    pub stage: String,
    /// The stage's place in its connector's list (0: the one that removes access).
    pub stage_index: i64,
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

/// A finished attempt for [`Store::record_and_claim`]: the claim, the vendor calls it made, and how it ended.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The claim the attempt worked on.
    pub claim: Claimed,
    /// Its vendor calls, in order.
    pub calls: Vec<VendorCall>,
    /// How it ended.
    pub completion: Completion,
}

/// What one [`Store::record_and_claim`] did.
#[derive(Debug, Clone, Default)]
pub struct Turn {
    /// For each recorded attempt, in order: applied, or refused by the fence.
    pub applied: Vec<Applied>,
    /// The removals claimed, per connector in the order asked, each connector's oldest due first.
    pub claimed: Vec<Claimed>,
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

impl Store {
    /// Claims up to `limit` due removals of `connector` for `owner`, each under a lease until `now + lease`.
    /// One short write transaction; each claim is audited.
    pub async fn claim(
        &self,
        owner: &str,
        connector: &str,
        limit: u32,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<Claimed>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let turn = self
            .record_and_claim(
                &[],
                &[(connector, limit)],
                &[],
                limit,
                owner,
                lease,
                now,
                now,
            )
            .await?;
        Ok(turn.claimed)
    }

    /// One turn of the worker loop in one short `BEGIN IMMEDIATE` transaction, so the whole turn costs a
    /// single commit: records `finished` attempts (each fenced as [`Store::complete`] does), then claims, for each
    /// `(connector, limit)` of `wanted` in turn, up to `limit` due removals for `owner` under a lease until
    /// `now + lease`, and no more than `total` over all connectors. Only removals due at or before `due_by`
    /// (capped at `now`) are claimed: a drain takes what was due when it started, never a retry it scheduled
    /// itself. Before it claims, the pending removals of `holds` (each connector's destructive stages) of
    /// people under a legal hold are put on hold, so none of them is claimed. Every change is audited in
    /// the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_and_claim(
        &self,
        finished: &[Attempt],
        wanted: &[(&str, u32)],
        holds: HoldStages<'_>,
        total: u32,
        owner: &str,
        lease: Duration,
        now: DateTime<Utc>,
        due_by: DateTime<Utc>,
    ) -> anyhow::Result<Turn> {
        let expires = now + chrono::Duration::from_std(lease)?;
        let mut tx = self.begin_write().await?;
        let mut chain = audit::Chain::start(&mut tx).await?;
        let mut turn = Turn {
            applied: record_all(&mut tx, &mut chain, finished, now).await?,
            claimed: Vec::new(),
        };
        if !wanted.is_empty() {
            super::holds::put_on_hold(&mut tx, &mut chain, holds, audit::DAEMON, now).await?;
        }
        let mut left = total;
        for (connector, limit) in wanted {
            let limit = left.min(*limit);
            if limit > 0 {
                let claimed = on_tx!(
                    tx,
                    queue::claim(owner, connector, limit, expires, now, due_by,)
                )?;
                for claim in &claimed {
                    chain.push(
                        now,
                        Entry::daemon("removal_claimed")
                            .employee(&claim.person.employee_id)
                            .connector(&claim.connector)
                            .removal(claim.id)
                            .attempt(claim.attempt)
                            .detail(json!({"from": "pending", "to": "running", "lease_owner": owner, "lease_expires_at": ts(expires)})),
                    );
                }
                left -= u32::try_from(claimed.len()).unwrap_or(limit).min(limit);
                turn.claimed.extend(claimed);
            }
        }
        chain.write(&mut tx).await?;
        tx.commit().await?;
        Ok(turn)
    }

    /// Binds each claimed removal to the account its attempt resolved, before the attempt sends the call
    /// that acts on it: later attempts look up that account alone, and a later "not found" reads as
    /// removed by this attempt. One transaction for all, each fenced by attempt number and lease owner
    /// and audited (`removal_bound`); returns, per binding, whether the fence let it through (an attempt
    /// whose lease was lost must not act).
    pub async fn bind(
        &self,
        bindings: &[(&Claimed, &Bound)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let mut chain = audit::Chain::start(&mut tx).await?;
        let mut applied = Vec::with_capacity(bindings.len());
        for (claim, account) in bindings {
            let ok = on_tx!(tx, queue::bind(claim, account, now))?;
            if ok {
                chain.push(
                    now,
                    Entry::daemon("removal_bound")
                        .employee(&claim.person.employee_id)
                        .connector(&claim.connector)
                        .removal(claim.id)
                        .attempt(claim.attempt)
                        .detail(json!({
                            "remote_id": vendor_id(claim, &Some(account.id.clone())),
                            "first_call": claim.bound.is_none(),
                        })),
                );
            }
            applied.push(ok);
        }
        chain.write(&mut tx).await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Records an attempt's vendor calls and its outcome in one transaction, fenced by the attempt
    /// number and lease owner so a worker whose lease expired cannot overwrite a newer attempt.
    pub async fn complete(
        &self,
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
        let turn = self
            .record_and_claim(
                &[attempt],
                &[],
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
}

/// The new column values of a removal after an attempt.
pub(super) struct Outcome {
    pub(super) state: RemovalState,
    pub(super) outcome: Option<String>,
    pub(super) remote_id: Option<String>,
    pub(super) last_error: Option<String>,
    /// When it is due again (a retry).
    pub(super) due_at: Option<DateTime<Utc>>,
    /// Whether the attempt finished the removal (`finished_at` is set to the time of recording).
    pub(super) finished: bool,
    pub(super) credential_refused: bool,
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

fn outcome_of(completion: &Completion) -> Outcome {
    let finished = |state,
                    outcome: Option<&str>,
                    remote_id: &Option<String>,
                    last_error: Option<&String>| Outcome {
        state,
        outcome: outcome.map(str::to_string),
        remote_id: remote_id.clone(),
        last_error: last_error.cloned(),
        due_at: None,
        finished: true,
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
            due_at: Some(*due_at),
            finished: false,
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
    let outcomes: Vec<(&Claimed, Outcome)> = attempts
        .iter()
        .map(|a| (&a.claim, outcome_of(&a.completion)))
        .collect();
    let applied = on_tx!(tx, queue::record(&outcomes, now))?;
    // An attempt the fence refused may have been recorded already: a commit whose answer was lost (the
    // database restarted as it committed) is sent again with the next turn. Its rows are in the log;
    // writing them again, or a refusal, would record what did not happen.
    let mut recorded_before = HashSet::new();
    for a in attempts {
        let key = (a.claim.id, a.claim.attempt);
        if !applied.contains(&key)
            && on_tx!(tx, queue::completion_recorded(a.claim.id, a.claim.attempt))?
        {
            recorded_before.insert(key);
        }
    }
    for a in attempts {
        if let Completion::Failed { error } = &a.completion
            && applied.contains(&(a.claim.id, a.claim.attempt))
        {
            tx.notify(
                &format!("removal_failed:{}:{}", a.claim.id, a.claim.attempt),
                "removal_failed",
                &format!(
                    "Removal {} ({} on {}) failed for good: {error}; an operator must act (`offboard retry {}` or `offboard cancel {}`)",
                    a.claim.id, a.claim.person.employee_id, a.claim.connector, a.claim.id, a.claim.id
                ),
                &json!({"removal_id": a.claim.id, "employee_id": a.claim.person.employee_id, "connector": a.claim.connector, "error": error}),
                now,
            )
            .await?;
        }
    }
    Ok(attempts
        .iter()
        .map(|a| {
            if recorded_before.contains(&(a.claim.id, a.claim.attempt)) {
                return Applied::Applied;
            }
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

/// What [`Store::reclaim_expired`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Removals returned to `pending`, to be tried again.
    pub requeued: u64,
    /// Removals moved to `failed`: their attempts, the cut-short ones included, reached the connector's
    /// `max_attempts`.
    pub failed: u64,
}

/// A removal as listed by the CLI.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct RemovalView {
    /// Removal id.
    pub id: i64,
    /// Employee id.
    pub employee_id: String,
    /// Connector name.
    pub connector: String,
    /// The stage's action ("" for a connector without stages).
    pub stage: String,
    /// Account key.
    pub account: Option<String>,
    /// State.
    pub state: String,
    /// When it is (or was) due.
    pub due_at: String,
    /// Attempts made.
    pub attempts: i64,
    /// Outcome when finished.
    pub outcome: Option<String>,
    /// Last error or reason.
    pub last_error: Option<String>,
    /// Termination effective time.
    pub effective_at: String,
    /// When it finished.
    pub finished_at: Option<String>,
}

/// Which removals to list.
#[derive(Debug, Clone, Default)]
pub struct RemovalFilter {
    /// Only this state.
    pub state: Option<RemovalState>,
    /// Only this connector.
    pub connector: Option<String>,
    /// Only this employee.
    pub employee_id: Option<String>,
    /// Only this removal.
    pub id: Option<i64>,
    /// Only the removals of this batch.
    pub batch_id: Option<i64>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// Which removals an operator retry applies to.
#[derive(Debug, Clone)]
pub enum RetrySelection {
    /// One removal (failed or planned).
    One(i64),
    /// Every failed removal, optionally of one connector.
    Failed {
        /// Only this connector.
        connector: Option<String>,
    },
}

impl Store {
    /// The earliest moment work may become claimable for these connectors: a pending removal's due
    /// time or a running removal's lease expiry. One read, each part from an index.
    pub async fn next_wakeup(
        &self,
        connectors: &[String],
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let next = on_pool!(self, queue::next_wakeup(connectors))?;
        next.as_deref().map(parse_ts).transpose()
    }

    /// How many removals are due now for a connector.
    pub async fn count_due(&self, connector: &str, now: DateTime<Utc>) -> anyhow::Result<i64> {
        Ok(on_pool!(self, queue::count_due(connector, now))?)
    }

    /// Whether the termination is still active (re-checked right before a destructive call).
    pub async fn termination_is_active(&self, termination_id: i64) -> anyhow::Result<bool> {
        let status = on_pool!(self, queue::termination_status(termination_id))?;
        Ok(status.as_deref() == Some("active"))
    }

    /// Whether the person of a (rescinded) termination is terminated again: a reactivation must not
    /// give a leaver their access back.
    pub async fn terminated_again(&self, termination_id: i64) -> anyhow::Result<bool> {
        Ok(on_pool!(self, queue::terminated_again(termination_id))?)
    }

    /// Lists removals, oldest due first.
    pub async fn removals(&self, filter: &RemovalFilter) -> anyhow::Result<Vec<RemovalView>> {
        Ok(on_pool!(self, queue::list(filter))?)
    }

    /// Counts of removals by connector and state.
    pub async fn removal_counts(&self) -> anyhow::Result<BTreeMap<(String, String), i64>> {
        let rows = on_pool!(self, queue::counts())?;
        Ok(rows.into_iter().map(|(c, s, n)| ((c, s), n)).collect())
    }

    /// Puts failed (or planned) removals back to `pending`, due now, with a fresh attempt budget, their
    /// account key made again from the person's HR data as stored now (`render`), so that a removal that
    /// failed for a field the HR record lacked can run once the record has it. A removal whose account
    /// still cannot be made stays `failed` and is returned with the reason (for one removal, an error).
    /// Returns the ids retried.
    pub async fn retry(
        &self,
        selection: &RetrySelection,
        render: Render<'_>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<(Vec<i64>, Vec<NotRetried>)> {
        let mut tx = self.begin_write().await?;
        let rows = on_tx!(tx, queue::selected(selection))?;
        if let RetrySelection::One(id) = selection {
            match rows.first() {
                None => anyhow::bail!("no removal with id {id}"),
                Some((_, _, state, _)) if state != "failed" && state != "planned" => {
                    anyhow::bail!(
                        "removal {id} is {state}; only failed or planned removals can be retried"
                    )
                }
                _ => {}
            }
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let sources = on_tx!(tx, queue::account_sources(&ids))?;
        let mut chain = audit::Chain::start(&mut tx).await?;
        let mut retried = Vec::new();
        let mut not_retried = Vec::new();
        for source in &sources {
            let mut detail = None;
            if !source.imported {
                match render(&source.connector, &source.person) {
                    Some(Ok(account)) if source.account.as_deref() != Some(account.as_str()) => {
                        on_tx!(tx, queue::set_account(source.id, &account, now))?;
                        detail = Some(json!({"account_made_again": true}));
                    }
                    Some(Err(reason)) => {
                        if let RetrySelection::One(id) = selection {
                            anyhow::bail!("removal {id} cannot run yet: {reason}");
                        }
                        not_retried.push(NotRetried {
                            id: source.id,
                            reason,
                        });
                        continue;
                    }
                    _ => {}
                }
            }
            let mut entry = Entry::by(actor, "operator_retry")
                .employee(&source.person.employee_id)
                .connector(&source.connector);
            if let Some(detail) = detail {
                entry = entry.detail(detail);
            }
            tx.transition(
                &mut chain,
                source.id,
                &source.state,
                To::Requeued,
                entry,
                now,
            )
            .await?;
            retried.push(source.id);
        }
        chain.write(&mut tx).await?;
        tx.announce_work().await?;
        tx.commit().await?;
        Ok((retried, not_retried))
    }

    /// Cancels a pending, held or failed removal with the operator's reason.
    pub async fn cancel(
        &self,
        id: i64,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        let Some((connector, state, employee)) = on_tx!(tx, queue::removal(id))? else {
            anyhow::bail!("no removal with id {id}");
        };
        if !matches!(
            state.as_str(),
            "pending" | "held" | "on_hold" | "failed" | "planned"
        ) {
            anyhow::bail!(
                "removal {id} is {state}; only pending, held, on_hold, failed or planned removals can be cancelled"
            );
        }
        let mut chain = audit::Chain::start(&mut tx).await?;
        let entry = Entry::by(actor, "operator_cancel")
            .employee(employee)
            .connector(connector);
        tx.transition(&mut chain, id, &state, To::Cancelled(reason), entry, now)
            .await?;
        chain.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
