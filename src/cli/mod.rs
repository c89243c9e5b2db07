//! The command line: commands, their arguments, and what each runs. Output formats are `output`'s;
//! the daemon's own commands' output is `daemon`.

mod daemon;

use std::io::Write;
use std::path::PathBuf;

use crate::store::Pool;
use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use serde_json::json;

use crate::app::App;
use crate::audit::{self, Verification};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::{RemovalState, StatusValues};
use crate::feed::intake::{self, Batch, BatchSource, Record};
use crate::feed::rows::{self, RawRow, RawValue, RowRules};
pub use crate::output::{Format, emit, write_table};
use crate::store::batches;
use crate::store::queue::{self, RemovalFilter, RetrySelection};

/// offboard: removes a leaver's access to every SaaS app on the day HR says they leave, and proves it.
#[derive(Debug, Parser)]
#[command(name = "offboard", version, about)]
pub struct Cli {
    /// The config file.
    #[arg(
        long,
        global = true,
        env = "OFFBOARD_CONFIG",
        default_value = "/etc/offboard/offboard.toml"
    )]
    pub config: PathBuf,
    /// Who runs an operator command (recorded in the audit log); default $SUDO_USER, else $USER.
    #[arg(long, global = true)]
    pub actor: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs the daemon: polls the feed on its schedule and works the queue until SIGTERM.
    Run {
        /// Poll once, process everything due, print a summary and exit (non-zero if anything failed).
        #[arg(long)]
        once: bool,
        /// Summary format for --once.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Checks the config: prints "ok" or every problem (exit 1).
    CheckConfig {
        /// Also run each connector's probe (a cheap authenticated read).
        #[arg(long)]
        probe: bool,
    },
    /// Applies database migrations.
    Migrate,
    /// The queue by state and connector, the oldest due removal, failures, rehires after removal.
    Status {
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Lists removals.
    Removals {
        /// Only this state.
        #[arg(long)]
        state: Option<RemovalState>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Puts a failed (or planned) removal, or every failed one, back in the queue.
    Retry {
        /// The removal id.
        #[arg(required_unless_present = "failed", conflicts_with = "failed")]
        id: Option<i64>,
        /// Every failed removal.
        #[arg(long)]
        failed: bool,
        /// With --failed: only this connector.
        #[arg(long, requires = "failed")]
        connector: Option<String>,
    },
    /// Releases a batch held by the mass-removal guard, or a connector's dry-run (planned) removals.
    Approve {
        /// The held batch.
        #[arg(required_unless_present = "planned", conflicts_with = "planned")]
        batch: Option<i64>,
        /// Instead: move the connector's planned removals to pending (after turning its dry_run off).
        #[arg(long, requires = "connector")]
        planned: bool,
        /// With --planned: the connector.
        #[arg(long)]
        connector: Option<String>,
    },
    /// Cancels every removal of a batch held by the mass-removal guard.
    Reject {
        /// The held batch.
        batch: i64,
    },
    /// Reads the feed now and shows, per person and connector, what would happen; writes nothing.
    Plan {
        /// Also run each connector's read-only lookup for removals that would run.
        #[arg(long)]
        resolve: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Cancels a pending, held, failed or planned removal.
    Cancel {
        /// The removal id.
        id: i64,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
    },
    /// Enqueues a termination by hand (same validation as the feed).
    Enqueue {
        /// The HR employee id.
        #[arg(long)]
        employee_id: String,
        /// Work email.
        #[arg(long)]
        email: Option<String>,
        /// Username.
        #[arg(long)]
        username: Option<String>,
        /// UPN.
        #[arg(long)]
        upn: Option<String>,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Effective time (YYYY-MM-DD or RFC 3339); default now.
        #[arg(long)]
        effective: Option<String>,
    },
    /// One-time bulk removal of the accounts listed in a column of a vendor's user export (one batch).
    Import {
        /// The CSV export.
        file: PathBuf,
        /// The connector to remove them from.
        #[arg(long)]
        connector: String,
        /// The column that holds the account key.
        #[arg(long)]
        column: String,
    },
    /// Evidence per leaver and connector: when access was removed, time to revoke, SLA breaches.
    Report {
        /// Terminations effective at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Terminations effective before this time.
        #[arg(long)]
        until: Option<String>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Reads the audit log, or verifies its hash chain.
    Audit {
        /// verify: checks the hash chain.
        #[command(subcommand)]
        action: Option<AuditAction>,
        /// Only this employee.
        #[arg(long)]
        employee: Option<String>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<String>,
        /// Only rows at or after this time (YYYY-MM-DD or RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

/// Audit subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Checks that no audit row was changed, inserted or removed.
    Verify,
}

/// The operator's name: `--actor`, else `$SUDO_USER`, else `$USER`, else "unknown".
pub fn actor(explicit: Option<&str>) -> String {
    explicit
        .map(str::to_string)
        .or_else(|| std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// Runs a parsed command; returns the process exit code.
pub async fn execute(cli: Cli, config: Config) -> anyhow::Result<i32> {
    let actor = actor(cli.actor.as_deref());
    let mut out = std::io::stdout().lock();
    if let Command::Status {
        format: Format::Csv,
    }
    | Command::Run {
        format: Format::Csv,
        ..
    } = cli.command
    {
        anyhow::bail!("--format csv is not available for this command; use table or json");
    }
    match cli.command {
        Command::CheckConfig { probe } => daemon::check_config(&config, probe, &mut out).await,
        Command::Run { once: false, .. } => {
            let shutdown = crate::app::shutdown_on_signals()?;
            let app = App::build(config, Clock::system()).await?;
            tracing::info!(
                connectors = app.config.connectors.len(),
                feed = app.config.feed.is_some(),
                "offboard started."
            );
            app.run_until_stopped(shutdown).await?;
            tracing::info!("offboard stopped.");
            Ok(0)
        }
        Command::Run { once: true, format } => {
            let app = App::build(config, Clock::system()).await?;
            let summary = app.run_once().await?;
            let failed = failed_count(&app.pool).await?;
            match format {
                Format::Json => writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({"summary": summary, "failed_total": failed})
                    )?
                )?,
                _ => daemon::print_once_summary(&mut out, &summary, failed)?,
            }
            Ok(if summary.drain.failed > 0 || failed > 0 {
                1
            } else {
                0
            })
        }
        Command::Migrate => {
            let pool = open(&config).await?;
            let applied = crate::store::reads::migrations_applied(&pool).await?;
            writeln!(out, "ok: the schema is up to date ({applied} migrations)")?;
            Ok(0)
        }
        Command::Status { format } => {
            let pool = open_existing(&config).await?;
            let status = crate::status::gather(&pool, Utc::now()).await?;
            crate::status::print(&mut out, &status, format)?;
            Ok(0)
        }
        Command::Removals {
            state,
            connector,
            employee,
            format,
        } => {
            let pool = open_existing(&config).await?;
            let rows = queue::list(
                &pool,
                &RemovalFilter {
                    state,
                    connector,
                    employee_id: employee,
                },
            )
            .await?;
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.id.to_string(),
                        r.employee_id.clone(),
                        r.connector.clone(),
                        r.account.clone().unwrap_or_default(),
                        r.state.clone(),
                        r.due_at.clone(),
                        r.attempts.to_string(),
                        r.outcome.clone().unwrap_or_default(),
                        r.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            emit(
                &mut out,
                format,
                &[
                    "id",
                    "employee",
                    "connector",
                    "account",
                    "state",
                    "due_at",
                    "attempts",
                    "outcome",
                    "last_error",
                ],
                &table,
                &rows,
            )?;
            Ok(0)
        }
        Command::Retry {
            id,
            failed: _,
            connector,
        } => {
            let pool = open_existing(&config).await?;
            let selection = match id {
                Some(id) => RetrySelection::One(id),
                None => RetrySelection::Failed { connector },
            };
            let ids = queue::retry(&pool, &selection, &actor, Utc::now()).await?;
            writeln!(out, "retried {} removal(s){}", ids.len(), list_ids(&ids))?;
            Ok(0)
        }
        Command::Approve {
            batch,
            planned: _,
            connector,
        } => {
            let pool = open_existing(&config).await?;
            match (batch, connector) {
                (Some(batch), _) => {
                    let n = batches::decide(
                        &pool,
                        batch,
                        batches::Decision::Approve,
                        &actor,
                        Utc::now(),
                    )
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
                    let n = batches::approve_planned(&pool, &connector, &actor, Utc::now()).await?;
                    writeln!(out, "approved {n} planned removal(s) of {connector}")?;
                }
                (None, None) => anyhow::bail!("give a batch id, or --planned --connector NAME"),
            }
            Ok(0)
        }
        Command::Reject { batch } => {
            let pool = open_existing(&config).await?;
            let n = batches::decide(&pool, batch, batches::Decision::Reject, &actor, Utc::now())
                .await?;
            writeln!(out, "rejected batch {batch}: {n} removal(s) cancelled")?;
            Ok(0)
        }
        Command::Plan { resolve, format } => {
            let pool = open_existing(&config).await?;
            let plan = crate::preview::plan(&pool, &config, resolve, Utc::now()).await?;
            crate::preview::print(&mut out, &plan, format)?;
            Ok(0)
        }
        Command::Cancel { id, reason } => {
            let pool = open_existing(&config).await?;
            queue::cancel(&pool, id, &reason, &actor, Utc::now()).await?;
            writeln!(out, "cancelled removal {id}")?;
            Ok(0)
        }
        Command::Enqueue {
            employee_id,
            email,
            username,
            upn,
            display_name,
            effective,
        } => {
            let pool = open(&config).await?;
            let now = Utc::now();
            let effective =
                effective.unwrap_or_else(|| now.format("%Y-%m-%dT%H:%M:%SZ").to_string());
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
                &pool,
                &config.connectors,
                &config.safety,
                Batch {
                    source: BatchSource::Cli,
                    source_ref: None,
                    actor: actor.clone(),
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
        Command::Import {
            file,
            connector,
            column,
        } => {
            let pool = open(&config).await?;
            let connector_config = config.connector(&connector).with_context(|| {
                format!(
                    "no connector named {connector:?} in {}",
                    config.path.display()
                )
            })?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let summary = intake::import_accounts(
                &pool,
                connector_config,
                &config.safety,
                &bytes,
                &column,
                &file.display().to_string(),
                &actor,
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
        Command::Report {
            since,
            until,
            connector,
            format,
        } => {
            let pool = open_existing(&config).await?;
            let filter = crate::report::ReportFilter {
                since: time_arg("--since", since.as_deref())?,
                until: time_arg("--until", until.as_deref())?,
                connector,
            };
            let report = crate::report::build(&pool, &config, &filter, Utc::now()).await?;
            crate::report::print(&mut out, &report, format)?;
            Ok(0)
        }
        Command::Audit {
            action: Some(AuditAction::Verify),
            ..
        } => {
            let pool = open_existing(&config).await?;
            match audit::verify(&pool).await? {
                Verification::Ok { rows, head } => {
                    writeln!(out, "ok: {rows} rows, chain head {head}")?;
                    Ok(0)
                }
                Verification::Broken { seq, reason } => {
                    writeln!(out, "broken at row {seq}: {reason}")?;
                    Ok(1)
                }
            }
        }
        Command::Audit {
            action: None,
            employee,
            connector,
            since,
            format,
        } => {
            let pool = open_existing(&config).await?;
            let since = time_arg("--since", since.as_deref())?;
            let rows = audit::list(
                &pool,
                &audit::Filter {
                    employee_id: employee,
                    since,
                    connector,
                },
            )
            .await?;
            let table: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.seq.to_string(),
                        r.at.clone(),
                        r.actor.clone(),
                        r.event.clone(),
                        r.employee_id.clone().unwrap_or_default(),
                        r.connector.clone().unwrap_or_default(),
                        r.removal_id.map(|v| v.to_string()).unwrap_or_default(),
                        r.attempt.map(|v| v.to_string()).unwrap_or_default(),
                        r.outcome.clone().unwrap_or_default(),
                        r.http_status.map(|v| v.to_string()).unwrap_or_default(),
                        r.detail.clone(),
                    ]
                })
                .collect();
            emit(
                &mut out,
                format,
                &[
                    "seq",
                    "at",
                    "actor",
                    "event",
                    "employee",
                    "connector",
                    "removal",
                    "attempt",
                    "outcome",
                    "http",
                    "detail",
                ],
                &table,
                &rows,
            )?;
            Ok(0)
        }
    }
}

fn opt(v: &Option<String>) -> RawValue<'_> {
    v.as_deref().map_or(RawValue::Absent, RawValue::Str)
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

fn time_arg(flag: &str, value: Option<&str>) -> anyhow::Result<Option<DateTime<Utc>>> {
    value
        .map(|s| {
            parse_time_arg(s)
                .with_context(|| format!("{flag} {s:?}: expected YYYY-MM-DD or RFC 3339"))
        })
        .transpose()
}

/// Parses a time argument: YYYY-MM-DD (UTC midnight) or RFC 3339.
pub fn parse_time_arg(s: &str) -> Option<DateTime<Utc>> {
    rows::parse_effective_date(s, chrono_tz::UTC)
}

/// Opens the database for a command that reads or changes existing state: a missing file is an
/// error (a wrong path must not show an empty, healthy-looking queue).
async fn open_existing(config: &Config) -> anyhow::Result<Pool> {
    if !config.database.path.exists() {
        anyhow::bail!(
            "no database at {} (database.url in {}); check the path, or run `offboard migrate` to create it",
            config.database.path.display(),
            config.path.display()
        );
    }
    open(config).await
}

async fn open(config: &Config) -> anyhow::Result<Pool> {
    crate::store::open(
        &config.database.path,
        config.database.max_connections,
        config.database.busy_timeout,
    )
    .await
}

async fn failed_count(pool: &Pool) -> anyhow::Result<i64> {
    crate::store::reads::failed_count(pool).await
}
