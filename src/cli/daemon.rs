//! The daemon's own commands: `run` (until SIGTERM, or `--once` with its summary), `check-config`
//! (with `--probe`, each connector's read-only check) and `migrate`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;

use super::{open, open_existing};
use crate::app::App;
use crate::clock::Clock;
use crate::config::Config;
use crate::connectors::Registry;
use crate::output::Format;
use crate::store::Store;

/// How long `offboard run` waits for a PostgreSQL server that is not reachable at start.
const DATABASE_PATIENCE: Duration = Duration::from_secs(60);

/// `offboard run`: the daemon, until SIGTERM or SIGINT.
pub(super) async fn run(config: Config) -> anyhow::Result<i32> {
    let shutdown = crate::app::shutdown_on_signals()?;
    // A PostgreSQL server may be starting or restarting with the daemon (a Deployment rolled out
    // with its database, a failover): wait for it a while instead of failing the start at once.
    let patience = if config.database.sqlite_path().is_some() {
        Duration::ZERO
    } else {
        DATABASE_PATIENCE
    };
    let deadline = tokio::time::Instant::now() + patience;
    let app = loop {
        match App::build(config.clone(), Clock::system()).await {
            Ok(app) => break app,
            Err(e) if tokio::time::Instant::now() < deadline && !*shutdown.borrow() => {
                tracing::warn!(
                    error = %format!("{e:#}"),
                    database = %config.database.describe(),
                    "The database is not reachable yet; trying again in 2 s."
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    };
    app.run_until_stopped(shutdown).await?;
    tracing::info!("offboard stopped.");
    Ok(0)
}

/// `offboard run --once`: one poll, everything due (and the retries that fall due meanwhile), a
/// summary; exit 1 when the feed poll failed or any removal is failed, saying which.
pub(super) async fn run_once(
    config: Config,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let app = App::build(config, Clock::system()).await?;
    let summary = app.run_once().await?;
    let failed = app.store.failed_count().await?;
    let mut problems = Vec::new();
    if let Some(crate::app::PollSummary::Failed { error, .. }) = &summary.poll {
        problems.push(format!("the feed poll failed: {error}"));
    }
    if failed > 0 {
        problems.push(format!(
            "{failed} removal(s) are failed (see `offboard removals --state failed`)"
        ));
    }
    let document = json!({
        "summary": summary, "failed_total": failed,
        "ok": problems.is_empty(), "problems": problems,
    });
    match format {
        Format::Json | Format::Yaml => crate::output::document(out, format, &document)?,
        // One row per figure: `summary.drain.done,18`.
        Format::Csv => crate::output::list(
            out,
            format,
            &[crate::output::main("key"), crate::output::main("value")],
            &crate::output::flatten(&document),
        )?,
        Format::Table | Format::Wide => {
            print_once_summary(out, &summary, failed)?;
            match problems.as_slice() {
                [] => writeln!(out, "result: ok")?,
                _ => writeln!(out, "result: FAILED: {}", problems.join("; "))?,
            }
        }
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// `offboard migrate`: creates the database or brings its schema up to date.
pub(super) async fn migrate(config: &Config, out: &mut impl Write) -> anyhow::Result<i32> {
    let store = open(config).await?;
    let applied = store.migrations_applied().await?;
    writeln!(out, "ok: the schema is up to date ({applied} migrations)")?;
    Ok(0)
}

/// `offboard migrate --to postgres://...`: copies every row of the configured SQLite database into an
/// empty PostgreSQL database and verifies the audit chain there (same rows, same head).
pub(super) async fn migrate_to(
    config: &Config,
    url: &str,
    password_file: Option<&std::path::Path>,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    use crate::audit::{self, Verification};
    use crate::config::{Backend, DatabaseConfig, PostgresConfig, Secret};

    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
        anyhow::bail!("--to must be a postgres:// URL");
    }
    let authority = url
        .split("://")
        .nth(1)
        .unwrap_or("")
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    if authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    {
        anyhow::bail!("--to holds a password; give it with --password-file or $PGPASSWORD instead");
    }
    let password = match password_file {
        Some(file) => Some(Secret::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read --password-file {}", file.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        )),
        None => std::env::var("PGPASSWORD").ok().map(Secret::new),
    };
    let target_config = DatabaseConfig {
        backend: Backend::Postgres(PostgresConfig {
            url: url.to_string(),
            password,
            sslmode: None,
            ssl_root_cert: None,
            connect_timeout: Duration::from_secs(10),
        }),
        max_connections: 2,
        busy_timeout: config.database.busy_timeout,
    };
    let source = open_existing(config).await?;
    let before = audit::verify(&source).await?;
    let Verification::Ok { rows, head } = before else {
        anyhow::bail!(
            "the audit chain of {} does not verify ({before:?}); move nothing until it is explained",
            config.database.describe()
        );
    };
    let target = Store::open_configured(&target_config).await?;
    let copied = source.copy_into(&target).await?;
    let after = audit::verify(&target).await?;
    target.close().await;
    source.close().await;
    let shown = target_config.describe();
    for (table, n) in &copied {
        writeln!(out, "{table}: {n} rows")?;
    }
    match after {
        Verification::Ok {
            rows: moved,
            head: moved_head,
        } if moved == rows && moved_head == head => {
            writeln!(
                out,
                "ok: moved to {shown}; its audit chain verifies: {moved} rows, head {moved_head}, as in {}",
                config.database.describe()
            )?;
            writeln!(
                out,
                "next: set database.url = \"{shown}\" (and password_file or password_env) and start the daemon"
            )?;
            Ok(0)
        }
        other => {
            writeln!(
                out,
                "FAILED: the audit chain on {shown} does not match the source ({other:?}; source {rows} rows, head {head})"
            )?;
            Ok(1)
        }
    }
}

/// `offboard check-config`: the config's warnings, then "ok", or each probe's failure (exit 1).
pub(super) async fn check_config(
    config: &Config,
    probe: bool,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    for warning in &config.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    // The first start opens the database for writing: say now what it would say.
    if let Some(path) = config.database.sqlite_path()
        && let Some(problem) = Store::storage_problem(path)
    {
        writeln!(out, "database: cannot open {}: {problem}", path.display())?;
        return Ok(1);
    }
    if !probe {
        writeln!(out, "ok")?;
        return Ok(0);
    }
    let registry = Registry::build(config, &Clock::system())?;
    let mut failures = 0;
    if config.database.sqlite_path().is_none() {
        // A PostgreSQL server: reachable with these credentials, and taking writes.
        let shown = config.database.describe();
        let checked = async {
            let store = Store::connect_configured(&config.database).await?;
            let writable = store.check_writable().await;
            let applied = store.migrations_applied().await.unwrap_or(0);
            store.close().await;
            writable.map(|()| applied)
        }
        .await;
        match checked {
            Ok(0) => writeln!(
                out,
                "database {shown}: ok (reachable and writable; no offboard tables yet: the first start creates them)"
            )?,
            Ok(n) => writeln!(
                out,
                "database {shown}: ok (reachable and writable; {n} migrations applied)"
            )?,
            Err(e) => {
                failures += 1;
                writeln!(out, "database {shown}: {e:#}")?;
            }
        }
    }
    for c in &config.connectors {
        let Some(connector) = registry.get(&c.name) else {
            continue;
        };
        match connector.probe().await {
            Ok(msg) => writeln!(out, "connector {}: ok ({msg})", c.name)?,
            Err(e) => {
                failures += 1;
                writeln!(out, "connector {}: {}", c.name, e.reason)?;
            }
        }
    }
    if let Some(feed) = &config.feed {
        // What the first poll will read: the document, its header or records, mapped as configured.
        let http = crate::app::feed_client()?;
        let now = chrono::Utc::now();
        match crate::feed::read_feed(feed, &http, &Default::default(), now).await {
            Ok(Some((read, _))) => writeln!(
                out,
                "feed {}: ok ({} records read; the first poll ingests them)",
                read.source_ref,
                read.records.len()
            )?,
            Ok(None) => writeln!(out, "feed: ok (not modified)")?,
            Err(e) => {
                failures += 1;
                writeln!(out, "feed {}: {}", e.source_ref, e.message)?;
            }
        }
    }
    if failures == 0 {
        writeln!(out, "ok")?;
        Ok(0)
    } else {
        Ok(1)
    }
}

fn print_once_summary(
    out: &mut impl Write,
    summary: &crate::app::OnceSummary,
    failed_total: i64,
) -> anyhow::Result<()> {
    use crate::app::PollSummary;
    match &summary.poll {
        Some(PollSummary::Ingested(b)) => {
            writeln!(
                out,
                "feed: batch {}: {} rows, {} accepted, {} rejected; {} new terminations, {} rescinded, {} moved; {} removals planned ({} excluded by never_remove), {} cancelled by rescinds",
                b.batch_id,
                b.rows,
                b.accepted,
                b.rejected,
                b.new_terminations,
                b.rescinded,
                b.moved,
                b.removals_planned,
                b.excluded,
                b.removals_cancelled
            )?;
            if b.still_rejected > 0 {
                writeln!(
                    out,
                    "feed: {} row(s) repeat terminations an operator rejected; not taken again (see `offboard rejected`)",
                    b.still_rejected
                )?;
            }
            if b.rehired_after_removal > 0 {
                writeln!(
                    out,
                    "feed: {} REHIRED AFTER REMOVAL: restore their access by hand (see `offboard status`)",
                    b.rehired_after_removal
                )?;
            }
            if b.held {
                writeln!(
                    out,
                    "feed: BATCH {id} HELD by the mass-removal guard ({} new terminations, limit {}): nothing in it is removed until `offboard approve {id}` (or `offboard reject {id}`)",
                    b.new_terminations,
                    b.limit,
                    id = b.batch_id
                )?;
            }
        }
        Some(PollSummary::Unchanged { batch_id }) => {
            writeln!(out, "feed: batch {batch_id}: unchanged since the last poll")?
        }
        Some(PollSummary::Failed { batch_id, error }) => {
            writeln!(out, "feed: batch {batch_id} FAILED: {error}")?
        }
        None => writeln!(out, "feed: none configured")?,
    }
    let d = &summary.drain;
    writeln!(
        out,
        "removals: {} attempts; {} done, {} planned (dry-run), {} to retry, {} failed, {} cancelled",
        d.attempts, d.done, d.planned, d.retried, d.failed, d.cancelled
    )?;
    writeln!(
        out,
        "queue: {} pending (not yet due or waiting to retry), {} held, {} failed in total",
        summary.pending, summary.held, failed_total
    )?;
    Ok(())
}
