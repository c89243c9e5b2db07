//! The append-only, hash-chained audit log: append in the caller's transaction, verify, read.

use anyhow::Context;
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
pub fn row_hash(row: &AuditRow) -> String {
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

/// Walks the whole chain in order and reports the first row that was altered, inserted or removed,
/// then cross-checks the removals: each one in a final state must have the audit row that records it.
pub async fn verify(store: &Store) -> anyhow::Result<Verification> {
    verify_against(store, None).await
}

/// Checkpoints to verify the chain against, with the key that signed them (docs/evidence.md).
#[derive(Debug, Clone)]
pub struct Against<'a> {
    /// The checkpoints, in any order.
    pub checkpoints: &'a [crate::checkpoint::Checkpoint],
    /// The public key.
    pub key: &'a crate::checkpoint::PublicKey,
    /// Rows after the last checkpoint older than this (before `now`) are an error: the daemon signs
    /// at least every `checkpoints.every` and at shutdown, so such rows were never signed.
    pub max_uncovered: std::time::Duration,
    /// The moment of the check.
    pub now: DateTime<Utc>,
}

/// Rows written this long before a checkpoint's time may still come after its head (their
/// transaction committed after the head was read).
const CHECKPOINT_SLACK_SECONDS: i64 = 10;

/// [`verify`], and with `against` also every checkpoint's signature, that the row at each checkpoint's
/// sequence number has the hash it signed (else the rows since the previous checkpoint were changed,
/// even with every later hash recomputed), that no checkpoint reaches past the end (a cut tail), and
/// that the rows after the last checkpoint are recent (else a forged or back-dated tail).
pub async fn verify_against(
    store: &Store,
    against: Option<Against<'_>>,
) -> anyhow::Result<Verification> {
    let mut checkpoints: Vec<&crate::checkpoint::Checkpoint> = Vec::new();
    if let Some(a) = &against {
        for c in a.checkpoints {
            if let Err(e) = c.verify(a.key) {
                return Ok(Verification::Broken {
                    seq: c.seq,
                    reason: format!(
                        "the checkpoint of row {} made at {} is not genuine: {e}",
                        c.seq, c.at
                    ),
                });
            }
            checkpoints.push(c);
        }
        checkpoints.sort_by_key(|c| c.seq);
    }
    // Archived rows: the chain starts after the anchor, whose checkpoint must be genuine.
    let anchor = store.audit_anchor().await?;
    let (start_seq, start_hash) = match &anchor {
        Some(a) => (a.seq, a.hash.clone()),
        None => (0, GENESIS_HASH.to_string()),
    };
    if let (Some(a), Some(against)) = (&anchor, &against) {
        let signed: Result<crate::checkpoint::Checkpoint, _> = serde_json::from_str(&a.checkpoint);
        let genuine = signed
            .as_ref()
            .map_err(|e| e.to_string())
            .and_then(|c| c.verify(against.key).map(|()| c));
        match genuine {
            Ok(c) if c.seq == a.seq && c.head == a.hash => {}
            Ok(_) => {
                return Ok(Verification::Broken {
                    seq: a.seq + 1,
                    reason: format!(
                        "the archive anchor at row {} does not match its own checkpoint",
                        a.seq
                    ),
                });
            }
            Err(e) => {
                return Ok(Verification::Broken {
                    seq: a.seq + 1,
                    reason: format!("the archive anchor at row {} is not genuine: {e}", a.seq),
                });
            }
        }
    }
    // Collected, not a filtering iterator: the future holds no closure across its awaits, so it stays
    // Send for every caller (the console's handlers among them).
    let pending: Vec<&crate::checkpoint::Checkpoint> = checkpoints
        .iter()
        .copied()
        .filter(|c| c.seq > start_seq)
        .collect();
    let mut next_checkpoint = pending.into_iter().peekable();
    let mut covered_to = start_seq;
    let mut uncovered_oldest: Option<(i64, String)> = None;
    let mut recorded: std::collections::HashSet<(i64, String)> = std::collections::HashSet::new();

    let mut rows = store.audit_rows();
    let mut expected_seq = start_seq + 1;
    let mut prev_hash = start_hash;
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
        while let Some(c) = next_checkpoint.next_if(|c| c.seq == row.seq) {
            if c.head != row.hash {
                return Ok(Verification::Broken {
                    seq: covered_to + 1,
                    reason: format!(
                        "rows {}..={} were changed: the checkpoint made at {} signed the hash {} for row {}, the database has {} (the chain's hashes were computed again after the change)",
                        covered_to + 1,
                        c.seq,
                        c.at,
                        c.head,
                        c.seq,
                        row.hash
                    ),
                });
            }
            covered_to = c.seq;
        }
        if against.is_some() && row.seq > covered_to && uncovered_oldest.is_none() {
            uncovered_oldest = Some((row.seq, row.at.clone()));
        }
        if covered_to == row.seq {
            uncovered_oldest = None;
        }
        note_recorded(&row, &mut recorded);
        prev_hash = row.hash;
        expected_seq += 1;
        count += 1;
    }
    let last_seq = expected_seq - 1;
    if let Some(c) = next_checkpoint.next() {
        return Ok(Verification::Broken {
            seq: last_seq + 1,
            reason: format!(
                "the chain ends at row {last_seq}, but the checkpoint made at {} covers rows up to {}: rows {}..={} were cut off",
                c.at,
                c.seq,
                last_seq + 1,
                c.seq
            ),
        });
    }
    if let (Some(a), Some((seq, at))) = (&against, &uncovered_oldest) {
        let written = parse_ts(at)?;
        let last = checkpoints.last();
        let before_last = last.is_some_and(|c| {
            parse_ts(&c.at)
                .is_ok_and(|t| written < t - chrono::Duration::seconds(CHECKPOINT_SLACK_SECONDS))
        });
        let stale = a.now - written
            > chrono::Duration::from_std(a.max_uncovered).unwrap_or(chrono::Duration::MAX);
        if before_last || stale {
            return Ok(Verification::Broken {
                seq: *seq,
                reason: format!(
                    "rows {seq}..={last_seq} are not covered by any checkpoint, and row {seq} is dated {at}, {}: rows added or back-dated without the daemon",
                    if before_last {
                        "before the last checkpoint".to_string()
                    } else {
                        format!(
                            "longer ago than {}",
                            crate::config::format_duration(a.max_uncovered)
                        )
                    }
                ),
            });
        }
    }
    let archived_until = anchor.as_ref().map(|a| a.last_at.clone());
    for (removal, state, finished_at) in store.finished_removals().await? {
        // A removal finished before the archived rows ended is recorded in the segment.
        if archived_until
            .as_deref()
            .is_some_and(|until| finished_at.as_deref().is_some_and(|f| f <= until))
        {
            continue;
        }
        if !recorded.contains(&(removal, state.clone())) {
            return Ok(Verification::Broken {
                seq: last_seq + 1,
                reason: format!(
                    "removal {removal} is {state}, but no audit row records that (rows were cut off the end of the log, or the removal was changed without the daemon)"
                ),
            });
        }
    }
    Ok(Verification::Ok {
        rows: count,
        head: prev_hash,
    })
}

/// Notes which removal states a row records: its outcome for a row about one removal, and the first
/// state of each removal a `termination_created` row lists.
fn note_recorded(row: &AuditRow, recorded: &mut std::collections::HashSet<(i64, String)>) {
    const FINAL: [&str; 3] = ["done", "failed", "cancelled"];
    if let (Some(removal), Some(outcome)) = (row.removal_id, row.outcome.as_deref())
        && FINAL.contains(&outcome)
    {
        recorded.insert((removal, outcome.to_string()));
    }
    if row.event == "termination_created"
        && let Ok(detail) = serde_json::from_str::<serde_json::Value>(&row.detail)
    {
        for item in detail["removals"].as_array().into_iter().flatten() {
            if let (Some(removal), Some(state)) = (item["removal_id"].as_i64(), item["to"].as_str())
                && FINAL.contains(&state)
            {
                recorded.insert((removal, state.to_string()));
            }
        }
    }
}

/// The prefix of archived segment files.
const SEGMENT_PREFIX: &str = "audit-";

/// A row as a segment line: every column, `detail` as the very string its hash covers.
fn segment_line(row: &AuditRow) -> serde_json::Value {
    serde_json::json!({
        "seq": row.seq, "at": row.at, "actor": row.actor, "event": row.event,
        "employee_id": row.employee_id, "connector": row.connector, "removal_id": row.removal_id,
        "batch_id": row.batch_id, "attempt": row.attempt, "outcome": row.outcome,
        "http_status": row.http_status, "duration_ms": row.duration_ms, "detail": row.detail,
        "prev_hash": row.prev_hash, "hash": row.hash,
    })
}

/// Archives the audit rows up to `through` (`offboard audit archive`): checks them, writes them to a new
/// segment file in `dir` (one JSON row per line, then the signed checkpoint of the last row), and moves
/// the chain's start past them. The newest row always stays. Returns the anchor and the rows removed.
pub async fn archive(
    store: &Store,
    key: &crate::checkpoint::SigningKey,
    through: i64,
    dir: &std::path::Path,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<(crate::store::audit_log::Anchor, u64)> {
    use std::io::Write as _;
    let (head, _) = store
        .audit_head()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the audit log is empty"))?;
    let previous = store.audit_anchor().await?;
    let (after, mut prev_hash) = match &previous {
        Some(a) => (a.seq, a.hash.clone()),
        None => (0, GENESIS_HASH.to_string()),
    };
    if through <= after || through >= head {
        anyhow::bail!(
            "--through must be after row {after} (archived already) and before row {head} (the newest row stays)"
        );
    }
    let rows = store.audit_range(after, through).await?;
    if rows.len() as i64 != through - after {
        anyhow::bail!(
            "rows {}..={through} are not all there: run `offboard audit verify`",
            after + 1
        );
    }
    for row in &rows {
        if row.prev_hash != prev_hash || row_hash(row) != row.hash {
            anyhow::bail!(
                "row {} does not verify: run `offboard audit verify`; nothing was archived",
                row.seq
            );
        }
        prev_hash = row.hash.clone();
    }
    let last = rows
        .last()
        .ok_or_else(|| anyhow::anyhow!("no rows to archive"))?;
    let checkpoint = key.sign(last.seq, &last.hash, now);
    let path = dir.join(format!(
        "{SEGMENT_PREFIX}{:010}-{:010}.jsonl",
        after + 1,
        through
    ));
    let mut text = String::new();
    for row in &rows {
        text.push_str(&segment_line(row).to_string());
        text.push('\n');
    }
    text.push_str(&serde_json::json!({ "checkpoint": checkpoint }).to_string());
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create the segment {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the segment {}", path.display()))?;
    let anchor = crate::store::audit_log::Anchor {
        seq: last.seq,
        hash: last.hash.clone(),
        last_at: last.at.clone(),
        checkpoint: checkpoint.line(),
        segment: path.display().to_string(),
        segment_sha256: hex::encode(Sha256::digest(text.as_bytes())),
    };
    let removed = store.archive_audit(&anchor, actor, now).await?;
    Ok((anchor, removed))
}

/// Verifies an archived segment on its own, with the public key: the rows chain from `after` (the
/// previous segment's last hash; the genesis hash for the first), each row matches its hash, and the
/// last line's checkpoint is genuine and signs the last row.
pub fn verify_segment(
    path: &std::path::Path,
    key: &crate::checkpoint::PublicKey,
    after: Option<&str>,
) -> anyhow::Result<Verification> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the segment {}", path.display()))?;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last_line = lines
        .pop()
        .ok_or_else(|| anyhow::anyhow!("{} is empty", path.display()))?;
    let checkpoint: crate::checkpoint::Checkpoint = serde_json::from_value(
        serde_json::from_str::<serde_json::Value>(last_line)?["checkpoint"].clone(),
    )
    .with_context(|| {
        format!(
            "{}: the last line is not the segment's checkpoint",
            path.display()
        )
    })?;
    let mut prev: Option<String> = after.map(str::to_string);
    let mut last: Option<AuditRow> = None;
    for (i, line) in lines.iter().enumerate() {
        let row: AuditRow = serde_json::from_str(line)
            .with_context(|| format!("{} line {}: not an audit row", path.display(), i + 1))?;
        let expected = match (&prev, row.seq) {
            (Some(p), _) => p.clone(),
            (None, 1) => GENESIS_HASH.to_string(),
            (None, _) => row.prev_hash.clone(),
        };
        if row.prev_hash != expected || last.as_ref().is_some_and(|l| l.seq + 1 != row.seq) {
            return Ok(Verification::Broken {
                seq: row.seq,
                reason: "the row does not follow the previous one".into(),
            });
        }
        if row_hash(&row) != row.hash {
            return Ok(Verification::Broken {
                seq: row.seq,
                reason: "the row's content does not match its hash (it was changed)".into(),
            });
        }
        prev = Some(row.hash.clone());
        last = Some(row);
    }
    let last = last.ok_or_else(|| anyhow::anyhow!("{} holds no rows", path.display()))?;
    if let Err(e) = checkpoint.verify(key) {
        return Ok(Verification::Broken {
            seq: last.seq,
            reason: format!("the segment's checkpoint is not genuine: {e}"),
        });
    }
    if checkpoint.seq != last.seq || checkpoint.head != last.hash {
        return Ok(Verification::Broken {
            seq: last.seq,
            reason: "the segment's checkpoint signs another row than its last".into(),
        });
    }
    Ok(Verification::Ok {
        rows: lines.len() as i64,
        head: last.hash,
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

/// Prints audit rows in any output format (`offboard audit`, the console's downloads): the same
/// columns everywhere.
pub fn print_rows(
    out: &mut impl std::io::Write,
    rows: &[AuditRow],
    format: crate::output::Format,
) -> anyhow::Result<()> {
    use crate::output::{extra, main};
    crate::output::list(
        out,
        format,
        &[
            main("seq"),
            main("at"),
            main("actor"),
            main("event"),
            main("employee_id"),
            main("connector"),
            main("removal_id"),
            extra("batch_id"),
            main("attempt"),
            main("outcome"),
            main("http_status"),
            extra("duration_ms"),
            main("detail"),
            extra("prev_hash"),
            extra("hash"),
        ],
        rows,
    )
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
