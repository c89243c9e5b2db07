//! A fake SCIM 2.0 vendor on 127.0.0.1: just enough of `/Users` for the real `scim` connector.
//!
//! `GET /scim/v2/Users?filter=userName eq "<account>"` answers a ListResponse with exactly that user (active),
//! `PATCH /scim/v2/Users/{id}` answers 204. Every request must carry the bearer token; anything else is counted
//! as a protocol error so the harness can fail on it. The vendor runs on its own thread and runtime, so its work
//! is not scheduled on the daemon's runtime (it still shares the machine's cores, as a local vendor would).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde_json::json;

/// The bearer token the fake vendor accepts.
pub(crate) const TOKEN: &str = "bench-scim-token-0123456789";

/// The path of the SCIM base URL.
const BASE_PATH: &str = "/scim/v2";

struct Shared {
    latency: Duration,
    track: bool,
    gets: AtomicU64,
    patches: AtomicU64,
    errors: AtomicU64,
    /// When each account was first looked up (only with `track`).
    first_seen: Mutex<HashMap<String, Instant>>,
}

/// A running fake vendor; stops when dropped.
pub(crate) struct Vendor {
    /// The SCIM base URL to configure the connector with.
    pub(crate) base_url: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Vendor {
    /// Starts a vendor that waits `latency` before each answer; with `track` it remembers when each account
    /// was first looked up.
    pub(crate) fn start(latency: Duration, track: bool) -> anyhow::Result<Vendor> {
        let shared = Arc::new(Shared {
            latency,
            track,
            gets: AtomicU64::new(0),
            patches: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_seen: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route(&format!("{BASE_PATH}/Users"), get(list_users))
            .route(&format!("{BASE_PATH}/Users/{{id}}"), patch(patch_user))
            .with_state(shared.clone());
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").context("fake vendor: cannot bind")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("fake vendor: runtime")?;
        let thread = std::thread::Builder::new()
            .name("fake-vendor".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        eprintln!("fake vendor: cannot use the listener");
                        return;
                    };
                    let served = axum::serve(listener, router)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(e) = served {
                        eprintln!("fake vendor: {e}");
                    }
                });
            })
            .context("fake vendor: thread")?;
        Ok(Vendor {
            base_url: format!("http://{addr}{BASE_PATH}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Lookups answered.
    pub(crate) fn gets(&self) -> u64 {
        self.shared.gets.load(Ordering::Relaxed)
    }

    /// Deactivations answered.
    pub(crate) fn patches(&self) -> u64 {
        self.shared.patches.load(Ordering::Relaxed)
    }

    /// Requests refused (bad token, bad filter, bad body).
    pub(crate) fn errors(&self) -> u64 {
        self.shared.errors.load(Ordering::Relaxed)
    }

    /// When `account` was first looked up, if it was.
    pub(crate) fn first_seen(&self, account: &str) -> Option<Instant> {
        self.shared
            .first_seen
            .lock()
            .ok()
            .and_then(|m| m.get(account).copied())
    }

    /// Waits (polling every millisecond; the time itself is taken by the vendor on arrival) until `account`
    /// was looked up, and returns when that happened.
    pub(crate) async fn wait_first_seen(
        &self,
        account: &str,
        limit: Duration,
    ) -> anyhow::Result<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = self.first_seen(account) {
                return Ok(at);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the vendor was not called for {account} within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Waits until at least `n` deactivations were answered.
    pub(crate) async fn wait_patches(&self, n: u64, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        while self.patches() < n {
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} of {n} deactivations arrived within {limit:?}",
                self.patches()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    /// Fails if the connector sent anything the vendor refused.
    pub(crate) fn check_clean(&self) -> anyhow::Result<()> {
        let errors = self.errors();
        anyhow::ensure!(
            errors == 0,
            "the fake vendor refused {errors} request(s) (token, filter or body)"
        );
        Ok(())
    }
}

impl Drop for Vendor {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(TOKEN)
}

fn refuse(shared: &Shared, status: StatusCode, detail: &str) -> Response {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": status.as_u16().to_string(),
            "detail": detail,
        })
        .to_string(),
    )
        .into_response()
}

/// The value of a `userName eq "<value>"` filter, with JSON string escapes undone.
fn filter_value(filter: &str) -> Option<String> {
    let quoted = filter.trim().strip_prefix("userName eq ")?;
    serde_json::from_str::<String>(quoted).ok()
}

/// A path-safe, stable user id for an account.
fn user_id(account: &str) -> String {
    account.bytes().map(|b| format!("{b:02x}")).collect()
}

async fn list_users(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let arrived = Instant::now();
    if !authorized(&headers) {
        return refuse(&shared, StatusCode::UNAUTHORIZED, "bad token");
    }
    let Some(account) = query.get("filter").and_then(|f| filter_value(f)) else {
        return refuse(&shared, StatusCode::BAD_REQUEST, "unsupported filter");
    };
    if shared.track
        && let Ok(mut seen) = shared.first_seen.lock()
    {
        seen.entry(account.clone()).or_insert(arrived);
    }
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    shared.gets.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/scim+json")],
        json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": 1,
            "startIndex": 1,
            "itemsPerPage": 1,
            "Resources": [{
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": user_id(&account),
                "userName": account,
                "active": true,
            }],
        })
        .to_string(),
    )
        .into_response()
}

async fn patch_user(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    if !authorized(&headers) {
        return refuse(&shared, StatusCode::UNAUTHORIZED, "bad token");
    }
    let deactivates = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .is_some_and(|b| {
            b["Operations"][0]["op"] == "replace"
                && b["Operations"][0]["path"] == "active"
                && b["Operations"][0]["value"] == false
        });
    if !deactivates || id.is_empty() {
        return refuse(&shared, StatusCode::BAD_REQUEST, "not a deactivation");
    }
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    shared.patches.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}
