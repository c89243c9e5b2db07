//! The rows of the audit log. What goes into a row and how the chain is hashed are `audit.rs`'s, the only
//! writer; the store reads the head and stores the rows in the caller's transaction, and reads them back.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::Serialize;
use sqlx::FromRow;

use super::{Error, Store, Tx, sqlite};

/// A stored audit row.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct AuditRow {
    /// Position in the chain, from 1 without gaps.
    pub seq: i64,
    /// When (UTC).
    pub at: String,
    /// Who.
    pub actor: String,
    /// What.
    pub event: String,
    /// Whose access.
    pub employee_id: Option<String>,
    /// Which connector.
    pub connector: Option<String>,
    /// Which removal.
    pub removal_id: Option<i64>,
    /// Which batch.
    pub batch_id: Option<i64>,
    /// Which attempt.
    pub attempt: Option<i64>,
    /// Outcome.
    pub outcome: Option<String>,
    /// HTTP status of a vendor call.
    pub http_status: Option<i64>,
    /// Duration of a vendor call in milliseconds.
    pub duration_ms: Option<i64>,
    /// Detail JSON text (written out as JSON, not as a string, in `--format json`).
    #[serde(serialize_with = "detail_as_json")]
    pub detail: String,
    /// Hash of the previous row.
    pub prev_hash: String,
    /// SHA-256 over this row's content and `prev_hash`.
    pub hash: String,
}

fn detail_as_json<S: serde::Serializer>(detail: &str, s: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(detail) {
        Ok(value) => serde::Serialize::serialize(&value, s),
        Err(_) => s.serialize_str(detail),
    }
}

impl Tx {
    /// The head of the chain: its last sequence number and hash, `None` while the log is empty.
    pub async fn audit_head(&mut self) -> Result<Option<(i64, String)>, Error> {
        sqlite::audit_log::head(&mut self.inner).await
    }

    /// Stores audit rows, many per statement.
    pub async fn insert_audit_rows(&mut self, rows: Vec<AuditRow>) -> Result<(), Error> {
        sqlite::audit_log::insert(&mut self.inner, rows).await
    }
}

impl Store {
    /// The head of the chain as committed: its last sequence number and hash (for checkpoints).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, Error> {
        sqlite::audit_log::head_now(&self.pool).await
    }

    /// Every audit row in chain order, read as a stream.
    pub fn audit_rows(&self) -> BoxStream<'_, Result<AuditRow, Error>> {
        sqlite::audit_log::in_order(&self.pool)
    }

    /// The audit rows of one employee, at or after a time, of one connector (each when given), in chain
    /// order.
    pub async fn audit_rows_matching(
        &self,
        employee_id: Option<&str>,
        since: Option<DateTime<Utc>>,
        connector: Option<&str>,
    ) -> anyhow::Result<Vec<AuditRow>> {
        Ok(sqlite::audit_log::matching(&self.pool, employee_id, since, connector).await?)
    }
}
