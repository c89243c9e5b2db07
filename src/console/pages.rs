//! The console's pages and actions: each handler reads through the store's operations (the same the
//! CLI uses: `status::gather`, `report::build`, the removal listing, the audit rows) and renders one
//! askama template; each action checks the role and the CSRF token, runs the operation the CLI runs
//! with the person's name as the actor, and redirects back with a notice.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::ConsoleState;
use super::auth::{CsrfForm, CsrfToken, Identity, check_form};
use crate::audit::AuditRow;
use crate::config::Role;
use crate::store::batches::{BatchView, Decision};
use crate::store::queue::{RemovalFilter, RemovalView, RetrySelection};

/// Rows a page lists at most (the rest: search narrower, or download).
pub(super) const PAGE_ROWS: u32 = 500;

/// The states in the queue table, in the order a removal goes through them.
const STATES: [&str; 7] = [
    "held",
    "pending",
    "running",
    "done",
    "failed",
    "cancelled",
    "planned",
];

pub(super) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(&anyhow::anyhow!(e)),
    }
}

pub(super) fn server_error(e: &anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "A console page failed.");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "500: the page could not be read from the database; see the daemon's log\n",
    )
        .into_response()
}

/// The refusal of an action that takes `role` (`doing`: "Retrying", ...) to someone with less; `None`
/// when they have it.
fn lacks(
    role: Role,
    doing: &str,
    who: &Identity,
    csrf: &CsrfToken,
    back: &str,
) -> Option<Response> {
    (who.role < role).then(|| {
        problem(
            StatusCode::FORBIDDEN,
            who,
            csrf,
            "Not allowed",
            format!(
                "{doing} takes the {} role; {} is a {}.",
                role.as_str(),
                who.name,
                who.role.as_str()
            ),
            back,
        )
    })
}

/// A problem the person can act on (not found, not allowed), as a page.
pub(super) fn problem(
    status: StatusCode,
    who: &Identity,
    csrf: &CsrfToken,
    title: &str,
    message: String,
    back: &str,
) -> Response {
    let page = ProblemPage {
        title: title.to_string(),
        who: who.clone(),
        csrf: csrf.0.clone(),
        refresh: false,
        notice: None,
        message,
        back: back.to_string(),
    };
    let mut response = render(&page);
    *response.status_mut() = status;
    response
}

#[derive(Template)]
#[template(path = "console/problem.html")]
struct ProblemPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    message: String,
    back: String,
}

/// `?done=...` after an action: a fixed message per word, never text from the URL.
#[derive(Deserialize, Default)]
pub(super) struct Done {
    done: Option<String>,
}

impl Done {
    fn notice(&self) -> Option<String> {
        Some(
            match self.done.as_deref()? {
                "approved" => "Approved: its removals are queued.",
                "rejected" => {
                    "Rejected: its removals are cancelled and its terminations set aside."
                }
                "retried" => "Queued again, due now.",
                "cancelled" => "Cancelled.",
                _ => return None,
            }
            .to_string(),
        )
    }
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    status: crate::status::Status,
    states: [&'static str; 7],
    queue: Vec<(String, Vec<i64>)>,
}

/// `GET /`: what needs someone first (held batches, failures), then the queue, the feed, connectors.
pub(super) async fn overview(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Query(done): Query<Done>,
) -> Response {
    let status = match crate::status::gather(&state.store, state.clock.now()).await {
        Ok(status) => status,
        Err(e) => return server_error(&e),
    };
    let queue = status
        .counts
        .iter()
        .map(|(connector, counts)| {
            let row = STATES
                .iter()
                .map(|s| counts.get(*s).copied().unwrap_or(0))
                .collect();
            (connector.clone(), row)
        })
        .collect();
    render(&OverviewPage {
        title: "Overview".into(),
        who,
        csrf: csrf.0,
        refresh: true,
        notice: done.notice(),
        status,
        states: STATES,
        queue,
    })
}

#[derive(Template)]
#[template(path = "console/batch.html")]
struct BatchPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    batch: BatchView,
    guard_reason: Option<String>,
    may_decide: bool,
    why_not: String,
    removals: Vec<RemovalView>,
    truncated: bool,
}

/// Whether `who` may approve or reject `batch`, and why not.
fn may_decide(state: &ConsoleState, who: &Identity, batch: &BatchView) -> Result<(), String> {
    if who.role < Role::Approver {
        return Err(format!(
            "Approving or rejecting a held batch takes the approver role; {} is a {}.",
            who.name,
            who.role.as_str()
        ));
    }
    let triggered_by_a_person = matches!(batch.source.as_str(), "cli" | "import");
    if state.console.four_eyes
        && triggered_by_a_person
        && batch.actor.eq_ignore_ascii_case(&who.name)
    {
        return Err(format!(
            "{} sent this batch; another approver must decide on it (four-eyes rule, console.four_eyes).",
            who.name
        ));
    }
    Ok(())
}

/// `GET /batches/{id}`: who sent it, why it is held, what it removes, and the decision buttons.
pub(super) async fn batch(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let batch = match state.store.batch_view(id).await {
        Ok(Some(batch)) => batch,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                &who,
                &csrf,
                "No such batch",
                format!("There is no batch {id}."),
                "/",
            );
        }
        Err(e) => return server_error(&e),
    };
    let filter = RemovalFilter {
        batch_id: Some(id),
        limit: Some(PAGE_ROWS + 1),
        ..Default::default()
    };
    let mut removals = match state.store.removals(&filter).await {
        Ok(r) => r,
        Err(e) => return server_error(&e),
    };
    let truncated = removals.len() > PAGE_ROWS as usize;
    removals.truncate(PAGE_ROWS as usize);
    let safety = &state.config.safety;
    let guard_reason = (batch.held == 1).then(|| {
        format!(
            "{} new terminations in one batch; the guard holds a batch with more than {} (safety.max_terminations_per_batch) or more than {} % of the people known (safety.max_terminations_percent).",
            batch.new_terminations, safety.max_terminations_per_batch, safety.max_terminations_percent
        )
    });
    let decision = may_decide(&state, &who, &batch);
    render(&BatchPage {
        title: format!("Batch {id}"),
        who,
        csrf: csrf.0,
        refresh: false,
        notice: done.notice(),
        may_decide: decision.is_ok(),
        why_not: decision.err().unwrap_or_default(),
        batch,
        guard_reason,
        removals,
        truncated,
    })
}

async fn decide(
    state: ConsoleState,
    who: Identity,
    csrf: CsrfToken,
    headers: HeaderMap,
    form: CsrfForm,
    id: i64,
    decision: Decision,
) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    let batch = match state.store.batch_view(id).await {
        Ok(Some(batch)) => batch,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                &who,
                &csrf,
                "No such batch",
                format!("There is no batch {id}."),
                "/",
            );
        }
        Err(e) => return server_error(&e),
    };
    if let Err(why) = may_decide(&state, &who, &batch) {
        return problem(
            StatusCode::FORBIDDEN,
            &who,
            &csrf,
            "Not allowed",
            why,
            &format!("/batches/{id}"),
        );
    }
    let word = if matches!(decision, Decision::Approve) {
        "approved"
    } else {
        "rejected"
    };
    match state
        .store
        .decide_batch(id, decision, &who.name, state.clock.now())
        .await
    {
        Ok(_) => {
            tracing::info!(batch_id = id, by = %who.name, decision = word, "A held batch was decided in the console.");
            state.wake.notify_one();
            Redirect::to(&format!("/batches/{id}?done={word}")).into_response()
        }
        Err(e) => problem(
            StatusCode::CONFLICT,
            &who,
            &csrf,
            "Not done",
            format!("{e:#}"),
            &format!("/batches/{id}"),
        ),
    }
}

/// `POST /batches/{id}/approve`.
pub(super) async fn approve(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    decide(state, who, csrf, headers, form, id, Decision::Approve).await
}

/// `POST /batches/{id}/reject`.
pub(super) async fn reject(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    decide(state, who, csrf, headers, form, id, Decision::Reject).await
}

#[derive(Template)]
#[template(path = "console/removal.html")]
struct RemovalPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    removal: RemovalView,
    may_act: bool,
    retryable: bool,
    cancellable: bool,
    rows: Vec<AuditRow>,
}

async fn one_removal(state: &ConsoleState, id: i64) -> anyhow::Result<Option<RemovalView>> {
    let filter = RemovalFilter {
        id: Some(id),
        ..Default::default()
    };
    Ok(state.store.removals(&filter).await?.into_iter().next())
}

/// `GET /removals/{id}`: the removal and its timeline (claims, vendor calls with status and duration,
/// outcome), with retry and cancel for operators.
pub(super) async fn removal(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Path(id): Path<i64>,
    Query(done): Query<Done>,
) -> Response {
    let removal = match one_removal(&state, id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return problem(
                StatusCode::NOT_FOUND,
                &who,
                &csrf,
                "No such removal",
                format!("There is no removal {id}."),
                "/",
            );
        }
        Err(e) => return server_error(&e),
    };
    let rows = match state.store.audit_rows_of_removal(id).await {
        Ok(rows) => rows,
        Err(e) => return server_error(&e),
    };
    let retryable = matches!(removal.state.as_str(), "failed" | "planned");
    let cancellable = matches!(
        removal.state.as_str(),
        "pending" | "held" | "on_hold" | "failed" | "planned"
    );
    render(&RemovalPage {
        title: format!("Removal {id}"),
        may_act: who.role >= Role::Operator,
        who,
        csrf: csrf.0,
        refresh: false,
        notice: done.notice(),
        removal,
        retryable,
        cancellable,
        rows,
    })
}

/// `POST /removals/{id}/retry`: as `offboard retry ID`.
pub(super) async fn retry(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    if let Some(refusal) = lacks(
        Role::Operator,
        "Retrying",
        &who,
        &csrf,
        &format!("/removals/{id}"),
    ) {
        return refusal;
    }
    let render_account = crate::planner::renderer(&state.config);
    match state
        .store
        .retry(
            &RetrySelection::One(id),
            &render_account,
            &who.name,
            state.clock.now(),
        )
        .await
    {
        Ok((ids, not_retried)) if !ids.is_empty() && not_retried.is_empty() => {
            state.wake.notify_one();
            Redirect::to(&format!("/removals/{id}?done=retried")).into_response()
        }
        Ok((_, not_retried)) => {
            let why = not_retried.first().map_or_else(
                || "only a failed or planned removal can be retried".to_string(),
                |n| n.reason.clone(),
            );
            problem(
                StatusCode::CONFLICT,
                &who,
                &csrf,
                "Not retried",
                why,
                &format!("/removals/{id}"),
            )
        }
        Err(e) => problem(
            StatusCode::CONFLICT,
            &who,
            &csrf,
            "Not retried",
            format!("{e:#}"),
            &format!("/removals/{id}"),
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct CancelForm {
    csrf: String,
    reason: String,
}

/// `POST /removals/{id}/cancel`: as `offboard cancel ID --reason`.
pub(super) async fn cancel(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<CancelForm>,
) -> Response {
    if let Err(refusal) = check_form(&headers, &form.csrf) {
        return refusal.into_response();
    }
    if let Some(refusal) = lacks(
        Role::Operator,
        "Cancelling",
        &who,
        &csrf,
        &format!("/removals/{id}"),
    ) {
        return refusal;
    }
    let reason = form.reason.trim();
    if reason.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            &who,
            &csrf,
            "Not cancelled",
            "Give a reason.".into(),
            &format!("/removals/{id}"),
        );
    }
    match state
        .store
        .cancel(id, reason, &who.name, state.clock.now())
        .await
    {
        Ok(_) => Redirect::to(&format!("/removals/{id}?done=cancelled")).into_response(),
        Err(e) => problem(
            StatusCode::CONFLICT,
            &who,
            &csrf,
            "Not cancelled",
            format!("{e:#}"),
            &format!("/removals/{id}"),
        ),
    }
}

#[derive(Template)]
#[template(path = "console/person.html")]
struct PersonPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    employee: String,
    employee_q: String,
    removals: Vec<RemovalView>,
    rows: Vec<AuditRow>,
}

/// `GET /people/{employee}`: every removal of the person and their whole timeline.
pub(super) async fn person(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
    Path(employee): Path<String>,
) -> Response {
    let filter = RemovalFilter {
        employee_id: Some(employee.clone()),
        ..Default::default()
    };
    let removals = match state.store.removals(&filter).await {
        Ok(r) => r,
        Err(e) => return server_error(&e),
    };
    let rows = match state
        .store
        .audit_rows_matching(Some(&employee), None, None)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return server_error(&e),
    };
    render(&PersonPage {
        title: format!("Employee {employee}"),
        employee_q: percent_encoding::utf8_percent_encode(
            &employee,
            percent_encoding::NON_ALPHANUMERIC,
        )
        .to_string(),
        employee,
        who,
        csrf: csrf.0,
        refresh: false,
        notice: None,
        removals,
        rows,
    })
}

#[derive(Template)]
#[template(path = "console/rejects.html")]
struct RejectsPage {
    title: String,
    who: Identity,
    csrf: String,
    refresh: bool,
    notice: Option<String>,
    rows: Vec<crate::store::reads::RejectedRow>,
}

/// `GET /rejects`: rejected feed rows with row, field and reason, as `offboard rejects`.
pub(super) async fn rejects(
    State(state): State<ConsoleState>,
    who: Identity,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let mut rows = match state.store.rejected_rows(None).await {
        Ok(rows) => rows,
        Err(e) => return server_error(&e),
    };
    rows.truncate(PAGE_ROWS as usize * 4);
    render(&RejectsPage {
        title: "Rejected feed rows".into(),
        who,
        csrf: csrf.0,
        refresh: false,
        notice: None,
        rows,
    })
}
