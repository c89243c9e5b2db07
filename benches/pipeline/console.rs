//! B8: the web console's pages on a database of 100,000 removals (one batch of leavers, every removal
//! queued, an audit row per termination and per batch): each page asked over HTTP with a session, as a
//! browser would, timed from the request to the last byte.

use std::time::{Duration, Instant};

use anyhow::Context;
use offboard::app::App;
use offboard::clock::Clock;
use offboard::config::Config;
use offboard::feed::intake::{self, Batch, BatchSource};

use crate::setup::{base_config, leavers, scim_connector, write_config, write_secret};

const TOKEN: &str = "bench-console-approver-token-5c1d";

/// Per page: its path, the first request's time, and the times of the requests after it.
pub(crate) type PageTimes = Vec<(String, Duration, Vec<Duration>)>;

/// Queues `n` removals, starts the console, and times `runs` requests of each page.
pub(crate) async fn page_times(
    base: &std::path::Path,
    n: usize,
    runs: usize,
) -> anyhow::Result<PageTimes> {
    let dir = tempfile::tempdir_in(base)?;
    write_secret(
        dir.path(),
        "console-tokens",
        &format!("bench approver {TOKEN}\n"),
    )?;
    let console = "\n[console]\nlisten = \"127.0.0.1:0\"\nauth = \"tokens\"\ntokens_file = \"console-tokens\"\n";
    let text = base_config(
        4,
        "127.0.0.1:0",
        &format!(
            "{console}{}",
            scim_connector("wiki", "http://127.0.0.1:9/scim/v2", 4)
        ),
    );
    let path = write_config(dir.path(), &text)?;
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = Clock::system();
    let app = App::build(config, clock.clone()).await?;
    let now = clock.now();
    // Leavers effective over the last eight weeks (the time-to-revoke page's window holds them all).
    let mut records = leavers("c", n, now);
    for (i, record) in records.iter_mut().enumerate() {
        if let Ok(row) = record.result.as_mut() {
            row.status = offboard::domain::HrStatus::Terminated {
                effective_at: now - chrono::Duration::hours(1 + (i % (56 * 24)) as i64),
            };
        }
    }
    let batch = Batch {
        source: BatchSource::Cli,
        source_ref: Some("benchmark".into()),
        actor: "benchmark".into(),
        content_sha256: None,
        records,
    };
    let summary = intake::ingest(
        &app.store,
        &app.config.connectors,
        &app.config.safety,
        batch,
        now,
    )
    .await
    .context("queueing the removals")?;
    anyhow::ensure!(summary.removals_planned == n as u64, "{summary:?}");
    // A fixture, not the pipeline: nine in ten removals done, from minutes to two days after the
    // effective time, as a working deployment's database holds them (draining 100,000 is B2's job).
    let pool = app
        .store
        .sqlite_pool()
        .context("the benchmark store is SQLite")?;
    sqlx::query(
        "UPDATE removals SET state = 'done', outcome = 'removed', \
           finished_at = (SELECT strftime('%Y-%m-%dT%H:%M:%fZ', julianday(t.effective_at) + (removals.id % 2880) / 1440.0) \
                          FROM terminations t WHERE t.id = removals.termination_id) \
         WHERE id % 10 <> 0",
    )
    .execute(pool)
    .await?;

    let state = offboard::console::ConsoleState::new(
        app.store.clone(),
        app.config.clone(),
        clock.clone(),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    )?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (addr, server) = offboard::console::serve(state, stopped).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let site = format!("http://{addr}");
    let login = http.get(format!("{site}/login")).send().await?;
    let csrf = set_cookie(&login, "offboard_csrf").context("no CSRF cookie")?;
    let logged_in = http
        .post(format!("{site}/login"))
        .header("cookie", format!("offboard_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&token={TOKEN}"))
        .send()
        .await?;
    let session =
        set_cookie(&logged_in, "offboard_session").context("the login gave no session")?;
    let cookies = format!("offboard_csrf={csrf}; offboard_session={session}");

    let middle = n / 2;
    let pages = [
        "/".to_string(),
        format!("/batches/{}", summary.batch_id),
        format!("/removals/{middle}"),
        format!("/people/c{:06}", middle),
        "/audit".to_string(),
        format!("/audit?employee=c{:06}", middle),
        "/revoke".to_string(),
        // Another window than the default: computed when first asked for, then kept a minute.
        format!(
            "/revoke?since={}",
            (now - chrono::Duration::days(60)).format("%Y-%m-%d")
        ),
        "/rejects".to_string(),
    ];
    let mut times = Vec::new();
    for page in pages {
        let mut runs_of_page = Vec::with_capacity(runs);
        let mut first = Duration::ZERO;
        for i in 0..=runs {
            let start = Instant::now();
            let response = http
                .get(format!("{site}{page}"))
                .header("cookie", &cookies)
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            let took = start.elapsed();
            anyhow::ensure!(
                status.as_u16() == 200,
                "{page}: {status}: {}",
                String::from_utf8_lossy(&body)
            );
            if i == 0 {
                first = took;
            } else {
                runs_of_page.push(took);
            }
        }
        times.push((page, first, runs_of_page));
    }
    let _ = stop.send(true);
    let _ = server.await;
    app.store.close().await;
    Ok(times)
}

fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            let first = v.to_str().ok()?.split(';').next()?;
            first.strip_prefix(&format!("{name}=")).map(str::to_string)
        })
}
