//! `offboard hold list|add|remove`: legal holds, placed and lifted by an operator (audited).

use std::io::Write;

use chrono::{DateTime, Utc};

use super::open_existing;
use crate::config::{Config, hold_stages};
use crate::output::{Format, extra, main};

/// `offboard hold list`.
pub(super) async fn list(
    config: &Config,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let holds = store.holds().await?;
    crate::output::list(
        out,
        format,
        &[
            extra("id"),
            main("employee_id"),
            main("reason"),
            main("until"),
            main("source"),
            main("created_by"),
            main("created_at"),
        ],
        &holds,
    )?;
    Ok(0)
}

/// `offboard hold add EMPLOYEE --reason R [--until T]`.
pub(super) async fn add(
    config: &Config,
    employee: &str,
    reason: &str,
    until: Option<DateTime<Utc>>,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let now = Utc::now();
    if reason.trim().is_empty() {
        anyhow::bail!("--reason is empty; give the case or matter the hold is for");
    }
    if let Some(until) = until
        && until <= now
    {
        anyhow::bail!("--until {} is not in the future", crate::store::ts(until));
    }
    let store = open_existing(config).await?;
    let stages = hold_stages(&config.connectors);
    let held = store
        .hold_add(employee, reason.trim(), until, "cli", &stages, actor, now)
        .await?;
    let deleting: Vec<String> = stages
        .iter()
        .filter(|(_, s)| !s.is_empty())
        .map(|(c, s)| {
            format!(
                "{c} ({})",
                if s == &[String::new()] {
                    "its removal deletes".to_string()
                } else {
                    s.join(", ")
                }
            )
        })
        .collect();
    writeln!(
        out,
        "{employee} is on hold{}: {held} waiting removal(s) put on hold; deletions wait on {}; access is still removed elsewhere",
        until.map_or(String::new(), |u| format!(" until {}", crate::store::ts(u))),
        if deleting.is_empty() {
            "no connector (none deletes)".to_string()
        } else {
            deleting.join(", ")
        }
    )?;
    Ok(0)
}

/// `offboard hold remove EMPLOYEE`.
pub(super) async fn remove(
    config: &Config,
    employee: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let released = store.hold_remove(employee, actor, Utc::now()).await?;
    writeln!(
        out,
        "{employee}'s hold is lifted: {released} removal(s) back in the queue, run when due"
    )?;
    Ok(0)
}
