//! The web console (`[console]`): server-rendered pages for operators and auditors on an address of its
//! own, readable without JavaScript. Who is asking comes from a trusted reverse proxy's header or a login
//! token (`auth.rs`); the operators' pages and actions are in `pages.rs`, the auditors' (audit search,
//! downloads, chain verification, time to revoke) in `evidence.rs`, the time-to-revoke chart in `chart.rs`.
//! Templates are askama's (`templates/console/`): compiled into the binary, escaped by default.
//!
//! Every response carries a strict Content-Security-Policy (no script, no inline style, no frame), and
//! every action is a POST with a CSRF token, audited with the person's name as the actor.

mod auth;
mod chart;
mod evidence;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::{Config, ConsoleConfig};
use crate::store::Store;

pub use auth::Identity;

/// What every console handler shares.
#[derive(Clone)]
pub struct ConsoleState {
    pub(crate) store: Store,
    pub(crate) config: Arc<Config>,
    pub(crate) console: Arc<ConsoleConfig>,
    pub(crate) clock: Clock,
    /// Wakes the workers after an approve or a retry.
    pub(crate) wake: Arc<Notify>,
    pub(crate) sessions: Arc<auth::Sessions>,
    /// The time-to-revoke figures, kept a minute (the default window's read again in the background).
    pub(crate) revoke_cache: Arc<evidence::RevokeCache>,
}

/// The console's routes.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/batches/{id}", get(pages::batch))
        .route("/batches/{id}/approve", post(pages::approve))
        .route("/batches/{id}/reject", post(pages::reject))
        .route("/removals/{id}", get(pages::removal))
        .route("/removals/{id}/retry", post(pages::retry))
        .route("/removals/{id}/cancel", post(pages::cancel))
        .route("/people/{employee}", get(pages::person))
        .route("/audit", get(evidence::audit))
        .route("/audit/verify", post(evidence::verify))
        .route("/revoke", get(evidence::revoke))
        .route("/rejects", get(pages::rejects))
        .route("/static/style.css", get(style))
        .layer(axum::middleware::from_fn(auth::csrf_cookie))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

impl ConsoleState {
    /// The state of a console for `config` (which has `[console]`).
    pub fn new(
        store: Store,
        config: Arc<Config>,
        clock: Clock,
        wake: Arc<Notify>,
    ) -> anyhow::Result<ConsoleState> {
        let console = Arc::new(
            config
                .console
                .clone()
                .context("the config has no [console] table")?,
        );
        let sessions = Arc::new(auth::Sessions::new(&console));
        Ok(ConsoleState {
            store,
            config,
            console,
            clock,
            wake,
            sessions,
            revoke_cache: Arc::default(),
        })
    }
}

/// Serves the console on `console.listen` until `stop`; returns the bound address once it listens.
pub async fn serve(
    state: ConsoleState,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listen = state.console.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on console.listen {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, "The console listens.");
    tokio::spawn(evidence::keep_fresh(state.clone(), stop.clone()));
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "The console's listener failed.");
        }
    });
    Ok((addr, task))
}

/// The style sheet, the one resource pages load.
async fn style() -> impl axum::response::IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("../../static/console/style.css"),
    )
}

/// Headers on every response: no script, no inline style, no framing, no sniffing, no caching of
/// pages that show personal data, no referrer to other sites.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
