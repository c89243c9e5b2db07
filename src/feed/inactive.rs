//! Inactive accounts: an app's last-login export (`[connector.inactive]`: CSV, or JSON when the file
//! ends in `.json`), read like a feed. An
//! account unused for longer than the connector's `after` becomes a leaver of its own (employee id
//! `inactive:CONNECTOR:ACCOUNT`, termination source `inactive`, effective when it became inactive:
//! the last login plus `after`), through the same intake, guard, `never_remove`, plan, approval and
//! audit as an HR leaver. An account used again (a newer last login) is an active row: its pending
//! removal is rescinded. The same export read twice changes nothing.

use chrono::{DateTime, Utc};

use crate::config::{ConnectorConfig, InactiveConfig, SafetyConfig};
use crate::domain::{FeedRow, HrStatus, Person};
use crate::feed::csv::ColumnValues;
use crate::feed::intake::{self, Batch, BatchSource, BatchSummary, PlanLine, Planning, Record};
use crate::feed::rows::{Fault, Reason};
use crate::store::Store;

/// The employee id an inactive account is a leaver under.
pub fn employee_id(connector: &str, account: &str) -> String {
    format!("inactive:{connector}:{account}")
}

/// One record of an export: its number, its line (CSV), and the value of each asked column or why not.
type ExportRow = (u64, Option<u64>, Vec<Result<String, Reason>>);

/// The records of a JSON export: an array of objects, or a SCIM list (`{"Resources": [...]}`); each
/// column is a key of the record, or a JSON pointer into it when it starts with `/` (e.g.
/// `/meta/lastLogin`). A string is trimmed, a number taken as written; absent, null or blank is
/// missing.
fn json_records(bytes: &[u8], columns: &[&str]) -> Result<Vec<ExportRow>, String> {
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let items = match &document {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(o) => match o.get("Resources") {
            Some(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(
                    "expected an array of records or a SCIM list with \"Resources\"".into(),
                );
            }
        },
        _ => return Err("expected an array of records or a SCIM list with \"Resources\"".into()),
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let values = columns
                .iter()
                .map(|column| {
                    let value = if column.starts_with('/') {
                        item.pointer(column)
                    } else {
                        item.get(*column)
                    };
                    match value {
                        None | Some(serde_json::Value::Null) => Err(Reason::Missing),
                        Some(serde_json::Value::String(v)) if v.trim().is_empty() => {
                            Err(Reason::Missing)
                        }
                        Some(serde_json::Value::String(v)) if v.chars().any(char::is_control) => {
                            Err(Reason::ControlChar)
                        }
                        Some(serde_json::Value::String(v)) => Ok(v.trim().to_string()),
                        Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
                        Some(_) => Err(Reason::WrongType),
                    }
                })
                .collect();
            (i as u64 + 1, None, values)
        })
        .collect())
}

/// The scan of one connector's export, as a batch and the accounts its records stand for.
struct Scan {
    batch: Batch,
    accounts: Vec<String>,
    column: String,
}

/// Reads the export of `connector` (which has `[connector.inactive]`) as of `now`.
fn read(
    connector: &ConnectorConfig,
    inactive: &InactiveConfig,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Scan> {
    let path = inactive.path.display().to_string();
    let bytes = std::fs::read(&inactive.path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {path} (connector.{}.inactive.path): {e}",
            connector.name
        )
    })?;
    let columns = [
        inactive.account_column.as_str(),
        inactive.last_login_column.as_str(),
    ];
    let json = inactive
        .path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let values: Vec<ExportRow> = if json {
        json_records(&bytes, &columns).map_err(|e| anyhow::anyhow!("{path}: {e}"))?
    } else {
        crate::feed::csv::read_columns(&bytes, &columns)
            .map_err(|e| anyhow::anyhow!("{path}: {e}"))?
            .into_iter()
            .map(|ColumnValues { row, line, values }| (row, Some(line), values))
            .collect()
    };
    let after = chrono::Duration::from_std(inactive.after)?;
    let mut seen = std::collections::HashSet::new();
    let mut accounts = Vec::with_capacity(values.len());
    let mut records = Vec::with_capacity(values.len());
    for (row, line, values) in values {
        let mut faults = Vec::new();
        let account = match &values[0] {
            Ok(a) => Some(a.clone()),
            Err(reason) => {
                faults.push(Fault {
                    field: Some("account".into()),
                    reason: *reason,
                });
                None
            }
        };
        let last_login = match &values[1] {
            Ok(t) => match crate::feed::rows::parse_effective_date(t, chrono_tz::UTC) {
                Some(t) => Some(t),
                None => {
                    faults.push(Fault {
                        field: Some("last_login".into()),
                        reason: Reason::InvalidDate,
                    });
                    None
                }
            },
            Err(reason) => {
                faults.push(Fault {
                    field: Some("last_login".into()),
                    reason: *reason,
                });
                None
            }
        };
        let result = match (account, last_login) {
            (Some(account), Some(_)) if !seen.insert(account.clone()) => continue,
            (Some(account), Some(last_login)) => {
                let person = Person {
                    employee_id: employee_id(&connector.name, &account),
                    ..Person::default()
                };
                accounts.push(account);
                let became_inactive = last_login
                    .checked_add_signed(after)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC);
                Ok(FeedRow {
                    person,
                    status: if became_inactive <= now {
                        HrStatus::Terminated {
                            effective_at: became_inactive,
                        }
                    } else {
                        HrStatus::Active
                    },
                })
            }
            _ => {
                accounts.push(String::new());
                Err(faults)
            }
        };
        records.push(Record { row, line, result });
    }
    Ok(Scan {
        batch: Batch {
            source: BatchSource::Inactive,
            source_ref: Some(format!("{path} → {} (inactive)", connector.name)),
            actor: actor.to_string(),
            content_sha256: Some(crate::feed::sha256_hex(&bytes)),
            records,
        },
        accounts,
        column: inactive.account_column.clone(),
    })
}

/// Scans `connector`'s last-login export and queues the removal of each account unused for longer
/// than its `after`, in one audited batch (held by the guard like any other); `None` when the
/// connector has no `[connector.inactive]`.
pub async fn scan(
    store: &Store,
    connector: &ConnectorConfig,
    safety: &SafetyConfig,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<BatchSummary>> {
    let Some(inactive) = &connector.inactive else {
        return Ok(None);
    };
    let scan = read(connector, inactive, actor, now)?;
    let planning = Planning::Accounts {
        connector,
        accounts: &scan.accounts,
        column: &scan.column,
        stable_ids: true,
    };
    Ok(Some(
        intake::ingest_planned(store, planning, safety, scan.batch, now).await?,
    ))
}

/// What [`scan`] would do, line by line, with nothing written.
pub async fn plan(
    store: &Store,
    connector: &ConnectorConfig,
    safety: &SafetyConfig,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<(BatchSummary, Vec<PlanLine>)>> {
    let Some(inactive) = &connector.inactive else {
        return Ok(None);
    };
    let scan = read(connector, inactive, crate::audit::DAEMON, now)?;
    let planning = Planning::Accounts {
        connector,
        accounts: &scan.accounts,
        column: &scan.column,
        stable_ids: true,
    };
    Ok(Some(
        intake::simulate_planned(store, planning, safety, scan.batch, now).await?,
    ))
}
