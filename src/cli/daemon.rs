//! The daemon's own commands' output: `check-config` (with `--probe`, each connector's read-only
//! check) and the summary of `run --once`.

use std::io::Write;

use crate::clock::Clock;
use crate::config::Config;
use crate::connectors::Registry;

pub(super) async fn check_config(
    config: &Config,
    probe: bool,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    for warning in &config.warnings {
        writeln!(out, "warning: {warning}")?;
    }
    if !probe {
        writeln!(out, "ok")?;
        return Ok(0);
    }
    let registry = Registry::build(config, &Clock::system())?;
    let mut failures = 0;
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
    if failures == 0 {
        writeln!(out, "ok")?;
        Ok(0)
    } else {
        Ok(1)
    }
}

pub(super) fn print_once_summary(
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
