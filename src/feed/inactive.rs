//! Inactive accounts: an app's last-login export (`[connector.inactive]`), read like a feed. An
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
    let values = crate::feed::csv::read_columns(
        &bytes,
        &[&inactive.account_column, &inactive.last_login_column],
    )
    .map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let after = chrono::Duration::from_std(inactive.after)?;
    let mut seen = std::collections::HashSet::new();
    let mut accounts = Vec::with_capacity(values.len());
    let mut records = Vec::with_capacity(values.len());
    for ColumnValues { row, line, values } in values {
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
                let became_inactive = last_login + after;
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
        records.push(Record {
            row,
            line: Some(line),
            result,
        });
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
