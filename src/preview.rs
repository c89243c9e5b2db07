//! The preview behind `offboard plan`: what the next poll would do, per person and connector, without
//! writing anything (the planner itself is `planner.rs`).

use std::collections::HashMap;
use std::io::Write;

use crate::store::Store;
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::DAEMON;
use crate::clock::Clock;
use crate::config::Config;
use crate::connectors::{CallLog, Registry, Resolution, Target};
use crate::domain::Person;
use crate::feed::intake::{self, Batch, BatchSource, BatchSummary, PlanLine};
use crate::output::{Column, Format, list, main};

/// The plan for the feed as it reads now.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// What the batch as a whole would do.
    pub summary: BatchSummary,
    /// One line per person and connector (and per rescinded or moved termination).
    pub lines: Vec<PlanItem>,
}

/// One line of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlanItem {
    /// What intake would do.
    #[serde(flatten)]
    pub line: PlanLine,
    /// With --resolve: what the connector's read-only lookup found.
    pub resolved: Option<String>,
}

/// Reads the feed and works out the plan in a transaction that is rolled back; with `resolve`,
/// then asks each connector's read-only lookup about the removals that would run.
pub async fn plan(
    store: &Store,
    config: &Config,
    resolve: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<Plan> {
    let feed = config
        .feed
        .as_ref()
        .context("no [feed] is configured: nothing to plan")?;
    let http = reqwest::Client::new();
    // The whole document, as the next poll would read it (with the incremental cursor, without the
    // validators that could make the server answer "not modified").
    let saved = crate::feed::load_state(store, &crate::feed::describe_source(&feed.source)).await?;
    let state = crate::feed::FeedState {
        last_success_at: saved.last_success_at,
        ..Default::default()
    };
    let (read, _) = crate::feed::read_feed(feed, &http, &state, now)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the feed {}: {}", e.source_ref, e.message))?
        .context("the feed server answered 304 Not Modified to an unconditional request")?;
    let mut people: HashMap<String, Person> = HashMap::new();
    for record in &read.records {
        if let Ok(row) = &record.result {
            people.insert(row.person.employee_id.clone(), row.person.clone());
        }
    }
    let (summary, lines) = intake::simulate(
        store,
        &config.connectors,
        &config.safety,
        Batch {
            source: BatchSource::Feed,
            source_ref: Some(read.source_ref),
            actor: DAEMON.to_string(),
            content_sha256: Some(read.content_sha256),
            records: read.records,
        },
        now,
    )
    .await?;
    let registry = if resolve {
        Some(Registry::build(config, &Clock::system())?)
    } else {
        None
    };
    let mut items = Vec::with_capacity(lines.len());
    for line in lines {
        let mut resolved = None;
        if let (Some(registry), Some(connector), Some(account)) =
            (&registry, &line.connector, &line.account)
            && matches!(
                line.action.as_str(),
                "new" | "held" | "already_pending" | "already_held"
            )
            && let (Some(c), Some(person)) =
                (registry.get(connector), people.get(&line.employee_id))
        {
            let target = Target {
                bound: None,
                removal_id: 0,
                attempt: 0,
                account: account.clone(),
                person: person.clone(),
                stage: line.stage.clone().unwrap_or_default(),
                calls: CallLog::default(),
            };
            resolved = Some(match c.resolve(&target).await {
                Ok(Resolution::Found(remote)) => format!("found {}", remote.id),
                Ok(Resolution::NotFound) => "not found (already absent)".into(),
                Ok(Resolution::Ambiguous(n)) => format!("{n} accounts match, needs a human"),
                Err(e) => format!("lookup failed: {}", e.reason),
            });
        }
        items.push(PlanItem { line, resolved });
    }
    Ok(Plan {
        summary,
        lines: items,
    })
}

/// Prints the plan.
pub fn print(out: &mut impl Write, plan: &Plan, format: Format) -> anyhow::Result<()> {
    if matches!(format, Format::Json | Format::Yaml) {
        return crate::output::document(out, format, plan);
    }
    const COLUMNS: [Column; 8] = [
        main("employee_id"),
        main("connector"),
        main("stage"),
        main("action"),
        main("due_at"),
        main("account"),
        main("note"),
        main("resolved"),
    ];
    if !format.is_table() {
        return list(out, format, &COLUMNS, &plan.lines);
    }
    let s = &plan.summary;
    writeln!(
        out,
        "The feed has {} rows ({} rejected): {} new terminations, {} rescinded, {} moved; guard limit {}{}. Nothing was written.",
        s.rows,
        s.rejected,
        s.new_terminations,
        s.rescinded,
        s.moved,
        s.limit,
        if s.held {
            ": THE BATCH WOULD BE HELD for approval"
        } else {
            ""
        }
    )?;
    list(out, format, &COLUMNS, &plan.lines)
}
