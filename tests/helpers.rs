//! Test harness: a temp directory holding a config, a feed, exec scripts and the database (a SQLite file
//! in it, or a database of its own on the suite's PostgreSQL server: see [`database_url`]).

/// Runs `body` with `pool` bound to the store's pool, SQLite's or PostgreSQL's: for a test's own
/// queries, written with `$1`-style placeholders, which both backends read.
macro_rules! on_db {
    ($store:expr, |$pool:ident| $body:expr) => {{
        let store: &offboard::store::Store = &$store;
        match store.postgres_pool() {
            Some($pool) => $body,
            None => {
                let $pool = store.sqlite_pool().unwrap();
                $body
            }
        }
    }};
}

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
    config_text_on(&database_url(), connectors)
}

/// [`config_text`] with `db` as its `database.url`.
pub(crate) fn config_text_on(db: &str, connectors: &str) -> String {
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

/// A value bound to a [`Raw`] statement.
pub(crate) enum Bind {
    Int(i64),
    Text(Option<String>),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(Some(v.to_string()))
    }
}

impl From<&String> for Bind {
    fn from(v: &String) -> Self {
        Bind::Text(Some(v.clone()))
    }
}

impl From<&Option<String>> for Bind {
    fn from(v: &Option<String>) -> Self {
        Bind::Text(v.clone())
    }
}

/// Write access to a test daemon's database past the store, as an attacker with the database's
/// credentials has it. Statements use `$1`-style placeholders, which both backends read.
pub(crate) struct Raw {
    store: offboard::store::Store,
}

impl Raw {
    pub(crate) fn of(store: &offboard::store::Store) -> Raw {
        Raw {
            store: store.clone(),
        }
    }

    /// Runs one statement; returns the rows it changed, or the database's refusal.
    pub(crate) async fn execute(&self, sql: &str, binds: &[Bind]) -> Result<u64, sqlx::Error> {
        on_db!(self.store, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()));
            for bind in binds {
                query = match bind {
                    Bind::Int(v) => query.bind(*v),
                    Bind::Text(v) => query.bind(v.clone()),
                };
            }
            query.execute(pool).await.map(|r| r.rows_affected())
        })
    }

    /// Drops the append-only guards of the audit log (the attacker can).
    pub(crate) async fn drop_audit_guards(&self) {
        let statements: &[&str] = if self.store.postgres_pool().is_some() {
            &["ALTER TABLE audit_log DISABLE TRIGGER USER"]
        } else {
            &[
                "DROP TRIGGER audit_log_no_update",
                "DROP TRIGGER audit_log_no_delete",
                "DROP TRIGGER audit_log_no_replace",
            ]
        };
        for statement in statements {
            self.execute(statement, &[]).await.unwrap();
        }
    }

    /// Every audit row as stored, in chain order.
    pub(crate) async fn audit_rows(&self) -> Vec<AuditRow> {
        on_db!(self.store, |pool| sqlx::query_as(
            "SELECT * FROM audit_log ORDER BY seq"
        )
        .fetch_all(pool)
        .await
        .unwrap())
    }

    /// One integer read by `sql`.
    pub(crate) async fn integer(&self, sql: &str) -> i64 {
        on_db!(self.store, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(
            sql.to_string()
        ))
        .fetch_one(pool)
        .await
        .unwrap())
    }
}

/// Everything the daemon of `config` stored, as text to search for what must not be there: the bytes of
/// the SQLite files in its `state/` directory, or on PostgreSQL every row of every table as JSON.
pub(crate) async fn stored_everything(config: &Path) -> String {
    let store = database_of(config).await.unwrap();
    let Some(pool) = store.postgres_pool() else {
        let path = store_file(config);
        store.close().await;
        let mut stored = Vec::new();
        for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
            stored.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        return String::from_utf8_lossy(&stored).into_owned();
    };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut text = String::new();
    for table in tables {
        let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COALESCE(string_agg(row_to_json(x)::TEXT, E'\\n'), '') FROM \"{table}\" x"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        text.push_str(&rows);
    }
    store.close().await;
    text
}

/// The SQLite file named by the `database.url` of `config`.
fn store_file(config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    let url = table["database"]["url"].as_str().unwrap();
    let file = url.trim_start_matches("sqlite:").trim_start_matches("//");
    config.parent().unwrap().join(file)
}

/// The database of the daemon configured in `config` (only its `[database]` table is read, so secrets
/// the rest names need not be set), without migrating it.
pub(crate) async fn database_of(config: &Path) -> anyhow::Result<offboard::store::Store> {
    let text = std::fs::read_to_string(config)?;
    let table: toml::Table = toml::from_str(&text)?;
    let mut only = toml::Table::new();
    if let Some(database) = table.get("database") {
        only.insert("database".into(), database.clone());
    }
    let loaded = Config::from_toml_str(&toml::to_string(&only)?, config)?;
    offboard::store::Store::connect_configured(&loaded.database).await
}
