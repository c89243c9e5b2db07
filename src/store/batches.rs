//! Operator decisions on batches held by the mass-removal guard: approve releases their removals,
//! reject cancels them and remembers their terminations as rejected, until `unreject`. All audited with the
//! operator's name.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use super::Store;
use super::transition::To;
use crate::audit::{Chain, Entry};

/// A rejected termination still remembered.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Rejected {
    /// The termination.
    pub termination_id: i64,
    /// Whose.
    pub employee_id: String,
    /// Its effective time: a feed row with this time is not taken again.
    pub effective_at: String,
    /// The batch it came in.
    pub batch_id: i64,
    /// Who rejected it.
    pub rejected_by: Option<String>,
    /// When.
    pub rejected_at: String,
}

/// A batch waiting for a decision.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HeldBatch {
    /// Batch id.
    pub id: i64,
    /// Where it came from.
    pub source: String,
    /// When it arrived.
    pub received_at: String,
    /// Rows in it.
    pub rows: i64,
    /// Terminations it created.
    pub new_terminations: i64,
    /// Removals waiting in `held`.
    pub held_removals: i64,
}

/// A batch as the console shows it.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct BatchView {
    /// Batch id.
    pub id: i64,
    /// feed, push, cli or import.
    pub source: String,
    /// A path or URL without credentials.
    pub source_ref: Option<String>,
    /// When it arrived.
    pub received_at: String,
    /// Records read.
    pub rows: i64,
    /// Valid records.
    pub accepted: i64,
    /// Rejected records.
    pub rejected: i64,
    /// Terminations it created.
    pub new_terminations: i64,
    /// 1 when the mass-removal guard held it.
    pub held: i64,
    /// approved or rejected, once decided.
    pub decision: Option<String>,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<String>,
    /// Who sent it.
    pub actor: String,
}

/// An operator's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Release the held removals.
    Approve,
    /// Cancel the held removals and set aside the batch's terminations.
    Reject,
}

impl Store {
    /// One batch, if it exists.
    pub async fn batch_view(&self, id: i64) -> anyhow::Result<Option<BatchView>> {
        Ok(on_pool!(self, batches::view(id))?)
    }

    /// Batches held by the guard and not yet decided, oldest first.
    pub async fn held_batches(&self) -> anyhow::Result<Vec<HeldBatch>> {
        Ok(on_pool!(self, batches::held())?)
    }

    /// Applies a decision to a held batch; returns how many removals it changed.
    pub async fn decide_batch(
        &self,
        batch_id: i64,
        decision: Decision,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin_write().await?;
        match on_tx!(tx, batches::held_and_decision(batch_id))? {
            None => anyhow::bail!("no batch with id {batch_id}"),
            Some((0, _)) => {
                anyhow::bail!("batch {batch_id} was not held by the guard; nothing to decide")
            }
            Some((_, Some(done))) => anyhow::bail!("batch {batch_id} was already {done}"),
            Some(_) => {}
        }
        let (word, to, event) = match decision {
            Decision::Approve => ("approved", To::Released, "removal_approved"),
            Decision::Reject => ("rejected", To::Cancelled("rejected"), "removal_rejected"),
        };
        let removals = on_tx!(tx, batches::held_removals(batch_id))?;
        let mut chain = Chain::start(&mut tx).await?;
        for (id, connector, employee) in &removals {
            let entry = Entry::by(actor, event)
                .employee(employee)
                .connector(connector)
                .batch(batch_id);
            tx.transition(&mut chain, *id, "held", to, entry, now)
                .await?;
        }
        if decision == Decision::Reject {
            // The batch is judged wrong: its terminations are set aside so that a later, correct feed row
            // for the same person starts a new termination instead of matching this one.
            for (id, employee) in
                on_tx!(tx, batches::rescind_terminations_of(batch_id, actor, now))?
            {
                chain.push(
                    now,
                    Entry::by(actor, "termination_rejected")
                        .employee(employee)
                        .batch(batch_id)
                        .detail(json!({"termination_id": id})),
                );
            }
        }
        on_tx!(tx, batches::set_decision(batch_id, word, actor, now))?;
        chain.push(
            now,
            Entry::by(
                actor,
                if decision == Decision::Approve {
                    "batch_approved"
                } else {
                    "batch_rejected"
                },
            )
            .batch(batch_id)
            .outcome(word)
            .detail(json!({"removals": removals.len()})),
        );
        chain.write(&mut tx).await?;
        tx.announce_work().await?;
        tx.commit().await?;
        Ok(removals.len() as u64)
    }

    /// The rejected terminations still remembered (a feed repeating them is not held again).
    pub async fn rejected_terminations(&self) -> anyhow::Result<Vec<Rejected>> {
        Ok(on_pool!(self, batches::rejected())?)
    }

    /// Lifts the rejection of `employee`'s rejected terminations, so that the next feed or push that
    /// reports them starts a termination again; returns how many. Audited as `termination_unrejected`.
    pub async fn unreject(
        &self,
        employee: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin_write().await?;
        let ids = on_tx!(tx, batches::unreject(employee, now))?;
        if ids.is_empty() {
            anyhow::bail!("{employee} has no rejected termination (see `offboard rejected`)");
        }
        let mut chain = Chain::start(&mut tx).await?;
        for id in &ids {
            chain.push(
                now,
                Entry::by(actor, "termination_unrejected")
                    .employee(employee)
                    .detail(json!({"termination_id": id})),
            );
        }
        chain.write(&mut tx).await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Moves a connector's `planned` (dry-run) removals to `pending`, for when its dry-run was turned
    /// off after review. Returns how many.
    pub async fn approve_planned(
        &self,
        connector: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin_write().await?;
        let rows = on_tx!(tx, batches::planned_removals(connector))?;
        let mut chain = Chain::start(&mut tx).await?;
        for (id, employee) in &rows {
            let entry = Entry::by(actor, "removal_approved")
                .employee(employee)
                .connector(connector);
            tx.transition(&mut chain, *id, "planned", To::Requeued, entry, now)
                .await?;
        }
        chain.write(&mut tx).await?;
        tx.announce_work().await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}
