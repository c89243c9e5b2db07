//! The SQLite side of the store: the pool and the pragmas of every connection, the embedded migrations,
//! write transactions, the ids of new rows, and the statements of each group of operations (SQLite's
//! dialect: `json_each`, two-argument `MIN`, `IS NOT`, `RETURNING`, multi-row `INSERT`s of [`Script`]).
//! Nothing here decides what a change means or which audit row records it: that is `store/*.rs`.

pub(super) mod audit_log;
pub(super) mod batches;
pub(super) mod checkpoints;
pub(super) mod connectors;
pub(super) mod holds;
pub(super) mod ingest;
pub(super) mod notify;
pub(super) mod queue;
pub(super) mod reads;
pub(super) mod revoke;
mod script;
pub(super) mod transition;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction};

pub(super) use script::{Script, Spent, statement_sizes};

/// The migrations under `migrations/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A write transaction on the pool.
pub(super) type Tx = Transaction<'static, Sqlite>;

/// Prepared statements kept per connection. The multi-row statements of [`Script`] add a few sizes per table to
/// the crate's fixed statements; a cache too small for all of them would prepare them again and again.
const STATEMENT_CACHE: usize = 400;

/// Opens (creating if missing) the database with WAL, `busy_timeout`, foreign keys and `synchronous=FULL`
/// on every pooled connection.
pub(super) async fn connect(
    path: &Path,
    max_connections: u32,
    busy_timeout: Duration,
) -> anyhow::Result<SqlitePool> {
    if let Some(problem) = storage_problem(path) {
        anyhow::bail!("cannot open the database {}: {problem}", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the database directory {}", dir.display()))?;
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .context("sqlite options")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(busy_timeout)
        .statement_cache_capacity(STATEMENT_CACHE)
        // Statement journals (every multi-row INSERT with a UNIQUE or foreign key constraint keeps one)
        // and temporary sort tables stay in memory instead of a temporary file written with a syscall per
        // page: B5's intake spent a tenth of its time writing them.
        .pragma("temp_store", "memory");
    SqlitePoolOptions::new()
        .max_connections(max_connections.max(1))
        // A connection to a local file does not go stale; testing it on every acquire costs a round trip to
        // its worker thread before each statement run on the pool.
        .test_before_acquire(false)
        .after_release(|conn, _| {
            Box::pin(async move {
                if !conn.is_in_transaction() {
                    return Ok(true);
                }
                // A transaction was dropped without a commit (an error path): let its queued ROLLBACK
                // run, then keep the connection only if it is out of every transaction. After a
                // failed COMMIT or a statement that failed with "database or disk is full", SQLite
                // has already rolled the transaction back, the driver's ROLLBACK fails and it still
                // counts the transaction open: back in the pool, that connection would refuse every
                // later BEGIN ("non-zero transaction depth") until a restart. Closed, it is replaced
                // by a fresh one.
                conn.ping().await?;
                Ok(!conn.is_in_transaction())
            })
        })
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))
}

/// Why the database at `path` could not be written, if it could not, said in the words an operator acts on:
/// the path and the cause ("on a read-only file system", "not writable by uid N"). Checks the file when it
/// exists and the directory SQLite writes its `-wal` and `-shm` files into (or the nearest existing parent,
/// where the directory is still to be made); creates nothing that stays.
pub(super) fn storage_problem(path: &Path) -> Option<String> {
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
    {
        return Some(describe_denial("the database file", path, &e));
    }
    let mut dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    while !dir.exists() {
        dir = dir
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
    }
    let probe = dir.join(format!(
        ".offboard-write-check-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(describe_denial("the directory", dir, &e)),
    }
}

/// "the directory /var/lib/offboard is not writable by uid 998 (owner uid 0, mode 755)".
fn describe_denial(what: &str, path: &Path, e: &std::io::Error) -> String {
    use std::os::unix::fs::MetadataExt;
    const EPERM: i32 = 1;
    const EACCES: i32 = 13;
    const EROFS: i32 = 30;
    match e.raw_os_error() {
        Some(EROFS) => format!("{what} {} is on a read-only file system", path.display()),
        Some(EACCES | EPERM) => {
            let owner = std::fs::metadata(path)
                .map(|m| format!(" (owner uid {}, mode {:o})", m.uid(), m.mode() & 0o7777))
                .unwrap_or_default();
            let uid = current_uid().map_or_else(|| "this user".to_string(), |u| format!("uid {u}"));
            format!("{what} {} is not writable by {uid}{owner}", path.display())
        }
        _ => format!("{what} {}: {e}", path.display()),
    }
}

/// The process's real uid, from `/proc/self/status`.
fn current_uid() -> Option<u32> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Writes a consistent copy of the database (the WAL's committed pages included) to `path`, while
/// others keep writing: SQLite's `VACUUM INTO`.
pub(super) async fn backup(pool: &SqlitePool, path: &Path) -> anyhow::Result<()> {
    let target = path
        .to_str()
        .context("the backup path is not valid UTF-8")?;
    sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(pool)
        .await
        .with_context(|| format!("cannot write the backup {}", path.display()))?;
    Ok(())
}

/// Runs every pending migration.
pub(super) async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("cannot apply the database migrations")
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
/// transaction that reads before it writes never fails to upgrade its lock.
pub(super) async fn begin_write(pool: &SqlitePool) -> Result<Tx, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The largest rowid of `table` (0 when empty), read in the caller's transaction. Nobody else inserts while a
/// write transaction is open, so the caller can give its new rows the ids after it, as SQLite itself would.
pub(super) async fn max_rowid(tx: &mut Tx, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(rowid), 0) FROM {table}"
    )))
    .fetch_one(&mut **tx)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storage_denial_names_the_path_and_the_cause() {
        let dir = tempfile::tempdir().unwrap();
        let ro = std::io::Error::from_raw_os_error(30);
        assert_eq!(
            describe_denial("the directory", dir.path(), &ro),
            format!(
                "the directory {} is on a read-only file system",
                dir.path().display()
            )
        );
        let denied = std::io::Error::from_raw_os_error(13);
        let text = describe_denial("the directory", dir.path(), &denied);
        let uid = current_uid().unwrap();
        assert!(
            text.starts_with(&format!(
                "the directory {} is not writable by uid {uid} (owner uid ",
                dir.path().display()
            )),
            "{text}"
        );
        assert!(text.contains(", mode ") && text.ends_with(')'), "{text}");
        assert_eq!(storage_problem(&dir.path().join("new/offboard.db")), None);
        assert!(
            !dir.path().join("new").exists(),
            "the check creates nothing"
        );
    }

    async fn open(path: &Path, max: u32, busy: Duration) -> anyhow::Result<SqlitePool> {
        let pool = connect(path, max, busy).await?;
        migrate(&pool).await?;
        Ok(pool)
    }

    #[tokio::test]
    async fn every_pooled_connection_has_the_production_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let pool = open(&dir.path().join("x.db"), 3, Duration::from_secs(5))
            .await
            .unwrap();
        for _ in 0..3 {
            let mut conn = pool.acquire().await.unwrap();
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(mode, "wal");
            assert_eq!(sync, 2, "synchronous=FULL");
            assert_eq!(fk, 1);
            assert_eq!(busy, 5000);
            let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(temp_store, 2, "temp_store=MEMORY");
        }
    }
}
