//! Planner: a termination × the configured connectors → removal rows, due at effective time + grace.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Entry};
use crate::config::ConnectorConfig;
use crate::db::{Tx, ts};
use crate::domain::{Person, RemovalState};

/// When a removal is due: the termination's effective time plus the connector's grace.
pub fn due_at(effective_at: DateTime<Utc>, connector: &ConnectorConfig) -> DateTime<Utc> {
    chrono::Duration::from_std(connector.grace)
        .ok()
        .and_then(|g| effective_at.checked_add_signed(g))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The account key for a person on a connector, or the field the template needs and the person lacks.
pub fn account_for(connector: &ConnectorConfig, person: &Person) -> Result<String, String> {
    connector.account.render(|f| person.field(f))
}

/// What one new removal row starts as.
#[derive(Debug, Clone)]
pub struct NewRemoval<'a> {
    /// The termination.
    pub termination_id: i64,
    /// The connector.
    pub connector: &'a str,
    /// The account key, or the reason it could not be made.
    pub account: Result<String, String>,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// The batch that created it.
    pub batch_id: i64,
    /// `pending`, or `held` for a batch awaiting approval.
    pub state: RemovalState,
}

/// Inserts one removal unless (termination, connector) already has one; audited. Returns whether it
/// was created. A removal whose account key cannot be rendered starts `failed` with the reason, so
/// an operator sees it instead of it being silently skipped.
pub async fn insert_removal(
    tx: &mut Tx,
    employee_id: &str,
    new: NewRemoval<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let (state, account, error) = match &new.account {
        Ok(account) => (new.state, Some(account.as_str()), None),
        Err(field) => (
            RemovalState::Failed,
            None,
            Some(format!(
                "the account template of connector {} needs {{{field}}}, which the HR record of this person lacks",
                new.connector
            )),
        ),
    };
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO removals (termination_id, connector, account, state, due_at, last_error, outcome, \
                               batch_id, created_at, updated_at, finished_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10) \
         ON CONFLICT (termination_id, connector) DO NOTHING RETURNING id",
    )
    .bind(new.termination_id)
    .bind(new.connector)
    .bind(account)
    .bind(state.as_str())
    .bind(ts(new.due_at))
    .bind(&error)
    .bind(error.as_ref().map(|_| "failed"))
    .bind(new.batch_id)
    .bind(ts(now))
    .bind(error.as_ref().map(|_| ts(now)))
    .fetch_optional(&mut **tx)
    .await?;
    let Some(id) = id else {
        return Ok(false);
    };
    audit::append(
        tx,
        now,
        Entry::daemon("removal_planned")
            .employee(employee_id)
            .connector(new.connector)
            .removal(id)
            .batch(new.batch_id)
            .outcome(state.as_str())
            .detail(json!({"to": state.as_str(), "due_at": ts(new.due_at), "error": error})),
    )
    .await?;
    Ok(true)
}

/// A termination to plan removals for.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// The termination's id.
    pub termination_id: i64,
    /// Its effective time.
    pub effective_at: DateTime<Utc>,
    /// The batch that created it.
    pub batch_id: i64,
    /// The removals' first state: `pending`, or `held` for a batch awaiting approval.
    pub state: RemovalState,
}

/// Plans one removal per connector for a termination. Returns how many were created.
pub async fn plan_termination(
    tx: &mut Tx,
    connectors: &[ConnectorConfig],
    person: &Person,
    termination: Planned,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let mut created = 0;
    for c in connectors {
        let new = NewRemoval {
            termination_id: termination.termination_id,
            connector: &c.name,
            account: account_for(c, person),
            due_at: due_at(termination.effective_at, c),
            batch_id: termination.batch_id,
            state: termination.state,
        };
        if insert_removal(tx, &person.employee_id, new, now).await? {
            created += 1;
        }
    }
    Ok(created)
}

/// Moves the due time of a termination's pending and held removals after its effective date changed.
pub async fn move_due(
    tx: &mut Tx,
    connectors: &[ConnectorConfig],
    termination_id: i64,
    effective_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let mut moved = 0;
    for c in connectors {
        moved += sqlx::query(
            "UPDATE removals SET due_at = ?1, updated_at = ?2 \
             WHERE termination_id = ?3 AND connector = ?4 AND state IN ('pending', 'held')",
        )
        .bind(ts(due_at(effective_at, c)))
        .bind(ts(now))
        .bind(termination_id)
        .bind(&c.name)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    Ok(moved)
}
