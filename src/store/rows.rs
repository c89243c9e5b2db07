//! Rows as the statements of both backends return them, and what they become: a claimed removal with its
//! termination and person, a removal with what its account is made from. The statements differ by
//! dialect; these do not.

use sqlx::FromRow;

use crate::connectors::Bound;
use crate::domain::Person;
use crate::store::parse_ts;
use crate::store::queue::{AccountSource, Binding, Claimed};

#[derive(FromRow)]
pub(in crate::store) struct ClaimRow {
    pub(in crate::store) id: i64,
    termination_id: i64,
    connector: String,
    stage: String,
    stage_index: i64,
    account: Option<String>,
    attempts: i64,
    retry_base: i64,
    credential_refusals: i64,
    pub(in crate::store) due_at: String,
    remote_id: Option<String>,
    bound_key: Option<String>,
    remove_sent_at: Option<String>,
    /// The termination and the person, as a JSON object ([`Who`]).
    who: Option<String>,
}

/// The termination and person columns a claim brings along.
#[derive(serde::Deserialize)]
struct Who {
    effective_at: String,
    employee_id: String,
    email: Option<String>,
    username: Option<String>,
    upn: Option<String>,
    display_name: Option<String>,
    attributes: String,
}

impl ClaimRow {
    /// The claimed removal, for `owner`.
    pub(in crate::store) fn claimed(self, owner: &str) -> anyhow::Result<Claimed> {
        let row = self;
        let who: Who = serde_json::from_str(row.who.as_deref().unwrap_or("null")).map_err(|e| {
            anyhow::anyhow!(
                "removal {}: its termination or person is missing: {e}",
                row.id
            )
        })?;
        let bound = match (row.remove_sent_at, row.remote_id) {
            (Some(sent_at), Some(id)) => Some(Binding {
                account: Bound {
                    id,
                    key: row.bound_key,
                },
                remove_sent_at: parse_ts(&sent_at)?,
            }),
            _ => None,
        };
        Ok(Claimed {
            id: row.id,
            bound,
            termination_id: row.termination_id,
            connector: row.connector,
            stage: row.stage,
            stage_index: row.stage_index,
            account: row.account,
            attempt: row.attempts,
            retry_base: row.retry_base,
            credential_refusals: row.credential_refusals,
            owner: owner.to_string(),
            effective_at: parse_ts(&who.effective_at)?,
            person: Person {
                employee_id: who.employee_id,
                email: who.email,
                username: who.username,
                upn: who.upn,
                display_name: who.display_name,
                attributes: serde_json::from_str(&who.attributes).unwrap_or_default(),
            },
        })
    }
}

#[derive(FromRow)]
pub(in crate::store) struct AccountRow {
    id: i64,
    connector: String,
    stage: String,
    state: String,
    account: Option<String>,
    source: String,
    effective_at: String,
    employee_id: String,
    email: Option<String>,
    username: Option<String>,
    upn: Option<String>,
    display_name: Option<String>,
    attributes: String,
}

pub(in crate::store) const ACCOUNT_ROW_SQL: &str = "SELECT r.id, r.connector, r.stage, r.state, r.account, t.source, t.effective_at, \
       p.employee_id, p.email, p.username, p.upn, p.display_name, p.attributes \
     FROM removals r JOIN terminations t ON t.id = r.termination_id \
     JOIN people p ON p.employee_id = t.employee_id";

pub(in crate::store) fn account_row(row: AccountRow) -> anyhow::Result<AccountSource> {
    Ok(AccountSource {
        id: row.id,
        connector: row.connector,
        stage: row.stage,
        state: row.state,
        account: row.account,
        imported: row.source == "import" || row.source == "inactive",
        effective_at: parse_ts(&row.effective_at)?,
        person: Person {
            employee_id: row.employee_id,
            email: row.email,
            username: row.username,
            upn: row.upn,
            display_name: row.display_name,
            attributes: serde_json::from_str(&row.attributes).unwrap_or_default(),
        },
    })
}
