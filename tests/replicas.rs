//! Several replicas on one PostgreSQL database: three daemons share the queue of 2,000 leavers at a slow,
//! sometimes failing fake SCIM service (the one of `crash.rs`), are killed with SIGKILL at random moments
//! (50 kills, each replica restarted at once) while the database server itself is restarted once in
//! the middle, and are then left to finish. Afterwards the invariants of `crash.rs` hold: every removal
//! is done exactly once, every account was deleted exactly once at the vendor, every attempt is
//! accounted for in the audit, and `offboard audit verify` accepts the one chain the replicas wrote.
//!
//! It runs in the PostgreSQL pass of `scripts/test` (on a server of its own, so it can restart it).
//! `OFFBOARD_REPLICA_KILLS`, `OFFBOARD_REPLICA_LEAVERS` and `OFFBOARD_CRASH_SEED` change the run.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::crash::{
    Fake, assert_alive, check_invariants, log_tail, open_store, progress, start_daemon, workspace,
};

const REPLICAS: usize = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .ok()
                .unwrap_or_else(|| panic!("{name} is a number"))
        })
        .unwrap_or(default)
}

/// Runs `scripts/postgres` with `args`; its standard output.
fn postgres_script(args: &[&str]) -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/postgres {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A PostgreSQL server of the test's own, stopped when dropped.
struct Server {
    dir: tempfile::TempDir,
}

impl Server {
    fn start() -> (Server, String) {
        let dir = tempfile::Builder::new()
            .prefix("offboard-replicas-pg")
            .tempdir_in("/tmp")
            .unwrap();
        // Durable: a server that acknowledged a commit keeps it across the restart (the suite's
        // shared server trades that for speed).
        let url = postgres_script(&[
            "start",
            dir.path().join("pg").to_str().unwrap(),
            "--durable",
        ]);
        (Server { dir }, url)
    }

    fn restart(&self) {
        postgres_script(&["restart", self.dir.path().join("pg").to_str().unwrap()]);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres"))
            .args(["stop", self.dir.path().join("pg").to_str().unwrap()])
            .status();
    }
}

/// Waits until every removal of the `leavers` is in a final state; false after `limit`.
async fn drained(dir: &Path, leavers: usize, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(store) = open_store(dir).await {
            let open: Result<(i64, i64), _> = on_db!(store, |pool| {
                sqlx::query_as(
                "SELECT COUNT(*), COUNT(*) FILTER (WHERE state NOT IN ('done', 'failed', 'cancelled')) FROM removals",
            )
            .fetch_one(pool)
            .await
            });
            store.close().await;
            if let Ok((all, 0)) = open
                && all as usize == leavers
            {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_killed_at_random_and_a_database_restart_lose_no_removal_and_repeat_none() {
    if crate::helpers::postgres_server().is_none() {
        eprintln!("replicas: runs in the PostgreSQL pass of scripts/test (OFFBOARD_TEST_POSTGRES)");
        return;
    }
    let kills: usize = env_or("OFFBOARD_REPLICA_KILLS", 50);
    let leavers: usize = env_or("OFFBOARD_REPLICA_LEAVERS", 2000);
    let seed: u64 = env_or("OFFBOARD_CRASH_SEED", rand::random());
    eprintln!(
        "replicas: {REPLICAS} replicas, {kills} kills, {leavers} leavers, OFFBOARD_CRASH_SEED={seed}"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let (server, url) = Server::start();
    let db = crate::helpers::new_postgres_database(&url);
    let fake = Fake::new(seed, leavers);
    let base_url = fake.clone().serve().await;
    let dir = workspace(&base_url, leavers, &db);
    let logs: Vec<_> = (0..REPLICAS)
        .map(|i| dir.path().join(format!("replica-{i}.log")))
        .collect();
    let started = Instant::now();
    let mut replicas: Vec<Child> = logs
        .iter()
        .map(|log| start_daemon(dir.path(), log))
        .collect();

    let mut restarted_at = None;
    for kill in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..=700))).await;
        if kill == kills / 2 {
            // The database server goes down hard and comes back; no replica may give up.
            server.restart();
            restarted_at = Some(started.elapsed());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let victim = rng.random_range(0..REPLICAS);
        for (i, replica) in replicas.iter_mut().enumerate() {
            assert_alive(replica, &logs[i]);
        }
        replicas[victim].kill().unwrap(); // SIGKILL
        replicas[victim].wait().unwrap();
        replicas[victim] = start_daemon(dir.path(), &logs[victim]);
    }
    let killing = started.elapsed();
    eprintln!(
        "replicas: {kills} kills in {} ms (database restarted at {} ms); then {}",
        killing.as_millis(),
        restarted_at.unwrap_or_default().as_millis(),
        progress(dir.path()).await
    );

    let finished = drained(dir.path(), leavers, Duration::from_secs(240)).await;
    for (i, replica) in replicas.iter_mut().enumerate() {
        assert_alive(replica, &logs[i]);
    }
    assert!(
        finished,
        "the replicas did not finish within 240 s of the last kill ({}); replica 0's log ends:\n{}",
        progress(dir.path()).await,
        log_tail(&logs[0])
    );
    eprintln!(
        "replicas: all {leavers} removals final {} ms after the start",
        started.elapsed().as_millis()
    );
    for (i, replica) in replicas.iter_mut().enumerate() {
        let status = crate::helpers::sigterm_and_wait(replica, Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("replica {i} did not stop within 15 s of SIGTERM"));
        assert!(
            status.success(),
            "replica {i}: {status}\n{}",
            log_tail(&logs[i])
        );
    }
    // Each replica led at some point or followed; one of them polled the feed after each takeover.
    let led = logs
        .iter()
        .filter(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains("now leads")
        })
        .count();
    assert!(led >= 1, "no replica ever led");

    let verify = Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .args(["audit", "verify"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let verify_text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        verify.status.success() && verify_text.starts_with("ok:"),
        "{verify_text}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let store = open_store(dir.path()).await.unwrap();
    check_invariants(&store, &fake, seed).await;
    store.close().await;
    drop(server);
}
