//! Planner: a termination × the configured connectors → removal rows, due at effective time + grace; or, for
//! `offboard import`, a termination × one connector and a known account → one removal, due at once. The
//! only place where a row becomes a removal: scope, account key, `never_remove` and the first state.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::{Config, ConnectorConfig, SafetyConfig};
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
    /// The stage's action, for a connector with `[[connector.stage]]` entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
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

/// When a removal is due: the termination's effective time plus its stage's delay (a connector
/// without stages: its grace).
pub fn due_at(effective_at: DateTime<Utc>, after: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|g| effective_at.checked_add_signed(g))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// When the removal of `connector`'s stage `stage` is due ("" for a connector without stages); a
/// stage no longer configured: at the first stage's time.
pub fn stage_due_at(
    effective_at: DateTime<Utc>,
    connector: &ConnectorConfig,
    stage: &str,
) -> DateTime<Utc> {
    let after = connector
        .stage(stage)
        .map_or(connector.grace, |(_, s)| s.after);
    due_at(effective_at, after)
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

/// Makes a removal's account key again from a person's current HR data, by connector name (`None` for
/// a connector no longer configured): what `offboard retry` and a re-sent person use.
pub fn renderer(
    config: &Config,
) -> impl Fn(&str, &Person) -> Option<Result<String, String>> + Sync + '_ {
    move |name, person| config.connector(name).map(|c| account_for(c, person))
}

/// A given account key (`offboard import`), or why the connector kind refuses it.
fn given_account(connector: &ConnectorConfig, account: &str) -> Result<String, String> {
    connector.kind.check_account(account).map_err(|reason| {
        format!(
            "the account key {account:?} is refused by connector {}: {reason}",
            connector.name
        )
    })?;
    Ok(account.to_string())
}

/// What one new removal row starts as.
#[derive(Debug, Clone)]
pub struct NewRemoval<'a> {
    /// The termination.
    pub termination_id: i64,
    /// The connector.
    pub connector: &'a str,
    /// The stage's action ("" for a connector without stages).
    pub stage: &'a str,
    /// The stage's place in the connector's list.
    pub stage_index: i64,
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
}

/// A planned removal as its termination's `termination_created` audit row lists it: id, connector,
/// first state, due time, and the reason when it starts failed or cancelled.
pub fn planned_item(new: &NewRemoval<'_>, stored: &Stored<'_>, id: i64) -> serde_json::Value {
    let mut item = json!({
        "removal_id": id, "connector": new.connector, "to": stored.state.as_str(), "due_at": ts(new.due_at),
    });
    if !new.stage.is_empty() {
        item["stage"] = json!(new.stage);
    }
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
    exclusion_by(safety, connector, |p| p.matches_person(person))
}

/// The first `never_remove` pattern (global, then the connector's) that `matches`.
fn exclusion_by<'a>(
    safety: &'a SafetyConfig,
    connector: &'a ConnectorConfig,
    matches: impl Fn(&Pattern) -> bool,
) -> Option<&'a Pattern> {
    safety
        .never_remove
        .iter()
        .chain(connector.never_remove.iter())
        .find(|p| matches(p))
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
    connectors
        .iter()
        .flat_map(|c| {
            if !c.scope.includes(person) {
                return vec![Decided {
                    removal: None,
                    excluded: false,
                    line: PlanLine {
                        employee_id: person.employee_id.clone(),
                        connector: Some(c.name.clone()),
                        stage: None,
                        action: "out_of_scope".into(),
                        due_at: None,
                        account: None,
                        note: None,
                    },
                }];
            }
            let excluded = exclusion(safety, c, person);
            let account = account_for(c, person);
            c.stages
                .iter()
                .enumerate()
                .map(|(i, stage)| {
                    decided(
                        c,
                        (i, &stage.action),
                        person,
                        account.clone(),
                        due_at(termination.effective_at, stage.after),
                        excluded,
                        termination,
                    )
                })
                .collect()
        })
        .collect()
}

/// Decides the removal of a termination made for an account of a vendor's user export (`offboard
/// import`): on `connector` only, whatever its scope, due when the termination takes effect (no grace),
/// for the account given, unless a `never_remove` pattern matches the account.
/// A connector with stages gets every stage, the first due at the effective time and each later one
/// as long after it as in the connector's list.
pub fn decide_account<'a>(
    connector: &'a ConnectorConfig,
    safety: &SafetyConfig,
    person: &Person,
    account: &str,
    termination: Planned,
) -> Vec<Decided<'a>> {
    let excluded = exclusion_by(safety, connector, |p| p.matches(account));
    let account = given_account(connector, account);
    connector
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            decided(
                connector,
                (i, &stage.action),
                person,
                account.clone(),
                due_at(
                    termination.effective_at,
                    stage.after.saturating_sub(connector.grace),
                ),
                excluded,
                termination,
            )
        })
        .collect()
}

/// The removal on `connector`, with the account key (or why there is none) and the pattern that excludes
/// the person, if any.
fn decided<'a>(
    connector: &'a ConnectorConfig,
    (stage_index, stage): (usize, &'a str),
    person: &Person,
    account: Result<String, String>,
    due: DateTime<Utc>,
    excluded: Option<&Pattern>,
    termination: Planned,
) -> Decided<'a> {
    let mut line = PlanLine {
        employee_id: person.employee_id.clone(),
        connector: Some(connector.name.clone()),
        stage: (!stage.is_empty()).then(|| stage.to_string()),
        action: String::new(),
        due_at: Some(ts(due)),
        account: account.as_ref().ok().cloned(),
        note: None,
    };
    let state = if excluded.is_some() {
        RemovalState::Cancelled
    } else {
        termination.state
    };
    let new = NewRemoval {
        termination_id: termination.termination_id,
        connector: &connector.name,
        stage,
        stage_index: i64::try_from(stage_index).unwrap_or(0),
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
    Decided {
        removal: Some(new),
        excluded: excluded.is_some(),
        line,
    }
}
