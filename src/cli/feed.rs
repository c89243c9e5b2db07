//! The commands that feed terminations in by hand or show what the feed would do: `plan` (the
//! preview), `enqueue` (one termination) and `import` (a vendor's export as one batch).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use clap::Args;

use super::{open, open_existing};
use crate::config::Config;
use crate::domain::StatusValues;
use crate::feed::intake::{self, Batch, BatchSource, Record};
use crate::feed::rows::{self, RawRow, RawValue, RowRules};
use crate::output::Format;

/// The termination `offboard enqueue` adds.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The HR employee id.
    #[arg(long)]
    pub employee_id: String,
    /// Work email.
    #[arg(long)]
    pub email: Option<String>,
    /// Username.
    #[arg(long)]
    pub username: Option<String>,
    /// UPN.
    #[arg(long)]
    pub upn: Option<String>,
    /// Display name.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Effective time (YYYY-MM-DD or RFC 3339); default now.
    #[arg(long)]
    pub effective: Option<String>,
}

/// `offboard plan`: reads the feed now and shows what would happen; writes nothing.
pub(super) async fn plan(
    config: &Config,
    resolve: bool,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let fresh = match config.database.sqlite_path() {
        Some(path) => !path.exists(),
        None => {
            let store = crate::store::Store::connect_configured(&config.database).await?;
            let applied = store.migrations_applied().await.unwrap_or(0);
            store.close().await;
            applied == 0
        }
    };
    if fresh {
        // No database yet (a fresh install): plan against an empty one, as the first run will find
        // it, in a scratch file that is removed afterwards; the real path is left untouched.
        let scratch = std::env::temp_dir().join(format!(
            "offboard-plan-{}-{:08x}.db",
            std::process::id(),
            rand::random::<u32>()
        ));
        let result = async {
            let store =
                crate::store::Store::open(&scratch, 2, config.database.busy_timeout).await?;
            let plan = crate::preview::plan(&store, config, resolve, Utc::now()).await;
            store.close().await;
            plan
        }
        .await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", scratch.display()));
        }
        let plan = result?;
        if format.is_table() {
            writeln!(
                out,
                "note: no database at {} yet: planned as the first run will find it (empty)",
                config.database.describe()
            )?;
        }
        crate::preview::print(out, &plan, format)?;
    } else {
        let store = open_existing(config).await?;
        let plan = crate::preview::plan(&store, config, resolve, Utc::now()).await?;
        crate::preview::print(out, &plan, format)?;
    }
    Ok(0)
}

/// `offboard enqueue`: one termination, checked by the feed's rules, ingested as a batch of one.
pub(super) async fn enqueue(
    config: &Config,
    args: EnqueueArgs,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let EnqueueArgs {
        employee_id,
        email,
        username,
        upn,
        display_name,
        effective,
    } = args;
    let store = open(config).await?;
    let now = Utc::now();
    let effective = effective.unwrap_or_else(|| now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    let statuses = StatusValues::default();
    let raw = RawRow {
        employee_id: RawValue::Str(&employee_id).into(),
        email: opt(&email).into(),
        username: opt(&username).into(),
        upn: opt(&upn).into(),
        display_name: opt(&display_name).into(),
        effective_date: RawValue::Str(&effective).into(),
        status: RawValue::Str("terminated").into(),
    };
    let rules = RowRules {
        statuses: &statuses,
        timezone: config.feed.as_ref().map_or(chrono_tz::UTC, |f| f.timezone),
        now,
    };
    let row = rows::check_row(&raw, &rules).map_err(|faults| {
        anyhow::anyhow!(
            "the termination is not valid: {}",
            faults
                .iter()
                .map(|f| format!(
                    "--{}: {}",
                    f.field.as_deref().unwrap_or("row").replace('_', "-"),
                    f.reason.as_str()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let summary = intake::ingest(
        &store,
        &config.connectors,
        &config.safety,
        Batch {
            source: BatchSource::Cli,
            source_ref: None,
            actor: actor.to_string(),
            content_sha256: None,
            records: vec![Record {
                row: 1,
                line: None,
                result: Ok(row),
            }],
        },
        now,
    )
    .await?;
    writeln!(
        out,
        "batch {}: {} new termination(s), {} removal(s) planned",
        summary.batch_id, summary.new_terminations, summary.removals_planned
    )?;
    Ok(0)
}

/// `offboard import`: the accounts listed in one column of a vendor's export, removed as one batch.
pub(super) async fn import(
    config: &Config,
    file: &Path,
    connector: &str,
    column: &str,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open(config).await?;
    let connector_config = config.connector(connector).with_context(|| {
        format!(
            "no connector named {connector:?} in {}",
            config.path.display()
        )
    })?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let summary = crate::feed::import::import_accounts(
        &store,
        connector_config,
        &config.safety,
        &bytes,
        column,
        &file.display().to_string(),
        actor,
        Utc::now(),
    )
    .await?;
    writeln!(
        out,
        "batch {}: {} row(s), {} account(s) queued for removal from {} ({} excluded by never_remove), {} rejected",
        summary.batch_id,
        summary.rows,
        summary.removals_planned - summary.excluded,
        connector,
        summary.excluded,
        summary.rejected
    )?;
    if summary.held {
        writeln!(
            out,
            "batch {id} is HELD by the mass-removal guard (limit {}): nothing is removed until `offboard approve {id}`",
            summary.limit,
            id = summary.batch_id
        )?;
    }
    Ok(0)
}

/// `offboard inactive [--connector C] [--plan]`.
pub(super) async fn inactive(
    config: &Config,
    connector: Option<&str>,
    plan: bool,
    format: Format,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let chosen: Vec<&crate::config::ConnectorConfig> = config
        .connectors
        .iter()
        .filter(|c| c.inactive.is_some() && connector.is_none_or(|n| n == c.name))
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(
            "no connector{} has [connector.inactive] in {}: nothing to scan",
            connector.map_or(String::new(), |c| format!(" named {c:?}")),
            config.path.display()
        );
    }
    let store = open(config).await?;
    let now = Utc::now();
    for c in chosen {
        if plan {
            let Some((summary, lines)) =
                crate::feed::inactive::plan(&store, c, &config.safety, now).await?
            else {
                continue;
            };
            if format.is_table() {
                writeln!(out, "connector {}: the last-login export says", c.name)?;
            }
            let plan = crate::preview::Plan {
                summary,
                lines: lines
                    .into_iter()
                    .map(|line| crate::preview::PlanItem {
                        line,
                        resolved: None,
                    })
                    .collect(),
            };
            crate::preview::print(out, &plan, format)?;
            continue;
        }
        let Some(s) = crate::feed::inactive::scan(&store, c, &config.safety, actor, now).await?
        else {
            continue;
        };
        writeln!(
            out,
            "connector {}: batch {}: {} account(s) in the export, {} newly inactive and queued for removal, {} used again (rescinded), {} rejected",
            c.name, s.batch_id, s.rows, s.new_terminations, s.rescinded, s.rejected
        )?;
        if s.held {
            writeln!(
                out,
                "batch {id} is HELD by the mass-removal guard (limit {}): nothing is removed until `offboard approve {id}`",
                s.limit,
                id = s.batch_id
            )?;
        }
    }
    Ok(0)
}

fn opt(v: &Option<String>) -> RawValue<'_> {
    v.as_deref().map_or(RawValue::Absent, RawValue::Str)
}
