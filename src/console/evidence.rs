//! The auditor's pages of the console: the audit search with its CSV and JSON downloads and the chain's
//! verification, and the time to revoke (`offboard report`'s figures, kept a minute) with its chart.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ConsoleState;
use super::auth::{CsrfForm, CsrfToken, Identity, check_form};
use super::pages::{PAGE_ROWS, problem, render, server_error};
use crate::audit::{AuditRow, Verification};

/// The audit search's fields.
#[derive(Deserialize, Default, Clone)]
pub(super) struct AuditQuery {
    employee: Option<String>,
    connector: Option<String>,
    event: Option<String>,
    since: Option<String>,
    until: Option<String>,
    format: Option<String>,
}

impl AuditQuery {
    fn field(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    fn search(&self) -> Result<crate::store::audit_log::AuditSearch, String> {
        let time = |name: &str,
                    v: &Option<String>|
         -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
            Self::field(v)
                .map(|t| {
                    crate::cli::parse_time_arg(t).ok_or(format!(
                        "{name}: {t:?} is not YYYY-MM-DD or an RFC 3339 time"
                    ))
                })
                .transpose()
        };
        Ok(crate::store::audit_log::AuditSearch {
            employee_id: Self::field(&self.employee).map(str::to_string),
            connector: Self::field(&self.connector).map(str::to_string),
            event: Self::field(&self.event).map(str::to_string),
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
        })
    }

    /// The search as a query string, for the download links.
    fn query_string(&self) -> String {
        let mut pairs = Vec::new();
        for (k, v) in [
            ("employee", &self.employee),
            ("connector", &self.connector),
            ("event", &self.event),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = Self::field(v) {
                pairs.push(format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                ));
            }
        }
        pairs.join("&")
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    q: AuditQuery,
    query: String,
    total: i64,
    truncated: bool,
    rows: Vec<AuditRow>,
}

async fn audit_page(
    state: &ConsoleState,
    who: Identity,
    csrf: CsrfToken,
    q: AuditQuery,
    notice: Option<String>,
) -> Response {
    let search = match q.search() {
        Ok(search) => search,
        Err(why) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &who,
                &csrf,
                "Bad search",
                why,
                "/audit",
            );
        }
    };
    let (total, rows) = match state.store.audit_search(&search, Some(PAGE_ROWS)).await {
        Ok(found) => found,
        Err(e) => return server_error(&e),
    };
    render(&AuditPage {
        title: "Audit log".into(),
        who,
        csrf: csrf.0,
        refresh: false,
        notice,
        query: q.query_string(),
        truncated: total > rows.len() as i64,
        total,
        rows,
        q,
    })
}

/// `GET /audit`: the search, or with `format=csv|json` the whole result as a download.
pub(super) async fn audit(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let Some(format) = q.format.as_deref() else {
        return audit_page(&state, who, csrf, q, None).await;
    };
    let search = match q.search() {
        Ok(search) => search,
        Err(why) => {
            return problem(
                StatusCode::BAD_REQUEST,
                &who,
                &csrf,
                "Bad search",
                why,
                "/audit",
            );
        }
    };
    let rows = match state.store.audit_search(&search, None).await {
        Ok((_, rows)) => rows,
        Err(e) => return server_error(&e),
    };
    let (format, content_type, extension) = match format {
        "csv" => (crate::output::Format::Csv, "text/csv; charset=utf-8", "csv"),
        "json" => (crate::output::Format::Json, "application/json", "json"),
        other => {
            return problem(
                StatusCode::BAD_REQUEST,
                &who,
                &csrf,
                "Bad download",
                format!("{other:?} is not csv or json"),
                "/audit",
            );
        }
    };
    let mut body = Vec::new();
    if let Err(e) = crate::audit::print_rows(&mut body, &rows, format) {
        return server_error(&e);
    }
    tracing::info!(by = %who.name, rows = rows.len(), format = extension, "Audit rows downloaded from the console.");
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"offboard-audit.{extension}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `POST /audit/verify`: checks the whole chain now, as `offboard audit verify`.
pub(super) async fn verify(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    let notice = match crate::audit::verify(&state.store).await {
        Ok(Verification::Ok { rows, head }) => {
            format!("The chain verifies: {rows} rows, head {head}.")
        }
        Ok(Verification::Broken { seq, reason }) => {
            format!("The chain is BROKEN at row {seq}: {reason}")
        }
        Err(e) => return server_error(&e),
    };
    audit_page(&state, who, csrf, AuditQuery::default(), Some(notice)).await
}

#[derive(Template)]
#[template(path = "console/revoke.html")]
struct RevokePage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    since: String,
    f: RevokeFigures,
}

/// What the time-to-revoke page shows.
#[derive(Clone)]
pub(crate) struct RevokeFigures {
    as_of: String,
    sla: String,
    median: String,
    worst: String,
    counts: crate::store::revoke::RevokeCounts,
    breach_count: i64,
    charts: Vec<super::chart::Chart>,
    breaches: Vec<crate::store::revoke::RevokeBreach>,
}

#[derive(Deserialize, Default)]
pub(super) struct RevokeQuery {
    since: Option<String>,
}

/// `GET /revoke`: time to revoke per connector over time (median, p95, worst, the SLA), and the
/// breaches: `offboard report`'s figures.
pub(super) async fn revoke(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<RevokeQuery>,
) -> Response {
    let now = state.clock.now();
    let since = match q.since.as_deref().filter(|s| !s.trim().is_empty()) {
        Some(t) => match crate::cli::parse_time_arg(t.trim()) {
            Some(t) => t,
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    &who,
                    &csrf,
                    "Bad date",
                    format!("since: {t:?} is not YYYY-MM-DD"),
                    "/revoke",
                );
            }
        },
        None => default_since(now),
    };
    let figures = match state.revoke_cache.get(&state, since, now).await {
        Ok(figures) => figures,
        Err(e) => return server_error(&e),
    };
    render(&RevokePage {
        title: "Time to revoke".into(),
        who,
        csrf: csrf.0,
        refresh: false,
        notice: None,
        since: since.format("%Y-%m-%d").to_string(),
        f: figures,
    })
}

/// The page's figures: `report`'s, computed by the database.
async fn revoke_figures(
    state: &ConsoleState,
    since: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<RevokeFigures> {
    let sla = state.config.report.sla;
    let weeks = state.store.revoke_weeks(since).await?;
    let counts = state.store.revoke_counts(since).await?;
    let mut by_connector: BTreeMap<&str, Vec<&crate::store::revoke::RevokeWeek>> = BTreeMap::new();
    for week in &weeks {
        by_connector
            .entry(week.connector.as_str())
            .or_default()
            .push(week);
    }
    let charts = by_connector
        .into_iter()
        .map(|(connector, weeks)| super::chart::Chart::weekly(connector, &weeks, sla.as_secs()))
        .collect();
    // Breaches, connector by connector: each has its own grace before the SLA counts.
    let mut breach_count = 0;
    let mut breaches = Vec::new();
    let connectors: std::collections::BTreeSet<String> = state
        .store
        .removal_counts()
        .await?
        .into_keys()
        .map(|(connector, _)| connector)
        .collect();
    for connector in connectors {
        let grace = state
            .config
            .connector(&connector)
            .map_or(std::time::Duration::ZERO, |c| c.grace);
        let limit = chrono::Duration::from_std(grace + sla)?;
        let room = PAGE_ROWS.saturating_sub(u32::try_from(breaches.len()).unwrap_or(PAGE_ROWS));
        let (count, rows) = state
            .store
            .revoke_breaches(since, &connector, limit, now, room)
            .await?;
        breach_count += count;
        breaches.extend(rows);
    }
    let human = |s: Option<i64>| s.map_or("n/a".to_string(), crate::report::human);
    let median = match (counts.median_low_s, counts.median_high_s) {
        (Some(lo), Some(hi)) => Some((lo + hi).div_euclid(2)),
        _ => None,
    };
    Ok(RevokeFigures {
        as_of: crate::store::ts(now),
        sla: crate::report::human(i64::try_from(sla.as_secs()).unwrap_or(i64::MAX)),
        median: human(median),
        worst: human(counts.worst_s),
        counts,
        breach_count,
        charts,
        breaches,
    })
}

/// The time-to-revoke figures, kept a minute: computed by the database, they still read every done
/// removal in the window (about half a second for 90,000 of them, BENCHMARKS.md B8), and the page is
/// looked at often. A burst of requests computes them once; the page says when they were read. The
/// default window's figures are read again in the background before they age out ([`keep_fresh`]),
/// so that page never waits for them; another window is computed when first asked for.
#[derive(Default)]
pub(crate) struct RevokeCache {
    kept: tokio::sync::Mutex<Vec<(String, std::time::Instant, RevokeFigures)>>,
}

/// How long the time-to-revoke figures are kept.
const REVOKE_KEPT: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the default window's figures are read again in the background: before they age out.
const REVOKE_REFRESH: std::time::Duration = std::time::Duration::from_secs(45);

/// How many windows' figures are kept at once.
const REVOKE_WINDOWS: usize = 8;

/// The page's window when none is asked for: the last 90 days, as `offboard report`'s.
fn default_since(now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    now - chrono::Duration::days(90)
}

impl RevokeCache {
    async fn get(
        &self,
        state: &ConsoleState,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<RevokeFigures> {
        let key = since.format("%Y-%m-%d").to_string();
        let mut kept = self.kept.lock().await;
        kept.retain(|(_, at, _)| at.elapsed() < REVOKE_KEPT);
        if let Some((_, _, figures)) = kept.iter().find(|(k, _, _)| *k == key) {
            return Ok(figures.clone());
        }
        let figures = revoke_figures(state, since, now).await?;
        Self::keep(&mut kept, key, figures.clone());
        Ok(figures)
    }

    fn keep(
        kept: &mut Vec<(String, std::time::Instant, RevokeFigures)>,
        key: String,
        figures: RevokeFigures,
    ) {
        kept.retain(|(k, _, _)| *k != key);
        if kept.len() >= REVOKE_WINDOWS {
            kept.remove(0);
        }
        kept.push((key, std::time::Instant::now(), figures));
    }

    /// Reads the default window's figures again (without holding the others up while it does).
    async fn refresh(&self, state: &ConsoleState) -> anyhow::Result<()> {
        let now = state.clock.now();
        let since = default_since(now);
        let figures = revoke_figures(state, since, now).await?;
        let mut kept = self.kept.lock().await;
        Self::keep(&mut kept, since.format("%Y-%m-%d").to_string(), figures);
        Ok(())
    }
}

/// Reads the default time-to-revoke figures at start and again every 45 s until `stop`, so that the
/// page serves them without waiting (about half a second of the database's time per minute on
/// 100,000 removals; nothing on a small one).
pub(super) async fn keep_fresh(state: ConsoleState, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = state.revoke_cache.refresh(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "Cannot read the time-to-revoke figures.");
        }
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(REVOKE_REFRESH) => {}
        }
    }
}
