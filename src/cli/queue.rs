//! The queue's commands: `status` (the queue at a glance), `removals` (the listing), `retry`,
//! `cancel`, and `approve` / `reject` of a batch held by the mass-removal guard or of a dry-run
//! connector's planned removals.

use std::io::Write;

use anyhow::Context;
use chrono::Utc;

use super::open_existing;
use crate::config::Config;
use crate::output::{Format, extra, list, main};
use crate::store::batches;
use crate::store::queue::{RemovalFilter, RetrySelection};

/// `offboard status`.
pub(super) async fn status(
    config: &Config,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let status = crate::status::gather(&store, Utc::now()).await?;
    crate::status::print(out, &status, format)?;
    Ok(0)
}

/// `offboard removals`: every removal the filter selects.
pub(super) async fn removals(
    config: &Config,
    filter: &RemovalFilter,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let rows = store.removals(filter).await?;
    list(
        out,
        format,
        &[
            main("id"),
            main("employee_id"),
            main("connector"),
            main("stage"),
            main("account"),
            main("state"),
            main("due_at"),
            main("attempts"),
            main("outcome"),
            main("last_error"),
            extra("effective_at"),
            extra("finished_at"),
        ],
        &rows,
    )?;
    Ok(0)
}

/// `offboard rejects`: the rejected feed rows, of one batch or of all.
pub(super) async fn rejects(
    config: &Config,
    batch: Option<i64>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let rows = store.rejected_rows(batch).await?;
    list(
        out,
        format,
        &[
            main("batch_id"),
            main("received_at"),
            main("source"),
            main("row"),
            main("line"),
            main("field"),
            main("reason"),
        ],
        &rows,
    )?;
    Ok(0)
}

/// `offboard retry`: one removal, or every failed one (of one connector).
pub(super) async fn retry(
    config: &Config,
    selection: &RetrySelection,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let render = crate::planner::renderer(config);
    let (ids, not_retried) = store.retry(selection, &render, actor, Utc::now()).await?;
    writeln!(out, "retried {} removal(s){}", ids.len(), list_ids(&ids))?;
    for n in &not_retried {
        writeln!(out, "not retried: removal {}: {}", n.id, n.reason)?;
    }
    Ok(if not_retried.is_empty() { 0 } else { 1 })
}

/// `offboard approve`: a held batch, or (without one) a connector's planned removals.
pub(super) async fn approve(
    config: &Config,
    batch: Option<i64>,
    connector: Option<String>,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    match (batch, connector) {
        (Some(batch), _) => {
            let n = store
                .decide_batch(batch, batches::Decision::Approve, actor, Utc::now())
                .await?;
            writeln!(out, "approved batch {batch}: {n} removal(s) released")?;
        }
        (None, Some(connector)) => {
            let c = config
                .connector(&connector)
                .with_context(|| format!("no connector named {connector:?}"))?;
            if c.dry_run {
                anyhow::bail!(
                    "connector {connector} is still in dry-run; turn dry_run off first, or its removals end planned again"
                );
            }
            let n = store.approve_planned(&connector, actor, Utc::now()).await?;
            writeln!(out, "approved {n} planned removal(s) of {connector}")?;
        }
        (None, None) => anyhow::bail!("give a batch id, or --planned --connector NAME"),
    }
    Ok(0)
}

/// `offboard reject`: cancels every removal of a held batch.
pub(super) async fn reject(
    config: &Config,
    batch: i64,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let n = store
        .decide_batch(batch, batches::Decision::Reject, actor, Utc::now())
        .await?;
    writeln!(out, "rejected batch {batch}: {n} removal(s) cancelled")?;
    Ok(0)
}

/// `offboard connector list`.
pub(super) async fn connector_states(
    config: &Config,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let rows = store.connector_states().await?;
    list(
        out,
        format,
        &[
            main("connector"),
            main("state"),
            main("since"),
            main("probes"),
            main("next_probe_at"),
            main("reason"),
        ],
        &rows,
    )?;
    Ok(0)
}

/// `offboard connector pause NAME`.
pub(super) async fn pause(
    config: &Config,
    name: &str,
    reason: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    if config.connector(name).is_none() {
        anyhow::bail!("no connector named {name:?} in {}", config.path.display());
    }
    let store = open_existing(config).await?;
    store
        .set_connector_state(name, "paused", reason, None, actor, Utc::now())
        .await?;
    writeln!(
        out,
        "paused connector {name}: its removals wait until `offboard connector resume {name}` (a running daemon sees it within a second)"
    )?;
    Ok(0)
}

/// `offboard connector resume NAME`.
pub(super) async fn resume(
    config: &Config,
    name: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    match store
        .resume_connector(name, "resumed by an operator", actor, Utc::now())
        .await?
    {
        Some(from) => writeln!(out, "resumed connector {name} (it was {from})")?,
        None => writeln!(out, "connector {name} was not paused or quarantined")?,
    }
    Ok(0)
}

/// `offboard rejected`: the rejected terminations remembered.
pub(super) async fn rejected(
    config: &Config,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let rows = store.rejected_terminations().await?;
    list(
        out,
        format,
        &[
            extra("termination_id"),
            main("employee_id"),
            main("effective_at"),
            main("batch_id"),
            main("rejected_by"),
            main("rejected_at"),
        ],
        &rows,
    )?;
    Ok(0)
}

/// `offboard unreject`: lifts a person's remembered rejection.
pub(super) async fn unreject(
    config: &Config,
    employee: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let n = store.unreject(employee, actor, Utc::now()).await?;
    writeln!(
        out,
        "lifted {n} rejection(s) of {employee}: the next feed or push that reports them starts the termination again"
    )?;
    Ok(0)
}

/// `offboard cancel`: one removal, with the reason recorded in the audit log.
pub(super) async fn cancel(
    config: &Config,
    id: i64,
    reason: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    store.cancel(id, reason, actor, Utc::now()).await?;
    writeln!(out, "cancelled removal {id}")?;
    Ok(0)
}

fn list_ids(ids: &[i64]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(
            ": {}",
            ids.iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
