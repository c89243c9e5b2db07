//! B1–B3: due removals drained by the real worker pool and `scim` connector, on a real SQLite file with the
//! production pragmas, against the fake vendor over HTTP on 127.0.0.1.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use offboard::app::App;
use offboard::clock::Clock;
use offboard::config::Config;
use offboard::feed::intake::{self, Batch, BatchSource};

use crate::setup::{base_config, leavers, scim_connector, write_config};
use crate::vendor::Vendor;

/// Single-row write transactions per second on a database opened exactly as the daemon opens its own
/// (`Store::connect`: WAL, `synchronous=FULL`), through the same sqlx pool and `BEGIN IMMEDIATE`.
pub(crate) async fn raw_commit_rate(base: &Path, commits: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir_in(base)?;
    let store =
        offboard::store::Store::connect(&dir.path().join("raw.db"), 1, Duration::from_secs(5))
            .await?;
    let pool = store
        .sqlite_pool()
        .context("the benchmark store is SQLite")?;
    sqlx::query("CREATE TABLE commits (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")
        .execute(pool)
        .await?;
    let start = Instant::now();
    for i in 0..commits {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO commits (id, at) VALUES (?, ?)")
            .bind(i64::try_from(i)?)
            .bind(offboard::store::ts(chrono::Utc::now()))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let rate = commits as f64 / start.elapsed().as_secs_f64();
    store.close().await;
    Ok(rate)
}

/// What one drain measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Drained {
    /// Wall time of the drain.
    pub(crate) wall: Duration,
    /// CPU time (user + system) of the whole harness process during the drain, fake vendor included.
    pub(crate) cpu: Duration,
    /// Context switches (voluntary and involuntary) of the process during the drain.
    pub(crate) switches: u64,
}

/// CPU time and context switches of this process so far.
fn usage() -> (Duration, u64) {
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into `u`, which lives for the whole call.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    let switches = u64::try_from(u.ru_nvcsw + u.ru_nivcsw).unwrap_or(0);
    (tv(u.ru_utime) + tv(u.ru_stime), switches)
}

/// Queues `n` due removals for one scim connector (through intake, as a batch of leavers effective an hour
/// ago), then times the worker pool's drain (`Workers::drain`, the code path of `offboard run --once`) until all
/// are done. Checks that every removal ended done and that the vendor saw exactly one lookup and one
/// deactivation per removal.
pub(crate) async fn drain(
    base: &Path,
    vendor: &Vendor,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Drained> {
    drain_with(base, vendor, n, concurrency, false).await
}

/// [`drain`], with `checkpoints` a checkpointer signing the chain head every 1,000 rows or second
/// alongside the drain (`[checkpoints]`, as the daemon runs it); checks that it signed the final head.
pub(crate) async fn drain_with(
    base: &Path,
    vendor: &Vendor,
    n: usize,
    concurrency: usize,
    checkpoints: bool,
) -> anyhow::Result<Drained> {
    let dir = tempfile::tempdir_in(base)?;
    let mut extra = scim_connector("wiki", &vendor.base_url, concurrency);
    if checkpoints {
        offboard::cli::keygen(dir.path(), &mut Vec::new())?;
        extra.push_str(
            "\n[checkpoints]\nsigning_key_file = \"checkpoint.key\"\nfile = \"checkpoints.jsonl\"\nevery_rows = 1000\nevery = \"1s\"\nlog = false\n",
        );
    }
    let text = base_config(concurrency, "127.0.0.1:0", &extra);
    let path = write_config(dir.path(), &text)?;
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let clock = Clock::system();
    let app = App::build(config, clock.clone()).await?;
    let now = clock.now();
    let batch = Batch {
        source: BatchSource::Cli,
        source_ref: Some("benchmark".into()),
        actor: "benchmark".into(),
        content_sha256: None,
        records: leavers("d", n, now - chrono::Duration::hours(1)),
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
    anyhow::ensure!(
        summary.removals_planned == n as u64 && !summary.held,
        "intake planned {} removals (held: {}), expected {n}",
        summary.removals_planned,
        summary.held
    );

    let (gets, patches) = (vendor.gets(), vendor.patches());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let checkpointer = app.checkpointer()?.map(|c| tokio::spawn(c.run(stopped)));
    let (cpu, switches) = usage();
    let start = Instant::now();
    let drained = app.workers().drain().await?;
    let elapsed = start.elapsed();
    let (cpu_after, switches_after) = usage();
    if let Some(task) = checkpointer {
        let _ = stop.send(true);
        task.await?.finish().await;
        let signed = offboard::checkpoint::read_file(&dir.path().join("checkpoints.jsonl"))?;
        let head = app.store.audit_head().await?.map(|(seq, _)| seq);
        anyhow::ensure!(
            signed.last().map(|c| c.seq) == head,
            "the last checkpoint does not sign the final head"
        );
    }

    anyhow::ensure!(
        drained.done == n as u64 && drained.attempts == n as u64,
        "expected {n} removals done in {n} attempts, got {drained:?}"
    );
    anyhow::ensure!(
        vendor.gets() - gets == n as u64 && vendor.patches() - patches == n as u64,
        "expected {n} lookups and {n} deactivations at the vendor, got {} and {}",
        vendor.gets() - gets,
        vendor.patches() - patches
    );
    vendor.check_clean()?;
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM removals WHERE state <> 'done'")
        .fetch_one(
            app.store
                .sqlite_pool()
                .context("the benchmark store is SQLite")?,
        )
        .await?;
    anyhow::ensure!(left == 0, "{left} removals are not done after the drain");
    app.store.close().await;
    Ok(Drained {
        wall: elapsed,
        cpu: cpu_after.saturating_sub(cpu),
        switches: switches_after.saturating_sub(switches),
    })
}
