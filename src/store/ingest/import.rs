//! `offboard import`: a list of account keys for one connector (accounts of people the HR feed does
//! not carry) becomes a batch of removals, held by the same mass-removal guard, with the `never_remove`
//! exclusions, and audited.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Entry};
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{Person, RemovalState};
use crate::feed::intake::BatchSummary;
use crate::planner;
use crate::store::{Pool, begin_write, ts};

use super::rows::{insert_removal, upsert_person};

/// `offboard import`: queues the removal of every account listed in `column` of a vendor's user
/// export, on one connector, as one audited batch. Each account gets its own termination (source
/// `import`, effective now) under a synthetic employee id `import-BATCH-ROW`, so the report and the
/// audit log treat it like any other leaver without inventing HR data. Accounts matching a
/// `never_remove` pattern are created cancelled (`excluded`); an import of more accounts than
/// `safety.max_terminations_per_batch` is held for `offboard approve`, like any other batch. The
/// connector's grace and scope do not apply: an import is an explicit, immediate clean-up.
#[allow(clippy::too_many_arguments)]
pub async fn import_accounts(
    pool: &Pool,
    connector: &ConnectorConfig,
    safety: &SafetyConfig,
    bytes: &[u8],
    column: &str,
    source_ref: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    use crate::feed::rows::Reason;

    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let headers = reader
        .byte_headers()
        .map_err(|e| anyhow::anyhow!("{source_ref}: cannot read the header: {e}"))?
        .clone();
    let wanted = column.trim();
    let index = headers
        .iter()
        .position(|h| std::str::from_utf8(h).is_ok_and(|h| h.trim().eq_ignore_ascii_case(wanted)))
        .ok_or_else(|| anyhow::anyhow!("{source_ref}: no column named {column:?} in the header"))?;

    let mut accounts: Vec<(u64, String)> = Vec::new();
    let mut rejects: Vec<(u64, Reason)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (i, record) in reader.byte_records().enumerate() {
        let row = i as u64 + 1;
        let record = record.map_err(|e| anyhow::anyhow!("{source_ref}: row {row}: {e}"))?;
        let Some(raw) = record.get(index) else {
            rejects.push((row, Reason::ColumnCount));
            continue;
        };
        let Ok(value) = std::str::from_utf8(raw) else {
            rejects.push((row, Reason::InvalidUtf8));
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            rejects.push((row, Reason::Missing));
        } else if value.chars().any(char::is_control) {
            rejects.push((row, Reason::ControlChar));
        } else if value.len() > 1024 {
            rejects.push((row, Reason::TooLong));
        } else if seen.insert(value.to_string()) {
            accounts.push((row, value.to_string()));
        }
    }

    let rows = accounts.len() as u64 + rejects.len() as u64;
    let limit = safety.batch_limit(rows, false);
    let held = accounts.len() as u64 > limit;
    let mut tx = begin_write(pool).await?;
    let batch_id: i64 = sqlx::query_scalar(
        "INSERT INTO batches (source, source_ref, received_at, status, content_sha256, rows, accepted, rejected, actor) \
         VALUES ('import', ?, ?, 'ok', ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(format!("{source_ref} → {}", connector.name))
    .bind(ts(now))
    .bind(crate::feed::sha256_hex(bytes))
    .bind(rows as i64)
    .bind(accounts.len() as i64)
    .bind(rejects.len() as i64)
    .bind(actor)
    .fetch_one(&mut *tx)
    .await?;
    for (row, reason) in &rejects {
        sqlx::query(
            "INSERT INTO feed_rejects (batch_id, row, field, reason) VALUES (?, ?, 'account', ?)",
        )
        .bind(batch_id)
        .bind(*row as i64)
        .bind(reason.as_str())
        .execute(&mut *tx)
        .await?;
    }
    let mut planned = 0;
    let mut excluded = 0;
    for (row, account) in accounts {
        let protected = safety
            .never_remove
            .iter()
            .chain(connector.never_remove.iter())
            .any(|p| p.matches(&account));
        let state = match (protected, held) {
            (true, _) => RemovalState::Cancelled,
            (false, true) => RemovalState::Held,
            (false, false) => RemovalState::Pending,
        };
        let person = Person {
            employee_id: format!("import-{batch_id}-{row}"),
            ..Person::default()
        };
        upsert_person(&mut tx, &person, now).await?;
        let termination_id: i64 = sqlx::query_scalar(
            "INSERT INTO terminations (employee_id, source, batch_id, effective_at, status, created_at, updated_at) \
             VALUES (?1, 'import', ?2, ?3, 'active', ?3, ?3) RETURNING id",
        )
        .bind(&person.employee_id)
        .bind(batch_id)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        let new = planner::NewRemoval {
            termination_id,
            connector: &connector.name,
            account: Ok(account),
            due_at: now,
            batch_id,
            state,
        };
        if insert_removal(&mut tx, &person.employee_id, new, now).await? {
            planned += 1;
            if protected {
                excluded += 1;
            }
        }
    }
    sqlx::query("UPDATE batches SET new_terminations = ?, held = ? WHERE id = ?")
        .bind(planned as i64)
        .bind(i64::from(held))
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
    audit::append(
        &mut tx,
        now,
        Entry::by(actor, "batch_received")
            .batch(batch_id)
            .connector(&connector.name)
            .detail(json!({
                "source": "import", "source_ref": source_ref, "column": column,
                "rows": rows, "accepted": planned, "rejected": rejects.len(),
                "excluded": excluded, "held": held, "limit": limit,
            })),
    )
    .await?;
    tx.commit().await?;
    Ok(BatchSummary {
        batch_id,
        rows,
        accepted: rows - rejects.len() as u64,
        rejected: rejects.len() as u64,
        new_terminations: planned,
        removals_planned: planned,
        excluded,
        held,
        limit,
        ..BatchSummary::default()
    })
}
