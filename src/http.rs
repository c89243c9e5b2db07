//! The HTTP listener: `/healthz`, `/readyz` and `POST /v1/terminations` (pushed terminations).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::store::Store;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Config;
use crate::feed::intake::{self, Batch, BatchSource, Record};
use crate::feed::push::decode_push;
use crate::feed::rows::RowRules;

/// The largest push body accepted.
pub const MAX_PUSH_BYTES: usize = 1024 * 1024;

/// Liveness signals of the daemon's tasks, for `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    /// Unix milliseconds of the worker loop's last turn.
    pub worker_heartbeat_ms: AtomicI64,
    /// Whether the feed poller is running (true when no feed is configured).
    pub poller_alive: AtomicBool,
}

impl Health {
    /// Records a worker loop turn.
    pub fn beat(&self) {
        self.worker_heartbeat_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    /// The database.
    pub store: Store,
    /// The config.
    pub config: Arc<Config>,
    /// The clock.
    pub clock: Clock,
    /// Wakes the workers after a push is committed.
    pub wake: Arc<Notify>,
    /// Liveness of the other tasks.
    pub health: Arc<Health>,
    /// The metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The router.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/terminations", post(push))
        .with_state(state)
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match state.metrics.render(&state.store, state.clock.now()).await {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "Reading metrics failed.");
            (StatusCode::SERVICE_UNAVAILABLE, "metrics unavailable\n").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when the database takes a write and the workers and poller are running. A vendor outage
/// never makes the daemon unready: restarting it would not help.
async fn readyz(State(state): State<HttpState>) -> Response {
    let mut problems = Vec::new();
    if let Err(e) = check_database_writable(&state.store).await {
        problems.push(format!("database: {e}"));
    }
    let beat = state.health.worker_heartbeat_ms.load(Ordering::Relaxed);
    let allowed =
        i64::try_from((state.config.workers.idle_poll * 3 + Duration::from_secs(10)).as_millis())
            .unwrap_or(i64::MAX);
    if chrono::Utc::now().timestamp_millis() - beat > allowed {
        problems.push("workers: the worker loop has not run recently".into());
    }
    if !state.health.poller_alive.load(Ordering::Relaxed) {
        problems.push("scheduler: the feed poller is not running".into());
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
            .into_response()
    }
}

/// Takes and releases the write lock, so a read-only or locked-up database shows.
pub async fn check_database_writable(store: &Store) -> anyhow::Result<()> {
    store.check_writable().await
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message.into()})),
    )
        .into_response()
}

/// Compares two byte strings in time that depends only on their lengths (`subtle`, so that no
/// compiler optimisation turns the comparison into an early exit).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

/// `POST /v1/terminations`, counted by result.
async fn push(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    let response = take_push(&state, headers, body).await;
    state.metrics.push(response.status().as_u16());
    response
}

async fn take_push(state: &HttpState, headers: HeaderMap, body: Body) -> Response {
    let Some(token) = &state.config.http.push_token else {
        return error(
            StatusCode::NOT_FOUND,
            "push_disabled",
            "pushes are disabled: set http.push_token_file or http.push_token_env",
        );
    };
    // The token is checked before the body is read.
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        );
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if content_type.as_deref() != Some("application/json") {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_PUSH_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than {MAX_PUSH_BYTES} bytes"),
            );
        }
    };
    let now = state.clock.now();
    let statuses = crate::feed::push::push_statuses();
    let rules = RowRules {
        statuses: &statuses,
        timezone: state
            .config
            .feed
            .as_ref()
            .map_or(chrono_tz::UTC, |f| f.timezone),
        now,
    };
    let records = match decode_push(&bytes, &rules) {
        Ok(records) => records,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
    };
    // All or nothing: one rejected record refuses the whole body.
    let rejected: Vec<serde_json::Value> = records
        .iter()
        .filter_map(|r| r.result.as_ref().err().map(|faults| (r.index, faults)))
        .flat_map(|(index, faults)| {
            faults.iter().map(
                move |f| json!({"index": index, "field": f.field, "reason": f.reason.as_str()}),
            )
        })
        .collect();
    if !rejected.is_empty() {
        let bad = records.iter().filter(|r| r.result.is_err()).count() as u64;
        state.metrics.rejected_rows(bad);
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_records",
                "message": "no record was accepted: fix the listed records and send the body again",
                "rejected": rejected,
            })),
        )
            .into_response();
    }
    let batch = Batch {
        source: BatchSource::Push,
        source_ref: Some("POST /v1/terminations".into()),
        actor: "push".into(),
        content_sha256: Some(crate::feed::sha256_hex(&bytes)),
        records: records
            .into_iter()
            .map(|r| Record {
                row: r.row,
                line: None,
                result: r.result,
            })
            .collect(),
    };
    match intake::ingest(
        &state.store,
        &state.config.connectors,
        &state.config.safety,
        batch,
        now,
    )
    .await
    {
        Ok(summary) => {
            state.metrics.batch(&summary);
            state.wake.notify_one();
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "batch_id": summary.batch_id,
                    "accepted": summary.accepted,
                    "new_terminations": summary.new_terminations,
                    "rescinded": summary.rescinded,
                    "held": summary.held,
                })),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "Storing a pushed batch failed; the sender should retry.");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_stored",
                "the batch was not stored; send it again",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares_bytes() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
