//! B6: footprint of the real binary: time from process start to `/readyz` 200, and resident memory once idle,
//! with five connectors (one of each kind) and a CSV feed.

use std::path::Path;
use std::time::Duration;

use crate::process::{Daemon, free_port};
use crate::setup::{CSV_HEADER, base_config, scim_connector, write_config, write_secret};

/// What one start measured.
pub(crate) struct Footprint {
    /// Spawn to the first `/readyz` 200, on a new database (migrations included).
    pub(crate) ready_new: Duration,
    /// The same on the second start, with the database already there.
    pub(crate) ready_existing: Duration,
    /// `VmRSS` after `idle` of idling, KiB.
    pub(crate) idle_rss_kib: u64,
    /// `VmHWM` at the same moment (peak RSS so far), KiB.
    pub(crate) peak_rss_kib: u64,
}

const CONNECTORS: &str = r#"
[[connector]]
name = "lecture-capture"
kind = "panopto"
account = "{username}"
host = "panopto.example.org"
endpoint = "http://127.0.0.1:9/Panopto/PublicAPI/4.6/UserManagement.svc"
api_user_key = "svc-offboard"
password_file = "panopto-password"

[[connector]]
name = "echovideo"
kind = "echo360"
account = "{email}"
base_url = "https://echo360.org.uk"
client_id_file = "echo360-client-id"
client_secret_file = "echo360-client-secret"
action = "delete"

[[connector]]
name = "engineblock"
kind = "openconext"
account = "urn:collab:person:example.org:{collab_uid}"
base_url = "https://engine-api.example.org/"
username = "lifecycle"
password_file = "engineblock-password"

[[connector]]
name = "directory"
kind = "exec"
account = "{username}"
program = "/bin/true"
args = ["{account}"]
"#;

/// Starts `offboard run` on a new database, waits for `/readyz`, idles for `idle`, reads its memory from
/// `/proc`, stops it with SIGTERM, then starts it again on the same database and times readiness once more.
pub(crate) async fn footprint(
    bin: &Path,
    base: &Path,
    idle: Duration,
) -> anyhow::Result<Footprint> {
    let dir = tempfile::tempdir_in(base)?;
    for name in [
        "panopto-password",
        "echo360-client-id",
        "echo360-client-secret",
        "engineblock-password",
    ] {
        write_secret(dir.path(), name, "benchmark-secret-value")?;
    }
    std::fs::write(dir.path().join("feed.csv"), CSV_HEADER)?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let feed = "\n[feed]\nkind = \"csv\"\npath = \"feed.csv\"\nschedule = \"0 */5 * * * *\"\n";
    let connectors = format!(
        "{feed}{}{CONNECTORS}",
        scim_connector("wiki", "http://127.0.0.1:9/scim/v2", 2)
    );
    let text = base_config(4, &addr.to_string(), &connectors);
    let config = write_config(dir.path(), &text)?;

    let mut daemon = Daemon::start(bin, &config, addr, &dir.path().join("first.log"))?;
    let ready_new = daemon.wait_ready(Duration::from_secs(30)).await?;
    tokio::time::sleep(idle).await;
    let idle_rss_kib = daemon.status_kib("VmRSS")?;
    let peak_rss_kib = daemon.status_kib("VmHWM")?;
    daemon.stop()?;

    let mut daemon = Daemon::start(bin, &config, addr, &dir.path().join("second.log"))?;
    let ready_existing = daemon.wait_ready(Duration::from_secs(30)).await?;
    daemon.stop()?;
    Ok(Footprint {
        ready_new,
        ready_existing,
        idle_rss_kib,
        peak_rss_kib,
    })
}
