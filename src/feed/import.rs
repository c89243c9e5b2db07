//! `offboard import`: the accounts of a vendor's user export, queued for removal from one connector as one
//! batch, through the same reading, intake and planner as a feed.

use chrono::{DateTime, Utc};

use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, Person};
use crate::feed::csv::ColumnValue;
use crate::feed::intake::{self, Batch, BatchSource, BatchSummary, Planning, Record};
use crate::feed::rows::Fault;
use crate::store::Store;

/// Queues the removal of every account listed in `column` of a vendor's user export, on one connector, as
/// one audited batch. Each account gets its own termination (source `import`, effective now) under a
/// synthetic employee id `import-BATCH-ROW`, so the report and the audit log treat it like any other leaver
/// without inventing HR data. An account listed twice is queued once. Accounts matching a `never_remove`
/// pattern are created cancelled (`excluded`); an import of more accounts than
/// `safety.max_terminations_per_batch` is held for `offboard approve`, like any other batch. The connector's
/// grace and scope do not apply: an import is an explicit, immediate clean-up.
#[allow(clippy::too_many_arguments)]
pub async fn import_accounts(
    store: &Store,
    connector: &ConnectorConfig,
    safety: &SafetyConfig,
    bytes: &[u8],
    column: &str,
    source_ref: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<BatchSummary> {
    let values = crate::feed::csv::read_column(bytes, column)
        .map_err(|e| anyhow::anyhow!("{source_ref}: {e}"))?;
    let mut seen = std::collections::HashSet::new();
    let mut accounts = Vec::with_capacity(values.len());
    let mut records = Vec::with_capacity(values.len());
    for ColumnValue { row, line, value } in values {
        let result = match value {
            Ok(account) if !seen.insert(account.clone()) => continue,
            Ok(account) => {
                accounts.push(account);
                Ok(FeedRow {
                    // The employee id is given once the batch has its id.
                    person: Person::default(),
                    status: HrStatus::Terminated { effective_at: now },
                })
            }
            Err(reason) => {
                accounts.push(String::new());
                Err(vec![Fault {
                    field: Some("account".into()),
                    reason,
                }])
            }
        };
        records.push(Record {
            row,
            line: Some(line),
            result,
        });
    }
    let batch = Batch {
        source: BatchSource::Import,
        source_ref: Some(format!("{source_ref} → {}", connector.name)),
        actor: actor.to_string(),
        content_sha256: Some(crate::feed::sha256_hex(bytes)),
        records,
    };
    let planning = Planning::Accounts {
        connector,
        accounts: &accounts,
        column,
        stable_ids: false,
    };
    intake::ingest_planned(store, planning, safety, batch, now).await
}
