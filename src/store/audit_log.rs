//! The SQL of the audit log. Hashing and the chain's rules are `audit.rs`'s; this file only reads
//! and writes the rows, always in the caller's transaction for writes.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use serde::Serialize;
use sqlx::FromRow;

use super::{Pool, Script, Tx, ts};

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

/// The head of the chain (its last sequence number and hash), read in the caller's write transaction.
pub async fn head(tx: &mut Tx) -> Result<Option<(i64, String)>, sqlx::Error> {
    sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut **tx)
        .await
}

/// Adds the inserts of `rows` to `script`.
pub fn insert_rows(
    script: &mut Script,
    rows: impl IntoIterator<Item = AuditRow, IntoIter: ExactSizeIterator>,
) -> Result<(), sqlx::Error> {
    script.insert(
        "INSERT INTO audit_log (seq, at, actor, event, employee_id, connector, removal_id, batch_id, \
         attempt, outcome, http_status, duration_ms, detail, prev_hash, hash)",
        15,
        "",
        rows,
        |b, row| {
            b.add(row.seq)
                .add(row.at)
                .add(row.actor)
                .add(row.event)
                .add(row.employee_id)
                .add(row.connector)
                .add(row.removal_id)
                .add(row.batch_id)
                .add(row.attempt)
                .add(row.outcome)
                .add(row.http_status)
                .add(row.duration_ms)
                .add(row.detail)
                .add(row.prev_hash)
                .add(row.hash);
        },
    )
}

/// Every row in chain order, read as a stream.
pub fn in_order(pool: &Pool) -> BoxStream<'_, Result<AuditRow, sqlx::Error>> {
    sqlx::query_as::<_, AuditRow>("SELECT * FROM audit_log ORDER BY seq").fetch(pool)
}

/// The rows of one employee, since a time, of one connector (each when given), in chain order.
pub async fn matching(
    pool: &Pool,
    employee_id: Option<&str>,
    since: Option<DateTime<Utc>>,
    connector: Option<&str>,
) -> anyhow::Result<Vec<AuditRow>> {
    Ok(sqlx::query_as::<_, AuditRow>(
        "SELECT * FROM audit_log \
         WHERE (?1 IS NULL OR employee_id = ?1) AND (?2 IS NULL OR at >= ?2) AND (?3 IS NULL OR connector = ?3) \
         ORDER BY seq",
    )
    .bind(employee_id)
    .bind(since.map(ts))
    .bind(connector)
    .fetch_all(pool)
    .await?)
}
