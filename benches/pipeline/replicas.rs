//! B7: several replicas on PostgreSQL. The drains of B1 (instant vendor) and B3 (50 ms vendor) with one and
//! three replicas (`offboard run` processes on this machine) sharing one durable PostgreSQL server started by
//! `scripts/postgres`; push → first vendor call with the push sent to any replica; and a PostgreSQL job queue,
//! graphile_worker (`benches/peer`), draining no-op jobs on the same server, with one and three processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use offboard::config::Config;
use offboard::feed::intake::{self, Batch, BatchSource};
use serde_json::json;

use crate::process::{Daemon, free_port};
use crate::setup::{PUSH_TOKEN, base_config, leavers, person, scim_connector, write_config};
use crate::vendor::Vendor;

/// How long a drain or one push may take before the run counts as broken.
const LIMIT: Duration = Duration::from_secs(300);

/// A durable PostgreSQL server of the harness's own (fsync on, as in production), stopped when dropped.
pub(crate) struct Server {
    dir: tempfile::TempDir,
    /// The server's URL (its `postgres` database).
    pub(crate) url: String,
    next: std::cell::Cell<u32>,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres")
}

impl Server {
    /// Starts the server (installing PostgreSQL from Debian's packages when missing).
    pub(crate) fn start() -> anyhow::Result<Server> {
        // Under /tmp: the server runs as an unprivileged user, who must reach the directory.
        let dir = tempfile::Builder::new()
            .prefix("offboard-b7-pg")
            .tempdir_in("/tmp")?;
        let out = Command::new(script())
            .args(["start"])
            .arg(dir.path().join("pg"))
            .arg("--durable")
            .output()
            .context("cannot run scripts/postgres")?;
        anyhow::ensure!(
            out.status.success(),
            "scripts/postgres start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Server {
            dir,
            url: String::from_utf8_lossy(&out.stdout).trim().to_string(),
            next: std::cell::Cell::new(0),
        })
    }

    /// A new, empty database on the server; its URL.
    pub(crate) async fn database(&self) -> anyhow::Result<String> {
        use sqlx::Connection;
        let n = self.next.get();
        self.next.set(n + 1);
        let name = format!("b7_{n}");
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let base = self
            .url
            .rsplit_once('/')
            .map_or(self.url.as_str(), |(b, _)| b);
        Ok(format!("{base}/{name}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(script())
            .arg("stop")
            .arg(self.dir.path().join("pg"))
            .status();
    }
}

/// `replicas` daemons on database `db`, each with its own listener, workers and connector concurrency
/// `concurrency`, ready.
async fn start_replicas(
    bin: &Path,
    dir: &Path,
    db: &str,
    vendor: &Vendor,
    replicas: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<Daemon>, PathBuf)> {
    let mut daemons = Vec::with_capacity(replicas);
    let mut first = None;
    for i in 0..replicas {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
        let text = base_config(
            concurrency,
            &addr.to_string(),
            &scim_connector("wiki", &vendor.base_url, concurrency),
        )
        .replace("sqlite://offboard.db", db);
        let replica_dir = dir.join(format!("replica-{i}"));
        std::fs::create_dir_all(&replica_dir)?;
        let config = write_config(&replica_dir, &text)?;
        first.get_or_insert(config.clone());
        let mut daemon = Daemon::start(bin, &config, addr, &replica_dir.join("daemon.log"))?;
        daemon.wait_ready(Duration::from_secs(60)).await?;
        daemons.push(daemon);
    }
    Ok((daemons, first.context("no replica")?))
}

/// Queues `n` removals due an hour ago on a new database (through intake, as a CLI batch: the commit wakes
/// every replica), then returns the time from the commit until all `n` are recorded done.
pub(crate) async fn drain(
    bin: &Path,
    base: &Path,
    server: &Server,
    vendor: &Vendor,
    n: usize,
    replicas: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir_in(base)?;
    let db = server.database().await?;
    let (daemons, config) =
        start_replicas(bin, dir.path(), &db, vendor, replicas, concurrency).await?;
    let config = Config::load(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = offboard::store::Store::open_configured(&config.database).await?;
    let now = chrono::Utc::now();
    let batch = Batch {
        source: BatchSource::Cli,
        source_ref: Some("benchmark".into()),
        actor: "benchmark".into(),
        content_sha256: None,
        records: leavers("r", n, now - chrono::Duration::hours(1)),
    };
    let before = vendor.patches();
    intake::ingest(&store, &config.connectors, &config.safety, batch, now)
        .await
        .context("queueing the removals")?;
    let start = Instant::now();
    vendor.wait_patches(before + n as u64, LIMIT).await?;
    // Done when every removal is recorded done, not when the vendor saw the last call.
    loop {
        let done: i64 = on_pg(&store, "SELECT COUNT(*) FROM removals WHERE state = 'done'").await?;
        if done == n as i64 {
            break;
        }
        anyhow::ensure!(start.elapsed() < LIMIT, "{done} of {n} removals done");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed();
    anyhow::ensure!(
        vendor.patches() - before == n as u64,
        "{} deactivations for {n} removals",
        vendor.patches() - before
    );
    vendor.check_clean()?;
    store.close().await;
    for daemon in daemons {
        daemon.stop()?;
    }
    Ok(elapsed)
}

async fn on_pg(store: &offboard::store::Store, sql: &'static str) -> anyhow::Result<i64> {
    let pool = store
        .postgres_pool()
        .context("the store is not on PostgreSQL")?;
    Ok(sqlx::query_scalar(sql).fetch_one(pool).await?)
}

/// Three replicas on one database; `n` terminations pushed one at a time, each to a replica chosen at
/// random, each effective now: the time from sending the POST to the vendor receiving the lookup, whichever
/// replica makes it.
pub(crate) async fn push_latencies(
    bin: &Path,
    base: &Path,
    server: &Server,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let vendor = Vendor::start(Duration::ZERO, true)?;
    let dir = tempfile::tempdir_in(base)?;
    let db = server.database().await?;
    let (daemons, _) = start_replicas(bin, dir.path(), &db, &vendor, 3, 4).await?;
    let client = reqwest::Client::new();
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let daemon = &daemons[rand::random_range(0..daemons.len())];
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
            .post(format!("http://{}/v1/terminations", daemon.addr))
            .bearer_auth(PUSH_TOKEN)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("pushing a termination")?;
        anyhow::ensure!(
            response.status().as_u16() == 202,
            "the push was answered {}",
            response.status()
        );
        let seen = vendor
            .wait_first_seen(&email, Duration::from_secs(30))
            .await?;
        latencies.push(seen.saturating_duration_since(sent));
        vendor
            .wait_patches(i as u64 + 1, Duration::from_secs(30))
            .await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    vendor.check_clean()?;
    for daemon in daemons {
        daemon.stop()?;
    }
    Ok(latencies)
}

/// The peer: builds `benches/peer` (graphile_worker) once, adds `n` no-op jobs to a new database, then
/// drains them with `processes` processes of `concurrency` each, started together; the wall time of the
/// slowest.
pub(crate) fn peer_drain(
    server: &Server,
    db: &str,
    n: usize,
    processes: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let _ = server;
    let peer = peer_binary()?;
    let added = Command::new(&peer)
        .args([db, &n.to_string(), &concurrency.to_string()])
        .output()?;
    anyhow::ensure!(
        added.status.success(),
        "adding the peer's jobs: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let start = Instant::now();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&peer)
                .args([db, "0", &concurrency.to_string()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for child in children {
        let out = child.wait_with_output()?;
        anyhow::ensure!(
            out.status.success(),
            "the peer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(start.elapsed())
}

/// The peer's binary, built in release mode on first use (its own target directory).
fn peer_binary() -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer/Cargo.toml");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .status()
        .context("cannot build benches/peer")?;
    anyhow::ensure!(status.success(), "building benches/peer failed");
    Ok(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/peer/target/release/offboard-bench-peer"))
}
