//! The rows of the audit log. What goes into a row and how the chain is hashed are `audit.rs`'s, the only
//! writer; the store reads the head and stores the rows in the caller's transaction, and reads them back.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::Serialize;
use sqlx::FromRow;

use super::{Error, Store, Tx};

/// A stored audit row. Read back from an archived segment too, where `detail` is the string itself.
#[derive(Debug, Clone, FromRow, Serialize, serde::Deserialize)]
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

/// Where the chain starts when its oldest rows were archived (`offboard audit archive`): the last
/// archived row's seq and hash, its time, the checkpoint that signs it, and the segment file.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct Anchor {
    /// The last archived row.
    pub seq: i64,
    /// Its hash: the next row's `prev_hash`.
    pub hash: String,
    /// Its time.
    pub last_at: String,
    /// The signed checkpoint of that row (JSON line).
    pub checkpoint: String,
    /// The segment file the rows went to (as named when archived).
    pub segment: String,
    /// The SHA-256 of that file.
    pub segment_sha256: String,
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
        on_tx!(self, audit_log::head())
    }

    /// Stores audit rows, many per statement.
    pub async fn insert_audit_rows(&mut self, rows: Vec<AuditRow>) -> Result<(), Error> {
        on_tx!(self, audit_log::insert(rows))
    }
}

impl Store {
    /// The anchor the chain starts after, when rows were archived.
    pub async fn audit_anchor(&self) -> Result<Option<Anchor>, Error> {
        on_pool!(self, audit_log::anchor())
    }

    /// The rows after `after` up to `through`, in chain order (an archive's segment).
    pub async fn audit_range(&self, after: i64, through: i64) -> Result<Vec<AuditRow>, Error> {
        on_pool!(self, audit_log::range(after, through))
    }

    /// Moves the chain's start to `anchor` (its segment already written and signed): records the
    /// anchor, deletes the rows up to it, and appends an `audit_archived` row, in one transaction.
    /// Returns how many rows left the database.
    pub async fn archive_audit(
        &self,
        anchor: &Anchor,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let mut tx = self.begin_write().await?;
        let deleted = on_tx!(tx, audit_log::archive(anchor, actor, now))?;
        crate::audit::append(
            &mut tx,
            now,
            crate::audit::Entry::by(actor, "audit_archived").detail(serde_json::json!({
                "through_seq": anchor.seq, "rows": deleted, "segment": anchor.segment,
                "segment_sha256": anchor.segment_sha256,
            })),
        )
        .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The head of the chain as committed: its last sequence number and hash (for checkpoints).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, Error> {
        on_pool!(self, audit_log::head_now())
    }

    /// Every audit row in chain order, read as a stream.
    pub fn audit_rows(&self) -> BoxStream<'_, Result<AuditRow, Error>> {
        match &self.db {
            super::Db::Sqlite(pool) => super::sqlite::audit_log::in_order(pool),
            super::Db::Postgres(pool) => super::postgres::audit_log::in_order(pool),
        }
    }

    /// The audit rows of one removal, in chain order.
    pub async fn audit_rows_of_removal(&self, removal_id: i64) -> anyhow::Result<Vec<AuditRow>> {
        Ok(on_pool!(self, audit_log::of_removal(removal_id))?)
    }

    /// The rows matching `search` (how many, and with `limit` the last `limit` of them, else all), in
    /// chain order.
    pub async fn audit_search(
        &self,
        search: &AuditSearch,
        limit: Option<u32>,
    ) -> anyhow::Result<(i64, Vec<AuditRow>)> {
        let total = on_pool!(self, audit_log::count_matching(search))?;
        let mut rows = on_pool!(
            self,
            audit_log::search(search, limit.map_or(i64::MAX, i64::from))
        )?;
        rows.reverse();
        Ok((total, rows))
    }

    /// The audit rows of one employee, at or after a time, of one connector (each when given), in chain
    /// order.
    pub async fn audit_rows_matching(
        &self,
        employee_id: Option<&str>,
        since: Option<DateTime<Utc>>,
        connector: Option<&str>,
    ) -> anyhow::Result<Vec<AuditRow>> {
        Ok(on_pool!(
            self,
            audit_log::matching(employee_id, since, connector)
        )?)
    }
}

/// What an audit search matches (each when given).
#[derive(Debug, Clone, Default)]
pub struct AuditSearch {
    /// This employee's rows.
    pub employee_id: Option<String>,
    /// This connector's rows.
    pub connector: Option<String>,
    /// This event's rows.
    pub event: Option<String>,
    /// Rows at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Rows before this instant.
    pub until: Option<DateTime<Utc>>,
}
