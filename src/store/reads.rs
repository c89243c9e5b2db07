//! Reads for the views (status, report, metrics, the CLI) and the small state the daemon keeps
//! beside the queue (feed validators, readiness).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::Store;

/// The oldest due removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct OldestDue {
    /// Removal id.
    pub id: i64,
    /// Employee.
    pub employee_id: String,
    /// Connector.
    pub connector: String,
    /// Due since.
    pub due_at: String,
    /// Seconds it has been due.
    #[sqlx(skip)]
    pub age_seconds: i64,
}

/// A failed removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct FailedRemoval {
    /// Removal id.
    pub id: i64,
    /// Employee.
    pub employee_id: String,
    /// Connector.
    pub connector: String,
    /// Attempts made.
    pub attempts: i64,
    /// Why.
    pub last_error: Option<String>,
    /// When.
    pub finished_at: Option<String>,
}

/// A rejected feed row: where and why, never its values.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct RejectedRow {
    /// The batch (feed poll, push, enqueue) the row came in.
    pub batch_id: i64,
    /// When the batch was received.
    pub received_at: String,
    /// Where the batch came from (feed, push, cli, import).
    pub source: String,
    /// The row's number in the batch, from 1.
    pub row: i64,
    /// The line in the file, for a CSV feed.
    pub line: Option<i64>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// The intake rule's reason code (`missing`, `invalid_date`, ...).
    pub reason: String,
}

/// A rehire after removal.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct Rehired {
    /// Employee.
    pub employee_id: String,
    /// When the termination was rescinded.
    pub rescinded_at: Option<String>,
    /// Connectors on which access had already been removed (comma-separated).
    pub connectors: String,
}

/// A feed batch.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct LastPoll {
    /// Batch id.
    pub id: i64,
    /// When.
    pub received_at: String,
    /// ok or failed.
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Rows read.
    pub rows: i64,
    /// Rows rejected.
    pub rejected: i64,
    /// Terminations created.
    pub new_terminations: i64,
}

/// One removal with its termination and batches, as the report reads it.
#[derive(Debug, Clone, FromRow)]
pub struct ReportSource {
    /// The termination.
    pub termination_id: i64,
    /// The leaver.
    pub employee_id: String,
    /// When the termination took effect.
    pub effective_at: String,
    /// When its batch was received.
    pub received_at: String,
    /// feed, push or cli.
    pub source: String,
    /// The removal.
    pub removal_id: i64,
    /// The connector.
    pub connector: String,
    /// The stage's action ("" for a connector without stages).
    pub stage: String,
    /// The stage's place in its connector's list (0: the one that removes access).
    pub stage_index: i64,
    /// When it is (or was) due.
    pub due_at: String,
    /// The removal's state.
    pub state: String,
    /// Its outcome.
    pub outcome: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// When an attempt first was about to send the call that removes (see `Store::bind`).
    pub remove_sent_at: Option<String>,
    /// Its last error or note.
    pub last_error: Option<String>,
    /// Whether the removal's batch was held by the guard (1) or not (0).
    pub batch_held: i64,
}

/// What the last successful poll of a feed source saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct FeedState {
    /// The ETag the server sent.
    pub etag: Option<String>,
    /// The Last-Modified the server sent.
    pub last_modified: Option<String>,
    /// When the last successful poll started (the incremental cursor).
    pub last_success_at: Option<String>,
}

impl Store {
    /// The oldest due, pending removal of `connector` (read from the claim index).
    pub async fn oldest_due(
        &self,
        connector: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<OldestDue>> {
        on_pool!(self, reads::oldest_due(connector, now))
    }

    /// The rejected feed rows, of one batch or of all, newest batch first, in row order.
    pub async fn rejected_rows(&self, batch: Option<i64>) -> anyhow::Result<Vec<RejectedRow>> {
        on_pool!(self, reads::rejected_rows(batch))
    }

    /// Every removal in a final state (done, failed, cancelled), with that state, for the audit
    /// cross-check.
    pub async fn finished_removals(&self) -> anyhow::Result<Vec<(i64, String, Option<String>)>> {
        on_pool!(self, reads::finished_removals())
    }

    /// The latest failed removals, newest first.
    pub async fn recent_failures(&self, limit: u32) -> anyhow::Result<Vec<FailedRemoval>> {
        on_pool!(self, reads::recent_failures(limit))
    }

    /// People whose termination was rescinded after a removal was already done, latest first.
    pub async fn rehired_after_removal(&self, limit: u32) -> anyhow::Result<Vec<Rehired>> {
        on_pool!(self, reads::rehired_after_removal(limit))
    }

    /// The last feed batch, or with `ok_only` the last successful one.
    pub async fn last_feed_batch(&self, ok_only: bool) -> anyhow::Result<Option<LastPoll>> {
        on_pool!(self, reads::last_feed_batch(ok_only))
    }

    /// Every removal of terminations effective in `[since, until)`, optionally of one connector, in
    /// effective time, employee and connector order.
    pub async fn report_sources(
        &self,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        connector: Option<&str>,
    ) -> anyhow::Result<Vec<ReportSource>> {
        on_pool!(self, reads::report_sources(since, until, connector))
    }

    /// Batches waiting for approve or reject.
    pub async fn undecided_held_batches(&self) -> anyhow::Result<i64> {
        on_pool!(self, reads::undecided_held_batches())
    }

    /// The oldest due time over the pending removals of `connectors`, each read from the claim index.
    pub async fn oldest_due_at(
        &self,
        connectors: &[&str],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<String>> {
        on_pool!(self, reads::oldest_due_at(connectors, now))
    }

    /// When the feed was last polled successfully (changed or not).
    pub async fn last_successful_poll_at(&self) -> anyhow::Result<Option<String>> {
        on_pool!(self, reads::last_successful_poll_at())
    }

    /// One attribute of a person's record (as the feed gave it), if the person and the attribute exist.
    pub async fn person_attribute(
        &self,
        employee_id: &str,
        name: &str,
    ) -> anyhow::Result<Option<String>> {
        let attributes: Option<String> = on_pool!(self, reads::person_attributes(employee_id))?;
        Ok(attributes
            .and_then(|a| {
                serde_json::from_str::<std::collections::BTreeMap<String, String>>(&a).ok()
            })
            .and_then(|mut a| a.remove(name)))
    }

    /// Removals pending and held, for the summary of a run.
    pub async fn pending_and_held(&self) -> anyhow::Result<(i64, i64)> {
        on_pool!(self, reads::pending_and_held())
    }

    /// Failed removals.
    pub async fn failed_count(&self) -> anyhow::Result<i64> {
        on_pool!(self, reads::failed_count())
    }

    /// Migrations applied to the database.
    pub async fn migrations_applied(&self) -> anyhow::Result<i64> {
        on_pool!(self, reads::migrations_applied())
    }

    /// Takes and releases the write lock, so a read-only or locked-up database shows.
    pub async fn check_writable(&self) -> anyhow::Result<()> {
        on_pool!(self, reads::check_writable())
    }

    /// The saved state of a feed source.
    pub async fn feed_state(&self, source_ref: &str) -> anyhow::Result<FeedState> {
        on_pool!(self, reads::load_feed_state(source_ref))
    }

    /// Saves the state of a feed source after a successful poll.
    pub async fn save_feed_state(
        &self,
        source_ref: &str,
        state: &FeedState,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        on_pool!(self, reads::save_feed_state(source_ref, state, now))
    }
}
