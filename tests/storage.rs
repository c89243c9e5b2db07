//! The database's storage failing under the daemon: a full disk that heals, a read-only or unwritable
//! database directory. The full disk is real: a small tmpfs mounted for the test (root only, as the
//! test machines run), filled with a file until writes fail, then emptied.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use offboard::feed::{self, PollOutcome};

use crate::helpers::{HEADER, OK_SCRIPT, TestApp, config_text_on, write_script};

/// A tmpfs of `size` mounted on a fresh directory; unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a {size} tmpfs on {} failed: this test needs root (the test machines run as root)",
            dir.path().display()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 16 * 1024];
        loop {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        // The last partial chunk may have gone in: fill what is left byte-wise.
        while file.write_all(&[0u8]).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn leavers(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("e{i},p{i}@example.org,p{i},,P {i},2026-01-05,Terminated\n"))
        .collect()
}

async fn poll(t: &TestApp) -> anyhow::Result<PollOutcome> {
    feed::poll_once(&t.app.store, &t.app.config, &t.app.http, t.clock.now()).await
}

#[tokio::test]
async fn a_full_disk_heals_within_seconds_of_space_returning_and_nothing_is_lost() {
    let disk = Tmpfs::mount("3m");
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n";
    // The SQLite file on a disk of its own, whatever backend the rest of the suite runs on.
    let text = config_text_on(
        &format!("sqlite://{}/offboard.db", disk.path().display()),
        connector,
    );
    let t = TestApp::in_dir(dir, &text).await;
    t.write_feed(&leavers(0, 5));
    t.poll().await;
    assert_eq!(t.drain().await.done, 5);

    // The disk fills up: the next polls fail, and say why.
    let filler = disk.fill();
    t.write_feed(&leavers(0, 40));
    let mut failures = Vec::new();
    for _ in 0..3 {
        match poll(&t).await {
            Err(e) => failures.push(format!("{e:#}")),
            Ok(PollOutcome::Failed { error, .. }) => failures.push(error),
            Ok(PollOutcome::Ingested(_)) => panic!("a poll went through on a full disk"),
            Ok(PollOutcome::Unchanged { .. }) => panic!("the feed changed"),
        }
    }
    assert!(
        failures.iter().any(|f| f.contains("full")),
        "the failure names the full disk: {failures:?}"
    );
    // A worker turn on the full disk fails (its error is the daemon's to log).
    let _ = t.app.workers().drain().await;

    // Space returns: the daemon is writing again within seconds, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let summary = loop {
        match poll(&t).await {
            Ok(PollOutcome::Ingested(summary)) => break summary,
            other => {
                let why = match other {
                    Err(e) => format!("{e:#}"),
                    Ok(PollOutcome::Failed { error, .. }) => error,
                    Ok(_) => "unchanged".into(),
                };
                assert!(
                    freed.elapsed() < Duration::from_secs(10),
                    "still failing {:?} after space returned: {why}",
                    freed.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let healed = freed.elapsed();
    eprintln!("storage: writing again {healed:?} after space returned");
    assert!(healed < Duration::from_secs(5), "healed after {healed:?}");
    assert_eq!(summary.new_terminations, 35, "{summary:?}");
    assert_eq!(t.drain().await.done, 35);
    let removals = t.removals().await;
    assert_eq!(removals.len(), 40);
    assert!(removals.iter().all(|r| r.state == "done"));
    let verified = offboard::audit::verify(&t.app.store).await.unwrap();
    assert!(
        matches!(verified, offboard::audit::Verification::Ok { .. }),
        "{verified:?}"
    );
}

/// The database directory is on a read-only file system: `check-config` and `run --once` both stop
/// with one message naming the directory and the cause.
#[tokio::test]
async fn a_read_only_database_directory_is_named_by_check_config_and_by_the_first_run() {
    let disk = Tmpfs::mount("1m");
    let dir = tempfile::tempdir().unwrap();
    write_script(dir.path(), "remove.sh", OK_SCRIPT);
    std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
    let state = disk.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let connector = "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{email}\"\nprogram = \"remove.sh\"\nargs = [\"{account}\"]\n";
    let text = config_text_on(
        &format!("sqlite://{}/offboard.db", state.display()),
        connector,
    );
    std::fs::write(dir.path().join("offboard.toml"), text).unwrap();
    let status = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(disk.path())
        .status()
        .unwrap();
    assert!(status.success());

    let expected = format!(
        "the directory {} is on a read-only file system",
        state.display()
    );
    for args in [&["check-config"][..], &["run", "--once"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_offboard"))
            .arg("--config")
            .arg(dir.path().join("offboard.toml"))
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{args:?}: {text}");
        assert!(text.contains(&expected), "{args:?}: {text}");
        assert!(
            text.contains(&format!("{}/offboard.db", state.display())),
            "{args:?} names the database: {text}"
        );
    }
}
