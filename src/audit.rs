//! The append-only, hash-chained audit log: append in the caller's transaction, verify, read.

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use crate::store::audit_log::AuditRow;
use crate::store::ingest::Writes;
use crate::store::{Store, Tx, parse_ts, ts};

/// The actor recorded for the daemon's own actions.
pub const DAEMON: &str = "offboard";

/// The hash that stands before the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit entry to append. Holds ids and outcomes, never secrets, and no personal data beyond
/// the employee id.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// Who acted: [`DAEMON`] or an operator's name.
    pub actor: String,
    /// What happened, e.g. `removal_done`.
    pub event: &'static str,
    /// Whose access it concerns.
    pub employee_id: Option<String>,
    /// Which connector.
    pub connector: Option<String>,
    /// Which removal.
    pub removal_id: Option<i64>,
    /// Which batch.
    pub batch_id: Option<i64>,
    /// Which attempt of the removal.
    pub attempt: Option<i64>,
    /// The outcome, for attempts and completions.
    pub outcome: Option<String>,
    /// HTTP status of a vendor call.
    pub http_status: Option<i64>,
    /// Duration of a vendor call in milliseconds.
    pub duration_ms: Option<i64>,
    /// Anything else, as JSON.
    pub detail: serde_json::Value,
}

impl Entry {
    /// A daemon entry for `event`.
    pub fn daemon(event: &'static str) -> Self {
        Self::by(DAEMON, event)
    }

    /// An entry for `event` by `actor`.
    pub fn by(actor: &str, event: &'static str) -> Self {
        Self {
            actor: actor.to_string(),
            event,
            detail: serde_json::Value::Object(Default::default()),
            ..Self::default()
        }
    }

    /// Sets the employee.
    pub fn employee(mut self, id: impl Into<String>) -> Self {
        self.employee_id = Some(id.into());
        self
    }

    /// Sets the connector.
    pub fn connector(mut self, name: impl Into<String>) -> Self {
        self.connector = Some(name.into());
        self
    }

    /// Sets the removal.
    pub fn removal(mut self, id: i64) -> Self {
        self.removal_id = Some(id);
        self
    }

    /// Sets the batch.
    pub fn batch(mut self, id: i64) -> Self {
        self.batch_id = Some(id);
        self
    }

    /// Sets the attempt number.
    pub fn attempt(mut self, n: i64) -> Self {
        self.attempt = Some(n);
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: impl Into<String>) -> Self {
        self.outcome = Some(outcome.into());
        self
    }

    /// Sets the detail JSON.
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// The hash of a row: SHA-256 over a JSON array of every column but `hash`, in column order.
fn row_hash(row: &AuditRow) -> String {
    // The canonical form is the JSON array of the columns in this order, serialized straight from the
    // row (no intermediate JSON value, no copies).
    let canonical = (
        row.seq,
        &row.at,
        &row.actor,
        &row.event,
        &row.employee_id,
        &row.connector,
        row.removal_id,
        row.batch_id,
        row.attempt,
        &row.outcome,
        row.http_status,
        row.duration_ms,
        &row.detail,
        &row.prev_hash,
    );
    // Cannot fail: strings, numbers and nulls only.
    let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

/// Appends `entry` in the caller's write transaction and returns its sequence number.
///
/// For more than one entry in a transaction use a [`Chain`], which reads the head once and writes many rows
/// per statement; never mix the two in one transaction while a chain holds unwritten rows.
pub async fn append(
    tx: &mut Tx,
    at: DateTime<Utc>,
    entry: Entry,
) -> Result<i64, crate::store::Error> {
    let mut chain = Chain::start(tx).await?;
    let seq = chain.push(at, entry);
    chain.write(tx).await?;
    Ok(seq)
}

/// Audit rows appended within one write transaction: the head of the chain is read once, each entry is
/// hashed onto the chain as it is pushed, and [`Chain::write`] stores the pushed rows, many per statement.
///
/// While a chain is in use, every append of the transaction must go through it; rows pushed but not written
/// when the transaction commits are lost (the chain stays intact: their sequence numbers were never stored).
#[derive(Debug)]
pub struct Chain {
    seq: i64,
    hash: String,
    pending: Vec<AuditRow>,
}

impl Chain {
    /// Reads the head of the chain in the caller's write transaction.
    pub async fn start(tx: &mut Tx) -> Result<Chain, crate::store::Error> {
        let (seq, hash) = tx
            .audit_head()
            .await?
            .unwrap_or((0, GENESIS_HASH.to_string()));
        Ok(Chain {
            seq,
            hash,
            pending: Vec::new(),
        })
    }

    /// Hashes `entry` onto the chain and returns its sequence number; stored by the next [`Chain::write`].
    pub fn push(&mut self, at: DateTime<Utc>, entry: Entry) -> i64 {
        let mut row = AuditRow {
            seq: self.seq + 1,
            at: ts(at),
            actor: entry.actor,
            event: entry.event.to_string(),
            employee_id: entry.employee_id,
            connector: entry.connector,
            removal_id: entry.removal_id,
            batch_id: entry.batch_id,
            attempt: entry.attempt,
            outcome: entry.outcome,
            http_status: entry.http_status,
            duration_ms: entry.duration_ms,
            detail: entry.detail.to_string(),
            prev_hash: std::mem::take(&mut self.hash),
            hash: String::new(),
        };
        row.hash = row_hash(&row);
        self.seq = row.seq;
        self.hash = row.hash.clone();
        self.pending.push(row);
        self.seq
    }

    /// Rows pushed and not yet written.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Stores the pushed rows in the caller's transaction; the chain can go on being pushed to afterwards.
    pub async fn write(&mut self, tx: &mut Tx) -> Result<(), crate::store::Error> {
        tx.insert_audit_rows(std::mem::take(&mut self.pending))
            .await
    }

    /// Adds the pushed rows to a batch's next write; they are stored when it runs, and the chain can go on
    /// being pushed to meanwhile.
    pub fn write_into(&mut self, writes: &mut Writes) -> Result<(), crate::store::Error> {
        writes.audit_rows(std::mem::take(&mut self.pending))
    }
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Verification {
    /// Every row is intact.
    Ok {
        /// Rows checked.
        rows: i64,
        /// Hash of the last row (keep it elsewhere to detect a cut tail).
        head: String,
    },
    /// The first row that does not fit the chain.
    Broken {
        /// Its sequence number (or the number missing).
        seq: i64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Walks the whole chain in order and reports the first row that was altered, inserted or removed.
pub async fn verify(store: &Store) -> anyhow::Result<Verification> {
    let mut rows = store.audit_rows();
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS_HASH.to_string();
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        if row.seq != expected_seq {
            return Ok(Verification::Broken {
                seq: expected_seq,
                reason: format!(
                    "row {expected_seq} is missing (the next row is {})",
                    row.seq
                ),
            });
        }
        if row.prev_hash != prev_hash {
            return Ok(Verification::Broken {
                seq: row.seq,
                reason: "prev_hash does not match the previous row's hash (a row before it was changed or removed)".into(),
            });
        }
        if row_hash(&row) != row.hash {
            return Ok(Verification::Broken {
                seq: row.seq,
                reason: "the row's content does not match its hash (it was changed)".into(),
            });
        }
        prev_hash = row.hash;
        expected_seq += 1;
        count += 1;
    }
    Ok(Verification::Ok {
        rows: count,
        head: prev_hash,
    })
}

/// Which audit rows to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this employee's rows.
    pub employee_id: Option<String>,
    /// Only rows at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only this connector's rows.
    pub connector: Option<String>,
}

/// Reads audit rows in chain order.
pub async fn list(store: &Store, filter: &Filter) -> anyhow::Result<Vec<AuditRow>> {
    store
        .audit_rows_matching(
            filter.employee_id.as_deref(),
            filter.since,
            filter.connector.as_deref(),
        )
        .await
}

/// When an audit row was written.
pub fn row_time(row: &AuditRow) -> anyhow::Result<DateTime<Utc>> {
    parse_ts(&row.at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(detail: &str, outcome: Option<&str>) -> AuditRow {
        AuditRow {
            seq: 42,
            at: "2026-11-23T03:00:00.123456Z".into(),
            actor: "daemon".into(),
            event: "vendor_call".into(),
            employee_id: Some("e\"1\\x\u{7f}é\u{2028}".into()),
            connector: None,
            removal_id: Some(7),
            batch_id: None,
            attempt: Some(3),
            outcome: outcome.map(str::to_string),
            http_status: Some(503),
            duration_ms: None,
            detail: detail.into(),
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        }
    }

    /// Rows written by earlier versions must still verify: the canonical form is the one that went
    /// through a `serde_json::Value` array.
    #[test]
    fn the_row_hash_is_the_sha256_of_the_json_array_of_the_columns() {
        for r in [
            row(r#"{"a":"<tab>\t","b":[1,2]}"#, Some("failed")),
            row("", None),
        ] {
            let value = serde_json::json!([
                r.seq,
                r.at,
                r.actor,
                r.event,
                r.employee_id,
                r.connector,
                r.removal_id,
                r.batch_id,
                r.attempt,
                r.outcome,
                r.http_status,
                r.duration_ms,
                r.detail,
                r.prev_hash,
            ]);
            let digest = Sha256::digest(value.to_string().as_bytes());
            let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(row_hash(&r), expected);
        }
    }
}
