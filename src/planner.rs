//! Planner: a termination × the configured connectors → removal rows, due at effective time + grace.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::Entry;
use crate::config::{ConnectorConfig, SafetyConfig};
use crate::domain::{Pattern, Person, RemovalState};
use crate::store::ts;
use serde::Serialize;

/// What a batch does (or, for `offboard plan`, would do) for one person and connector.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PlanLine {
    /// The employee.
    pub employee_id: String,
    /// The connector, or `None` for a line about the termination itself.
    pub connector: Option<String>,
    /// What happens: new, held, excluded, out_of_scope, unplannable, moved, rescinded, cancelled,
    /// rehired_after_removal, or `already_<state>` for a removal that exists.
    pub action: String,
    /// When the removal is due, if it is one.
    pub due_at: Option<String>,
    /// The account key, when it could be made.
    pub account: Option<String>,
    /// More words, e.g. the reason a removal cannot be planned.
    pub note: Option<String>,
}

/// When a removal is due: the termination's effective time plus the connector's grace.
pub fn due_at(effective_at: DateTime<Utc>, connector: &ConnectorConfig) -> DateTime<Utc> {
    chrono::Duration::from_std(connector.grace)
        .ok()
        .and_then(|g| effective_at.checked_add_signed(g))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The account key for a person on a connector, or why none can be made: the template needs a
/// field the person lacks, or the connector kind refuses the rendered key
/// ([`crate::connectors::ConnectorKind::check_account`]).
pub fn account_for(connector: &ConnectorConfig, person: &Person) -> Result<String, String> {
    let account = connector
        .account
        .render_with(|f| person.value(f))
        .map_err(|field| {
            format!(
                "the account template of connector {} needs {{{field}}}, which the HR record of this person lacks",
                connector.name
            )
        })?;
    connector.kind.check_account(&account).map_err(|reason| {
        format!(
            "the account key made by connector {}'s template is refused: {reason}",
            connector.name
        )
    })?;
    Ok(account)
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

/// The columns a new removal is stored with: a removal whose account key cannot be rendered starts
/// `failed` with the reason, an excluded one `cancelled` with the reason `excluded`.
#[derive(Debug, Clone)]
pub struct Stored<'a> {
    /// Its first state.
    pub state: RemovalState,
    /// The account key, when there is one.
    pub account: Option<&'a str>,
    /// Why it starts failed or cancelled.
    pub error: Option<String>,
}

impl<'a> Stored<'a> {
    /// The stored columns of `new`.
    pub fn of(new: &'a NewRemoval<'_>) -> Stored<'a> {
        let (state, account, error) = match &new.account {
            Ok(account) if new.state == RemovalState::Cancelled => (
                RemovalState::Cancelled,
                Some(account.as_str()),
                Some("excluded".to_string()),
            ),
            Err(_) if new.state == RemovalState::Cancelled => {
                (RemovalState::Cancelled, None, Some("excluded".to_string()))
            }
            Ok(account) => (new.state, Some(account.as_str()), None),
            Err(reason) => (RemovalState::Failed, None, Some(reason.clone())),
        };
        Stored {
            state,
            account,
            error,
        }
    }

    /// The `outcome` column: set for removals that start finished.
    pub fn outcome(&self) -> Option<&'static str> {
        match self.state {
            RemovalState::Failed => Some("failed"),
            RemovalState::Cancelled => Some("cancelled"),
            _ => None,
        }
    }

    /// Whether the removal starts finished (`finished_at` is set).
    pub fn finished(&self) -> bool {
        matches!(self.state, RemovalState::Failed | RemovalState::Cancelled)
    }
}

/// The audit entry of a planned removal that has no `termination_created` row to be listed in (an
/// `import`).
pub fn planned_entry(
    employee_id: &str,
    new: &NewRemoval<'_>,
    stored: &Stored<'_>,
    id: i64,
) -> Entry {
    Entry::daemon("removal_planned")
        .employee(employee_id)
        .connector(new.connector)
        .removal(id)
        .batch(new.batch_id)
        .outcome(stored.state.as_str())
        .detail(
            json!({"to": stored.state.as_str(), "due_at": ts(new.due_at), "error": stored.error}),
        )
}

/// A planned removal as its termination's `termination_created` audit row lists it: id, connector,
/// first state, due time, and the reason when it starts failed or cancelled.
pub fn planned_item(new: &NewRemoval<'_>, stored: &Stored<'_>, id: i64) -> serde_json::Value {
    let mut item = json!({
        "removal_id": id, "connector": new.connector, "to": stored.state.as_str(), "due_at": ts(new.due_at),
    });
    if let Some(error) = &stored.error {
        item["error"] = json!(error);
    }
    item
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

/// The `never_remove` pattern (global, then the connector's) that protects this person, if any.
pub fn exclusion<'a>(
    safety: &'a SafetyConfig,
    connector: &'a ConnectorConfig,
    person: &Person,
) -> Option<&'a Pattern> {
    safety
        .never_remove
        .iter()
        .chain(connector.never_remove.iter())
        .find(|p| p.matches_person(person))
}

/// What the planner decided for one connector, before anything is stored.
#[derive(Debug, Clone)]
pub struct Decided<'a> {
    /// The removal to create; `None` when the person is out of the connector's scope.
    pub removal: Option<NewRemoval<'a>>,
    /// Whether the removal is created cancelled because of `never_remove`.
    pub excluded: bool,
    /// The plan line for `offboard plan`.
    pub line: PlanLine,
}

/// Decides, for each connector, the removal of a termination (or why there is none), without touching
/// the database: the connector's scope, the account key, `never_remove`, and the first state.
pub fn decide<'a>(
    connectors: &'a [ConnectorConfig],
    safety: &SafetyConfig,
    person: &Person,
    termination: Planned,
) -> Vec<Decided<'a>> {
    let mut decided = Vec::with_capacity(connectors.len());
    for c in connectors {
        let due = due_at(termination.effective_at, c);
        let mut line = PlanLine {
            employee_id: person.employee_id.clone(),
            connector: Some(c.name.clone()),
            action: String::new(),
            due_at: Some(ts(due)),
            account: None,
            note: None,
        };
        if !c.scope.includes(person) {
            line.action = "out_of_scope".into();
            line.due_at = None;
            decided.push(Decided {
                removal: None,
                excluded: false,
                line,
            });
            continue;
        }
        let account = account_for(c, person);
        line.account = account.as_ref().ok().cloned();
        let excluded = exclusion(safety, c, person);
        let state = if excluded.is_some() {
            RemovalState::Cancelled
        } else {
            termination.state
        };
        let new = NewRemoval {
            termination_id: termination.termination_id,
            connector: &c.name,
            account,
            due_at: due,
            batch_id: termination.batch_id,
            state,
        };
        line.action = match (&new.account, excluded) {
            (_, Some(pattern)) => {
                line.note = Some(format!("never_remove matches {pattern}"));
                "excluded".into()
            }
            (Err(reason), None) => {
                line.note = Some(reason.clone());
                "unplannable".into()
            }
            (Ok(_), None) if state == RemovalState::Held => "held".into(),
            (Ok(_), None) => "new".into(),
        };
        decided.push(Decided {
            removal: Some(new),
            excluded: excluded.is_some(),
            line,
        });
    }
    decided
}
