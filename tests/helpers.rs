//! Test harness: a temp directory holding a config, a feed, exec scripts and the database.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use offboard::app::App;
use offboard::audit::AuditRow;
use offboard::clock::Clock;
use offboard::config::Config;
use offboard::feed::{self, PollOutcome, intake::BatchSummary};
use offboard::store::queue::{RemovalFilter, RemovalView};
use offboard::worker::DrainSummary;
use tempfile::TempDir;

pub(crate) const HEADER: &str =
    "employee_id,email,username,upn,display_name,effective_date,status\n";

/// A shell script that removes nothing and exits 0.
pub(crate) const OK_SCRIPT: &str = "#!/bin/sh\nexit 0\n";

pub(crate) struct TestApp {
    pub(crate) dir: TempDir,
    pub(crate) app: App,
    pub(crate) clock: Clock,
}

impl TestApp {
    /// A daemon whose connectors are given as TOML (scripts are written first with `script`).
    pub(crate) async fn with(connectors: &str, scripts: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in scripts {
            write_script(dir.path(), name, body);
        }
        std::fs::write(dir.path().join("feed.csv"), HEADER).unwrap();
        TestApp::in_dir(dir, &config_text(connectors)).await
    }

    /// A daemon from a whole config text, in a directory prepared by the caller.
    pub(crate) async fn in_dir(dir: TempDir, text: &str) -> TestApp {
        let path = dir.path().join("offboard.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let clock = Clock::system();
        let app = App::build(config, clock.clone()).await.unwrap();
        TestApp { dir, app, clock }
    }

    /// A daemon with one exec connector `app` running `script` with `{account}` as its argument.
    pub(crate) async fn exec(script: &str, extra: &str) -> TestApp {
        let connector = format!(
            "[[connector]]\nname = \"app\"\nkind = \"exec\"\naccount = \"{{email}}\"\nprogram = \"remove.sh\"\nargs = [\"{{account}}\"]\n{extra}\n"
        );
        TestApp::with(&connector, &[("remove.sh", script)]).await
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write_feed(&self, rows: &str) {
        std::fs::write(self.path("feed.csv"), format!("{HEADER}{rows}")).unwrap();
    }

    pub(crate) async fn poll(&self) -> BatchSummary {
        match feed::poll_once(
            &self.app.store,
            &self.app.config,
            &self.app.http,
            self.clock.now(),
        )
        .await
        .unwrap()
        {
            PollOutcome::Ingested(s) => s,
            PollOutcome::Failed { error, .. } => panic!("poll failed: {error}"),
            PollOutcome::Unchanged { .. } => panic!("the feed was unchanged"),
        }
    }

    pub(crate) async fn drain(&self) -> DrainSummary {
        self.app.workers().drain().await.unwrap()
    }

    pub(crate) async fn removals(&self) -> Vec<RemovalView> {
        self.app
            .store
            .removals(&RemovalFilter::default())
            .await
            .unwrap()
    }

    pub(crate) async fn removal(&self, employee: &str) -> RemovalView {
        let mut all = self
            .app
            .store
            .removals(&RemovalFilter {
                employee_id: Some(employee.into()),
                ..RemovalFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 1, "one removal for {employee}");
        all.remove(0)
    }

    pub(crate) async fn audit(&self) -> Vec<AuditRow> {
        offboard::audit::list(&self.app.store, &Default::default())
            .await
            .unwrap()
    }

    pub(crate) async fn events(&self, event: &str) -> Vec<AuditRow> {
        self.audit()
            .await
            .into_iter()
            .filter(|r| r.event == event)
            .collect()
    }

    /// The planned removals listed by the `termination_created` audit rows, in order.
    pub(crate) async fn planned(&self) -> Vec<serde_json::Value> {
        self.events("termination_created")
            .await
            .iter()
            .flat_map(|r| {
                detail(r)["removals"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

pub(crate) fn config_text(connectors: &str) -> String {
    let db = database_url();
    format!(
        r#"[database]
url = "{db}"

[feed]
kind = "csv"
path = "feed.csv"
schedule = "0 0 * * * *"

[workers]
concurrency = 4
lease = "10s"
idle_poll = "1s"
shutdown_grace = "5s"

[retry]
initial = "1s"
max = "8s"
max_attempts = 5

[safety]
# Tests feed a handful of rows; the guard has tests of its own.
max_terminations_percent = 100.0

[http]
listen = "127.0.0.1:0"

[log]
format = "text"
level = "warn"

{connectors}"#
    )
}

pub(crate) fn write_script(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The backend the suite runs on: `OFFBOARD_TEST_POSTGRES` names a PostgreSQL server (started by
/// `scripts/test` with `scripts/postgres`), else SQLite.
pub(crate) fn postgres_server() -> Option<String> {
    std::env::var("OFFBOARD_TEST_POSTGRES")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The `database.url` of a new test daemon: `sqlite://state/offboard.db` (in the test's directory), or a new,
/// empty database on the suite's PostgreSQL server.
pub(crate) fn database_url() -> String {
    match postgres_server() {
        Some(server) => new_postgres_database(&server),
        None => "sqlite://state/offboard.db".to_string(),
    }
}

/// Creates an empty database on `server` and returns its URL.
pub(crate) fn new_postgres_database(server: &str) -> String {
    use sqlx::Connection;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!(
        "t_{}_{}_{:06x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    );
    let admin = server.to_string();
    let create = name.clone();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {create}")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            })
    })
    .join()
    .unwrap();
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

/// A detail JSON field of an audit row.
pub(crate) fn detail(row: &AuditRow) -> serde_json::Value {
    serde_json::from_str(&row.detail).unwrap()
}

/// Sends SIGTERM to a daemon a test started (std's `Child::kill` only sends SIGKILL) and waits up to
/// `within` for it to exit. `None` when it did not: it is then killed, and the caller fails the test.
pub(crate) async fn sigterm_and_wait(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let term = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success(), "kill -TERM {}", child.id());
    let until = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
