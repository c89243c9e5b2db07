//! Intake: one batch of checked feed rows, from a poll, a push or the CLI, on its way into the store.
//! The types here describe a batch and what ingesting it did; the work is the store's ingest
//! operation (`store::ingest`), which asks the planner what each row means.

use serde::Serialize;

use crate::domain::FeedRow;
use crate::feed::rows::Fault;

pub use crate::planner::PlanLine;
pub use crate::store::ingest::{
    import_accounts, ingest, record_failed_batch, record_unchanged_batch, simulate,
};

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
}

impl BatchSource {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Feed => "feed",
            Self::Push => "push",
            Self::Cli => "cli",
            Self::Import => "import",
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
    /// Whether the mass-removal guard held the batch for approval.
    pub held: bool,
    /// The guard's limit for this batch.
    pub limit: u64,
}
