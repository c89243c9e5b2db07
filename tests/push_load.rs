//! Pushes under load: 2,000 pushes of one termination each from a second process
//! (tests/tools/push_load.py, standard-library Python from the test venv) against the real binary
//! while its workers drain the removals they create; the sender kills the daemon with SIGKILL right
//! after the last 202. Every acknowledged termination must then be in the database, with its batch
//! and its removal: a 202 is only sent after the commit.
//!
//! A process kill cannot lose a committed SQLite transaction whatever `synchronous` says; surviving
//! power loss as well is what `synchronous=FULL` on every pooled connection adds (checked in
//! `db::tests`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::vendor_http::write_secret;

const PUSHES: usize = 2000;
const TOKEN: &str = "push-load-token-8c1e4f2a9b7d";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("OFFBOARD_TEST_VENV")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python test environment at {}: run scripts/test, which creates it \
         (python3 -m venv .venv && .venv/bin/pip install -r tests/requirements.txt), or set OFFBOARD_TEST_VENV",
        venv.display()
    );
    python
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::helpers::write_script(dir.path(), "remove.sh", crate::helpers::OK_SCRIPT);
    write_secret(dir.path(), "push-token", TOKEN);
    let config = r#"[database]
url = "DATABASE_URL"

[workers]
concurrency = 4
lease = "10s"
idle_poll = "1s"
shutdown_grace = "5s"

[safety]
max_terminations_per_batch = 50

[http]
listen = "127.0.0.1:0"
push_token_file = "push-token"

[log]
format = "json"
level = "info"

[[connector]]
name = "app"
kind = "exec"
account = "{email}"
program = "remove.sh"
args = ["{account}"]
concurrency = 4
"#;
    std::fs::write(
        dir.path().join("offboard.toml"),
        config.replace("DATABASE_URL", &crate::helpers::database_url()),
    )
    .unwrap();
    dir
}

/// Waits for the daemon's "Listening" log line and returns the address in it.
async fn listening_address(log: &Path, daemon: &mut tokio::process::Child) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|l| l["address"].as_str().map(str::to_string))
        {
            return address;
        }
        if let Some(status) = daemon.try_wait().unwrap() {
            panic!("the daemon exited ({status}) before listening:\n{text}");
        }
        assert!(Instant::now() < until, "the daemon never listened:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_push_survives_a_sigkill_right_after_the_last_202() {
    let python = venv_python();
    let dir = workspace();
    let log = dir.path().join("daemon.log");
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .arg("run")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let address = listening_address(&log, &mut daemon).await;
    let pid = daemon.id().unwrap();
    let acked_path = dir.path().join("acked.txt");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/push_load.py");
    let started = Instant::now();
    let sender = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--url", &format!("http://{address}")])
        .arg("--token-file")
        .arg(dir.path().join("push-token"))
        .args(["--count", &PUSHES.to_string(), "--connections", "8"])
        .arg("--acked")
        .arg(&acked_path)
        .args(["--kill-pid", &pid.to_string()])
        .output();
    let sender = tokio::time::timeout(Duration::from_secs(120), sender)
        .await
        .expect("the pushes finish within 120 s")
        .unwrap();
    let took = started.elapsed();
    assert!(
        sender.status.success(),
        "{}",
        String::from_utf8_lossy(&sender.stderr)
    );
    let summary: Value = serde_json::from_slice(&sender.stdout).unwrap();
    eprintln!(
        "push load: {summary} in {} ms ({:.0} pushes/s)",
        took.as_millis(),
        PUSHES as f64 / took.as_secs_f64()
    );

    // The sender killed the daemon; it did not stop on its own.
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.wait())
        .await
        .expect("the daemon is gone after SIGKILL")
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status}");

    assert_eq!(summary["refused_count"], 0, "{summary}");
    let acked: Vec<(String, i64)> = std::fs::read_to_string(&acked_path)
        .unwrap()
        .lines()
        .map(|l| {
            let (employee, batch) = l.split_once(' ').unwrap();
            (employee.to_string(), batch.parse().unwrap())
        })
        .collect();
    assert_eq!(
        acked.len(),
        PUSHES,
        "every push was acknowledged: {summary}"
    );

    let pool = crate::helpers::database_of(&dir.path().join("offboard.toml"))
        .await
        .unwrap();
    let stored: Vec<(String, i64, String, i64, String)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT t.employee_id, t.batch_id, b.source, COUNT(r.id), COALESCE(MIN(r.state), '') \
         FROM terminations t JOIN batches b ON b.id = t.batch_id \
         LEFT JOIN removals r ON r.termination_id = t.id GROUP BY t.id, b.source",
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    let by_employee: HashMap<&str, &(String, i64, String, i64, String)> =
        stored.iter().map(|row| (row.0.as_str(), row)).collect();
    assert_eq!(
        by_employee.len(),
        stored.len(),
        "one termination per employee"
    );
    for (employee, batch) in &acked {
        let Some((_, stored_batch, source, removals, _)) = by_employee.get(employee.as_str())
        else {
            panic!("{employee} was acknowledged (batch {batch}) but is not in the database");
        };
        assert_eq!(stored_batch, batch, "{employee}");
        assert_eq!(source, "push", "{employee}");
        assert_eq!(*removals, 1, "{employee}: one removal");
    }
    assert_eq!(stored.len(), PUSHES, "nothing but the pushed terminations");
    let states: Vec<(String, i64)> = on_db!(pool, |pool| sqlx::query_as(
        "SELECT state, COUNT(*) FROM removals GROUP BY state ORDER BY state"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    eprintln!("push load: removals at the kill {states:?}");
    let done = states
        .iter()
        .find(|(s, _)| s == "done")
        .map_or(0, |(_, n)| *n);
    assert!(done > 0, "the workers drained while the pushes came in");
    pool.close().await;

    let verify = tokio::process::Command::new(env!("CARGO_BIN_EXE_offboard"))
        .arg("--config")
        .arg(dir.path().join("offboard.toml"))
        .args(["audit", "verify"])
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
