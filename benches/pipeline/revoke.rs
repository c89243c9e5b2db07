//! B4: time to revoke on an idle daemon (the real binary): a pushed termination to the vendor's first call, and
//! a feed row to the vendor's first call with a poll every second.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::process::{Daemon, free_port};
use crate::setup::{CSV_HEADER, PUSH_TOKEN, base_config, person, scim_connector, write_config};
use crate::vendor::Vendor;

/// How long one termination may take to reach the vendor before the run counts as broken.
const LIMIT: Duration = Duration::from_secs(30);

/// Starts `offboard run` with one scim connector (default `workers.idle_poll`, 30 s, so only wake-ups can make
/// it fast), then pushes `n` terminations one at a time, each effective now, and returns for each the time from
/// sending the POST to the vendor receiving the lookup. Between pushes the daemon finishes the removal and is
/// left idle for a moment.
pub(crate) async fn push_latencies(
    bin: &Path,
    base: &Path,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let vendor = Vendor::start(Duration::ZERO, true)?;
    let dir = tempfile::tempdir_in(base)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let text = base_config(
        4,
        &addr.to_string(),
        &scim_connector("wiki", &vendor.base_url, 4),
    );
    let config = write_config(dir.path(), &text)?;
    let mut daemon = Daemon::start(bin, &config, addr, &dir.path().join("daemon.log"))?;
    daemon.wait_ready(LIMIT).await?;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/terminations");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let p = person("push", i);
        let email = p.email.clone().unwrap_or_default();
        let body = json!({
            "employee_id": p.employee_id,
            "email": email,
            "effective_date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "status": "terminated",
        });
        let sent = Instant::now();
        let response = client
            .post(&url)
            .bearer_auth(PUSH_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("pushing a termination")?;
        anyhow::ensure!(
            response.status().as_u16() == 202,
            "the push was answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let seen = vendor.wait_first_seen(&email, LIMIT).await?;
        latencies.push(seen.saturating_duration_since(sent));
        // Let the removal finish and the worker loop go back to sleep before the next push.
        vendor.wait_patches(i as u64 + 1, LIMIT).await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vendor.check_clean()?;
    daemon.stop()?;
    Ok(latencies)
}

/// Starts `offboard run` with a CSV feed polled every second (`"* * * * * *"`), then `n` times appends a
/// leaver (effective today) to the feed file (written aside and renamed into place, as an export job should) and
/// returns for each the time from the rename to the vendor receiving the lookup. Each change is made at a
/// random moment of the poll cycle.
pub(crate) async fn poll_latencies(
    bin: &Path,
    base: &Path,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let vendor = Vendor::start(Duration::ZERO, true)?;
    let dir = tempfile::tempdir_in(base)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let feed = r#"
[feed]
kind = "csv"
path = "feed.csv"
schedule = "* * * * * *"
"#;
    let text = base_config(
        4,
        &addr.to_string(),
        &format!("{feed}{}", scim_connector("wiki", &vendor.base_url, 4)),
    );
    let config = write_config(dir.path(), &text)?;
    let feed_path = dir.path().join("feed.csv");
    std::fs::write(&feed_path, CSV_HEADER)?;
    let mut daemon = Daemon::start(bin, &config, addr, &dir.path().join("daemon.log"))?;
    daemon.wait_ready(LIMIT).await?;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let mut rows = String::from(CSV_HEADER);
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        // A random phase of the one-second cycle.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..1000))).await;
        let p = person("poll", i);
        let email = p.email.clone().unwrap_or_default();
        rows.push_str(&format!(
            "{},{email},{},,{},{today},terminated\n",
            p.employee_id,
            p.username.unwrap_or_default(),
            p.display_name.unwrap_or_default()
        ));
        let aside = dir.path().join("feed.csv.new");
        std::fs::write(&aside, &rows)?;
        let changed = Instant::now();
        std::fs::rename(&aside, &feed_path)?;
        let seen = vendor.wait_first_seen(&email, LIMIT).await?;
        latencies.push(seen.saturating_duration_since(changed));
        vendor.wait_patches(i as u64 + 1, LIMIT).await?;
    }
    vendor.check_clean()?;
    daemon.stop()?;
    Ok(latencies)
}
