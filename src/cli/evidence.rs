//! The evidence: `report` (per leaver and connector: when access was removed, time to revoke, SLA
//! breaches), `audit` (the log) and `audit verify` (its hash chain).

use std::io::Write;

use chrono::Utc;

use super::{open_existing, time_arg};
use crate::audit::{self, Verification};
use crate::config::Config;
use crate::output::Format;

/// `offboard backup --out FILE`: a consistent copy, its audit chain verified.
pub(super) async fn backup(
    config: &Config,
    file: &std::path::Path,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    store.backup_to(file).await?;
    let copy = crate::store::Store::connect(file, 1, config.database.busy_timeout).await?;
    let verified = audit::verify(&copy).await;
    copy.close().await;
    match verified? {
        Verification::Ok { rows, head } => {
            writeln!(
                out,
                "ok: backup {} written; its audit chain verifies ({rows} rows, chain head {head})",
                file.display()
            )?;
            Ok(0)
        }
        Verification::Broken { seq, reason } => {
            writeln!(
                out,
                "backup {} written, but its audit chain is broken at row {seq}: {reason}",
                file.display()
            )?;
            Ok(1)
        }
    }
}

/// `offboard audit archive`: the oldest rows into a signed segment file.
pub(super) async fn archive(
    config: &Config,
    through: i64,
    dir: &std::path::Path,
    actor: &str,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let Some(c) = &config.checkpoints else {
        anyhow::bail!("archiving needs [checkpoints] (the signing key): see docs/evidence.md");
    };
    let key = crate::checkpoint::SigningKey::from_secret(&c.signing_key)?;
    let store = open_existing(config).await?;
    let (anchor, removed) = audit::archive(&store, &key, through, dir, actor, Utc::now()).await?;
    writeln!(
        out,
        "archived rows through {} ({removed} rows) to {} (sha256 {}); the chain now starts after it. Keep the file with the checkpoints and the public key.",
        anchor.seq, anchor.segment, anchor.segment_sha256
    )?;
    Ok(0)
}

/// `offboard audit verify-segment FILE`: an archived segment, on its own.
pub(super) fn verify_segment(
    file: &std::path::Path,
    public_key: &std::path::Path,
    after: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let key = crate::checkpoint::PublicKey::read(public_key)?;
    match audit::verify_segment(file, &key, after)? {
        Verification::Ok { rows, head } => {
            writeln!(
                out,
                "ok: {rows} rows, last hash {head}, signed by key {}",
                key.key_id
            )?;
            Ok(0)
        }
        Verification::Broken { seq, reason } => {
            writeln!(out, "broken at row {seq}: {reason}")?;
            Ok(1)
        }
    }
}

/// `offboard evidence EMPLOYEE`: the signed evidence record of one leaver.
pub(super) async fn record(
    config: &Config,
    employee: &str,
    format: super::EvidenceFormat,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let Some(signed) = crate::evidence::build(&store, config, employee, Utc::now()).await? else {
        anyhow::bail!("offboard has no termination for employee {employee:?}");
    };
    match format {
        super::EvidenceFormat::Json => writeln!(out, "{}", serde_json::to_string_pretty(&signed)?)?,
        super::EvidenceFormat::Html => crate::evidence::write_html(out, &signed)?,
    }
    Ok(0)
}

/// `offboard report`.
pub(super) async fn report(
    config: &Config,
    since: Option<&str>,
    until: Option<&str>,
    connector: Option<String>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let filter = crate::report::ReportFilter {
        since: time_arg("--since", since)?,
        until: time_arg("--until", until)?,
        connector,
    };
    let report = crate::report::build(&store, config, &filter, Utc::now()).await?;
    crate::report::print(out, &report, format)?;
    Ok(0)
}

/// `offboard audit verify`: exit 1 when the chain is broken.
pub(super) async fn verify(
    config: &Config,
    against: Option<(std::path::PathBuf, std::path::PathBuf, String)>,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let loaded = match &against {
        Some((file, key, max_uncovered)) => Some((
            crate::checkpoint::read_file(file)?,
            crate::checkpoint::PublicKey::read(key)?,
            crate::config::parse_duration(max_uncovered)
                .map_err(|e| anyhow::anyhow!("--max-uncovered {max_uncovered:?}: {e}"))?,
        )),
        None => None,
    };
    let verification = match &loaded {
        Some((checkpoints, key, max_uncovered)) => {
            audit::verify_against(
                &store,
                Some(audit::Against {
                    checkpoints,
                    key,
                    max_uncovered: *max_uncovered,
                    now: Utc::now(),
                }),
            )
            .await?
        }
        None => audit::verify(&store).await?,
    };
    match verification {
        Verification::Ok { rows, head } => {
            match &loaded {
                Some((checkpoints, key, _)) => writeln!(
                    out,
                    "ok: {rows} rows, chain head {head}; {} checkpoint(s) signed by key {} match",
                    checkpoints.len(),
                    key.key_id
                )?,
                None => writeln!(
                    out,
                    "ok: {rows} rows, chain head {head} (without checkpoints, a rewrite with recomputed hashes would pass: see docs/evidence.md)"
                )?,
            }
            Ok(0)
        }
        Verification::Broken { seq, reason } => {
            writeln!(out, "broken at row {seq}: {reason}")?;
            Ok(1)
        }
    }
}

/// `offboard audit`: the log's rows, of one employee or connector, from a time on.
pub(super) async fn list(
    config: &Config,
    employee: Option<String>,
    connector: Option<String>,
    since: Option<&str>,
    format: Format,
    out: &mut impl Write,
) -> anyhow::Result<i32> {
    let store = open_existing(config).await?;
    let filter = audit::Filter {
        employee_id: employee,
        since: time_arg("--since", since)?,
        connector,
    };
    let rows = audit::list(&store, &filter).await?;
    audit::print_rows(out, &rows, format)?;
    Ok(0)
}
