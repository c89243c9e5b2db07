//! B5: intake of a large CSV feed by the real binary (`offboard run --once` on a fresh database, nothing due),
//! timed from spawn to exit, with the peak RSS the kernel recorded for the process.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::process::run_measured;
use crate::setup::{base_config, scim_connector, write_config, write_csv_feed};

/// What one intake run measured.
pub(crate) struct IntakeRun {
    /// Spawn to exit.
    pub(crate) wall: Duration,
    /// Peak RSS, KiB.
    pub(crate) max_rss_kib: u64,
}

/// Writes a feed of `rows` leavers effective in 30 days and runs `offboard run --once` with three scim
/// connectors over it; checks that every row became a termination with three pending removals.
pub(crate) fn intake(bin: &Path, base: &Path, rows: usize) -> anyhow::Result<IntakeRun> {
    let dir = tempfile::tempdir_in(base)?;
    // Nothing is due, so the vendor is never called: the URL only has to be valid.
    let unused = "http://127.0.0.1:9/scim/v2";
    let connectors: String = ["wiki", "chat", "crm"]
        .iter()
        .map(|name| scim_connector(name, unused, 2))
        .collect();
    let feed = "\n[feed]\nkind = \"csv\"\npath = \"feed.csv\"\nschedule = \"0 */5 * * * *\"\n";
    let text = base_config(4, "127.0.0.1:0", &format!("{feed}{connectors}"));
    let config = write_config(dir.path(), &text)?;
    let date = (chrono::Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%d")
        .to_string();
    write_csv_feed(&dir.path().join("feed.csv"), "f", rows, &date)?;

    let finished = run_measured(
        bin,
        &config,
        &["run", "--once", "--format", "json"],
        dir.path(),
    )?;

    let out: serde_json::Value =
        serde_json::from_str(&finished.stdout).context("run --once printed no JSON")?;
    let batch = &out["summary"]["poll"];
    anyhow::ensure!(
        batch["result"] == "ingested"
            && batch["new_terminations"] == rows as u64
            && batch["removals_planned"] == 3 * rows as u64
            && batch["held"] == false
            && out["summary"]["pending"] == 3 * rows as u64,
        "unexpected intake summary: {out}"
    );
    Ok(IntakeRun {
        wall: finished.wall,
        max_rss_kib: finished.max_rss_kib,
    })
}
