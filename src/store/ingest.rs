//! Ingesting a batch: the store's busiest write. The intake (`feed::intake`) decides what each row means and
//! the planner what it plans; an [`Ingest`] is how that is stored, all in one write transaction: the batch
//! row and its rejects, the active terminations the rows are checked against, then chunk after chunk of
//! people, terminations, removals and audit rows, each chunk one command ([`Writes`], [`Chunk`]) that can
//! run while the next one is prepared ([`Ingest::write_alongside`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::audit_log::AuditRow;
use super::{Error, Store, Tx, TxInner, postgres, sqlite};
use crate::audit::{self, Entry};
use crate::domain::{Person, RemovalState};

/// A batch received whole, as its row starts.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    /// feed, push, cli or import.
    pub source: &'a str,
    /// A path or URL without credentials.
    pub source_ref: Option<&'a str>,
    /// SHA-256 of the input bytes.
    pub content_sha256: Option<&'a str>,
    /// Records read.
    pub rows: u64,
    /// Valid records.
    pub accepted: u64,
    /// Rejected records.
    pub rejected: u64,
    /// Who sent it.
    pub actor: &'a str,
}

/// One fault of a rejected record.
#[derive(Debug, Clone)]
pub struct Reject {
    /// The record's number.
    pub row: u64,
    /// The line it starts on, when the source has lines.
    pub line: Option<u64>,
    /// The field, or `None` for the whole record.
    pub field: Option<String>,
    /// The reason's code.
    pub reason: &'static str,
}

/// What a batch did, as its row keeps it.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchCounts {
    /// Terminations created.
    pub new_terminations: u64,
    /// Terminations rescinded.
    pub rescinded: u64,
    /// Terminations whose effective time moved.
    pub moved: u64,
    /// Whether the mass-removal guard held the batch.
    pub held: bool,
}

/// A new active termination, with the id it is given.
#[derive(Debug, Clone, Copy)]
pub struct TerminationRow<'a> {
    /// Its id, after [`Ingest::last_ids`].
    pub id: i64,
    /// The leaver.
    pub employee_id: &'a str,
    /// When it takes effect.
    pub effective_at: DateTime<Utc>,
}

/// A new removal, with the id it is given. One that starts `failed` or `cancelled` starts finished.
#[derive(Debug, Clone)]
pub struct RemovalRow<'a> {
    /// Its id, after [`Ingest::last_ids`].
    pub id: i64,
    /// Its termination.
    pub termination_id: i64,
    /// The connector.
    pub connector: &'a str,
    /// The stage's action ('' for a connector without stages).
    pub stage: &'a str,
    /// The stage's place in the connector's list.
    pub stage_index: i64,
    /// The account key, when one could be made.
    pub account: Option<&'a str>,
    /// Its first state.
    pub state: RemovalState,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// Why it starts failed or cancelled.
    pub error: Option<String>,
    /// The batch that created it.
    pub batch_id: i64,
}

/// The largest termination and removal ids when an ingest began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastIds {
    /// The largest termination id (0 when there is none).
    pub termination: i64,
    /// The largest removal id (0 when there is none).
    pub removal: i64,
}

/// A batch being ingested: one write transaction, committed or rolled back as a whole.
pub struct Ingest {
    tx: Tx,
    /// The values of the command run last by [`Ingest::write_alongside`], freed while the next one runs.
    spent: Option<sqlite::Spent>,
}

/// Multi-row inserts in the backend's form.
enum Script {
    Sqlite(sqlite::Script),
    Postgres(postgres::Script),
}

/// Runs the statement builder `module::function(script, args)` on a [`Script`] of either backend.
macro_rules! into_script {
    ($script:expr, $module:ident :: $function:ident ( $($arg:expr),* $(,)? )) => {
        match $script {
            Script::Sqlite(script) => sqlite::$module::$function(script, $($arg),*),
            Script::Postgres(script) => postgres::$module::$function(script, $($arg),*),
        }
    };
}

/// The writes of one chunk of a batch, built while the previous chunk runs. Text that many rows bind
/// (connector and state names, times) is kept once for the whole batch.
pub struct Writes {
    script: Script,
    shared: Shared,
}

/// One chunk's writes, ready to run as one command.
pub struct Chunk {
    script: Script,
}

impl Store {
    /// Starts ingesting a batch.
    pub async fn begin_ingest(&self) -> anyhow::Result<Ingest> {
        Ok(Ingest {
            tx: self.begin_write().await?,
            spent: None,
        })
    }

    /// Records a batch that could not be read at all (fetch failed, no header, …). Nothing else changes.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_failed_batch(
        &self,
        source: &str,
        source_ref: Option<&str>,
        actor: &str,
        error_code: &str,
        message: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let error = format!("{error_code}: {message}");
        let entry = Entry::by(actor, "batch_failed")
            .outcome(error_code)
            .detail(json!({"source": source, "source_ref": source_ref, "error": message}));
        self.record_unread_batch(source, source_ref, "failed", Some(&error), entry, now)
            .await
    }

    /// Records a poll whose source answered "not modified": nothing to read, nothing changes.
    pub async fn record_unchanged_batch(
        &self,
        source_ref: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let entry = Entry::by(actor, "batch_unchanged")
            .detail(json!({"source": "feed", "source_ref": source_ref}));
        self.record_unread_batch("feed", Some(source_ref), "unchanged", None, entry, now)
            .await
    }

    async fn record_unread_batch(
        &self,
        source: &str,
        source_ref: Option<&str>,
        status: &str,
        error: Option<&str>,
        entry: Entry,
        now: DateTime<Utc>,
    ) -> anyhow::Result<i64> {
        let mut tx = self.begin_write().await?;
        let batch_id = on_tx!(
            tx,
            ingest::insert_unread_batch(source, source_ref, status, error, &entry.actor, now,)
        )?;
        audit::append(&mut tx, now, entry.batch(batch_id)).await?;
        tx.commit().await?;
        Ok(batch_id)
    }
}

impl Ingest {
    /// The transaction, for the audit chain and for [`Tx::transition`].
    pub fn tx(&mut self) -> &mut Tx {
        &mut self.tx
    }

    /// Stores the batch's row; returns its id.
    pub async fn insert_batch(
        &mut self,
        batch: &NewBatch<'_>,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        on_tx!(self.tx, ingest::insert_batch(batch, now))
    }

    /// Stores the faults of the batch's rejected records.
    pub async fn insert_rejects(
        &mut self,
        batch_id: i64,
        rejects: Vec<Reject>,
    ) -> Result<(), Error> {
        on_tx!(self.tx, ingest::insert_rejects(batch_id, rejects))
    }

    /// The removals that failed at planning for want of an account (the HR record lacked a field the
    /// connector's template needs, or the kind refused the key) and whose termination is still active.
    pub async fn failed_without_account(
        &mut self,
    ) -> anyhow::Result<Vec<super::queue::AccountSource>> {
        on_tx!(self.tx, queue::failed_without_account())
    }

    /// These removals with the person as stored now (after this batch's writes).
    pub async fn account_sources(
        &mut self,
        ids: &[i64],
    ) -> anyhow::Result<Vec<super::queue::AccountSource>> {
        on_tx!(self.tx, queue::account_sources(ids))
    }

    /// Gives a removal that failed at planning the account now made from the re-sent HR record and
    /// puts it back in the queue, due at `due_at`; audited as `removal_replanned` on `chain`.
    pub async fn replan(
        &mut self,
        chain: &mut audit::Chain,
        source: &super::queue::AccountSource,
        account: &str,
        due_at: DateTime<Utc>,
        batch_id: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        on_tx!(self.tx, queue::set_account(source.id, account, now))?;
        if !on_tx!(self.tx, queue::replan(source.id, due_at, now))? {
            return Ok(false);
        }
        chain.push(
            now,
            Entry::daemon("removal_replanned")
                .employee(&source.person.employee_id)
                .connector(&source.connector)
                .removal(source.id)
                .batch(batch_id)
                .outcome("pending")
                .detail(json!({
                    "from": "failed", "to": "pending", "due_at": super::ts(due_at),
                    "reason": "the re-sent HR record has what the account template needs",
                })),
        );
        Ok(true)
    }

    /// The effective times of these employees' rejected terminations still remembered (`offboard reject`).
    pub async fn rejected_terminations(
        &mut self,
        employee_ids: &[&str],
    ) -> anyhow::Result<HashMap<String, Vec<String>>> {
        let mut by_employee: HashMap<String, Vec<String>> = HashMap::new();
        for (employee, effective_at) in
            on_tx!(self.tx, ingest::rejected_terminations(employee_ids))?
        {
            by_employee.entry(employee).or_default().push(effective_at);
        }
        Ok(by_employee)
    }

    /// The active terminations of these employees: employee → (termination id, effective time as stored).
    pub async fn active_terminations(
        &mut self,
        employee_ids: &[&str],
    ) -> anyhow::Result<HashMap<String, (i64, String)>> {
        let rows = on_tx!(self.tx, ingest::active_terminations(employee_ids))?;
        Ok(rows
            .into_iter()
            .map(|(employee, id, effective_at)| (employee, (id, effective_at)))
            .collect())
    }

    /// The largest termination and removal ids. The batch gives its new rows the ids after them, as the
    /// database itself would (nobody else writes while the transaction is open), so a chunk's audit rows can
    /// list its removals' ids before the chunk is stored; a clash fails the insert.
    pub async fn last_ids(&mut self) -> Result<LastIds, Error> {
        Ok(LastIds {
            termination: max_id(&mut self.tx.inner, "terminations").await?,
            removal: max_id(&mut self.tx.inner, "removals").await?,
        })
    }

    /// An empty set of writes for this batch, whose rows are created and updated at `now`.
    pub fn writes(&self, now: DateTime<Utc>) -> Writes {
        Writes {
            script: match self.tx.inner {
                TxInner::Sqlite(_) => Script::Sqlite(sqlite::Script::default()),
                TxInner::Postgres(_) => Script::Postgres(postgres::Script::default()),
            },
            shared: Shared::new(now),
        }
    }

    /// Runs a chunk's writes.
    pub async fn write(&mut self, chunk: Chunk) -> Result<(), Error> {
        run_script(chunk.script, &mut self.tx.inner).await
    }

    /// Runs a chunk's writes while `work` (preparing the next chunk) runs on this thread; returns what
    /// `work` returned.
    ///
    /// What it buys: SQLite runs a command on its connection's own thread. Awaiting each chunk before
    /// preparing the next (the planner's decisions, the statement values, the audit rows and their hashes)
    /// leaves one of the two threads idle at any time; handing the chunk over and preparing the next one
    /// meanwhile keeps both busy. For a 100,000-row feed this took intake from about 6 s to about 4.5 s
    /// (BENCHMARKS.md, B5); SQLite's thread now sets the pace. The values bound by the previous chunk are
    /// freed here too, on this thread, instead of on SQLite's.
    pub async fn write_alongside<R>(
        &mut self,
        chunk: Chunk,
        work: impl FnOnce() -> R,
    ) -> Result<R, Error> {
        let spent = self.spent.take();
        match (chunk.script, &mut self.tx.inner) {
            (Script::Sqlite(script), TxInner::Sqlite(tx)) => {
                let (ran, out) = script
                    .execute_alongside(tx, || {
                        drop(spent);
                        work()
                    })
                    .await?;
                self.spent = Some(ran);
                Ok(out)
            }
            // The PostgreSQL connection runs in this task: prepare the next chunk, then send this one.
            (script, _) => {
                let out = work();
                run_script(script, &mut self.tx.inner).await?;
                Ok(out)
            }
        }
    }

    /// Moves a termination to a new effective time and its pending and held removals to their new due times
    /// ((connector, stage) → due time); returns how many removals moved.
    pub async fn move_termination(
        &mut self,
        id: i64,
        effective_at: DateTime<Utc>,
        due: &[(&str, &str, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, Error> {
        on_tx!(self.tx, ingest::move_termination(id, effective_at, now))?;
        let mut moved = 0;
        for (connector, stage, due_at) in due {
            moved += on_tx!(
                self.tx,
                ingest::move_due(id, connector, stage, *due_at, now)
            )?;
        }
        Ok(moved)
    }

    /// Marks a termination rescinded; its removals are left to the caller.
    pub async fn rescind(&mut self, id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        on_tx!(self.tx, ingest::rescind(id, now))
    }

    /// A termination's pending, held and on-hold removals: id, connector and state.
    pub async fn open_removals(
        &mut self,
        termination_id: i64,
    ) -> Result<Vec<(i64, String, String)>, Error> {
        on_tx!(self.tx, ingest::open_removals(termination_id))
    }

    /// The connectors on which a termination's removal is done, with the stage ("" for a connector
    /// without stages).
    pub async fn done_connectors(
        &mut self,
        termination_id: i64,
    ) -> Result<Vec<(String, String)>, Error> {
        on_tx!(self.tx, ingest::done_connectors(termination_id))
    }

    /// The connectors on which a termination's account was deactivated and not deleted since:
    /// (connector, account).
    pub async fn deactivated(
        &mut self,
        termination_id: i64,
    ) -> Result<Vec<(String, Option<String>)>, Error> {
        on_tx!(self.tx, ingest::deactivated(termination_id))
    }

    /// Queues the reactivation of a rehired person's deactivated account on `connector` (stage
    /// `reactivate`, due now); its id, or `None` when one exists already.
    pub async fn add_reactivation(
        &mut self,
        termination_id: i64,
        connector: &str,
        account: Option<&str>,
        batch_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, Error> {
        on_tx!(
            self.tx,
            ingest::add_reactivation(termination_id, connector, account, batch_id, now)
        )
    }

    /// Every removal of a termination: connector, stage, state, due time and account, in connector
    /// and stage order.
    pub async fn removals_of(
        &mut self,
        termination_id: i64,
    ) -> Result<Vec<(String, String, String, String, Option<String>)>, Error> {
        on_tx!(self.tx, ingest::removals_of(termination_id))
    }

    /// Stores what the batch did in its row.
    pub async fn set_counts(&mut self, batch_id: i64, counts: &BatchCounts) -> Result<(), Error> {
        on_tx!(self.tx, ingest::set_counts(batch_id, counts))
    }

    /// Makes the batch durable, and tells every replica's workers about it.
    pub async fn commit(mut self) -> Result<(), Error> {
        self.tx.announce_work().await?;
        self.tx.commit().await
    }

    /// Drops everything the batch wrote.
    pub async fn rollback(self) -> Result<(), Error> {
        self.tx.rollback().await
    }
}

impl Writes {
    /// Creates or updates these people (one that did not change is not rewritten).
    pub fn people(&mut self, people: &[&Person]) -> anyhow::Result<()> {
        into_script!(
            &mut self.script,
            ingest::people_into(people, &mut self.shared)
        )
    }

    /// Creates these active terminations of batch `batch_id` from `source`.
    pub fn terminations(
        &mut self,
        terminations: &[TerminationRow<'_>],
        source: &str,
        batch_id: i64,
    ) -> Result<(), Error> {
        into_script!(
            &mut self.script,
            ingest::terminations_into(terminations, source, batch_id, &mut self.shared)
        )
    }

    /// Creates these removals.
    pub fn removals(&mut self, removals: Vec<RemovalRow<'_>>) -> Result<(), Error> {
        into_script!(
            &mut self.script,
            ingest::removals_into(removals, &mut self.shared)
        )
    }

    /// Stores these audit rows (written only by `audit::Chain::write_into`).
    pub fn audit_rows(&mut self, rows: Vec<AuditRow>) -> Result<(), Error> {
        into_script!(&mut self.script, audit_log::insert_rows(rows))
    }

    /// The writes added so far, as one command; these writes start again empty.
    pub fn take(&mut self) -> Chunk {
        Chunk {
            script: {
                let empty = match self.script {
                    Script::Sqlite(_) => Script::Sqlite(sqlite::Script::default()),
                    Script::Postgres(_) => Script::Postgres(postgres::Script::default()),
                };
                std::mem::replace(&mut self.script, empty)
            },
        }
    }
}

/// Runs a chunk's inserts in the transaction of the same backend.
async fn run_script(script: Script, tx: &mut TxInner) -> Result<(), Error> {
    match (script, tx) {
        (Script::Sqlite(script), TxInner::Sqlite(tx)) => script.execute(tx).await,
        (Script::Postgres(script), TxInner::Postgres(tx)) => script.execute(tx).await,
        _ => Err(Error::Protocol(
            "a chunk built for one backend was run on the other".into(),
        )),
    }
}

/// The largest id of `table`, read under the write lock.
async fn max_id(tx: &mut TxInner, table: &str) -> Result<i64, Error> {
    match tx {
        TxInner::Sqlite(tx) => sqlite::max_rowid(tx, table).await,
        TxInner::Postgres(tx) => postgres::max_id(tx, table).await,
    }
}

/// Text that many rows of a batch bind (connector and state names, times), kept once and shared by the rows
/// instead of copied into each.
pub(in crate::store) struct Shared {
    pub(in crate::store) now: DateTime<Utc>,
    texts: HashMap<String, Arc<str>>,
    times: HashMap<DateTime<Utc>, Arc<str>>,
}

impl Shared {
    pub(in crate::store) fn new(now: DateTime<Utc>) -> Self {
        Self {
            now,
            texts: HashMap::new(),
            times: HashMap::new(),
        }
    }

    pub(in crate::store) fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.texts.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.texts.insert(text.to_string(), shared.clone());
        shared
    }

    pub(in crate::store) fn time(&mut self, t: DateTime<Utc>) -> Arc<str> {
        self.times
            .entry(t)
            .or_insert_with(|| Arc::from(super::ts(t)))
            .clone()
    }
}
