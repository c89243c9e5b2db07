//! The SQLite pool: pragmas on every connection, embedded migrations, write transactions, time encoding.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A write transaction on the pool.
pub type Tx = Transaction<'static, Sqlite>;

/// Most rows one multi-row statement carries (15 columns × 512 rows = 7,680 bound values, below SQLite's
/// limit of 32,766).
pub const MAX_ROWS_PER_STATEMENT: usize = 512;

/// Prepared statements kept per connection. The multi-row statements of [`insert_chunks`] add a few sizes per
/// table to the crate's fixed statements; a cache too small for all of them would prepare them again and again.
const STATEMENT_CACHE: usize = 400;

/// Splits `rows` into slices whose lengths are powers of two of at most [`MAX_ROWS_PER_STATEMENT`], largest
/// first: a multi-row statement is prepared once per size and connection, so eight statement shapes serve any
/// number of rows.
pub fn insert_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let size = MAX_ROWS_PER_STATEMENT.min(1 << rest.len().ilog2());
        let (chunk, later) = rest.split_at(size);
        rest = later;
        Some(chunk)
    })
}

/// The largest rowid of `table` (0 when empty), read in the caller's transaction before a multi-row insert
/// whose ids [`inserted_ids`] then works out.
pub async fn max_rowid(tx: &mut Tx, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(rowid), 0) FROM {table}"
    )))
    .fetch_one(&mut **tx)
    .await
}

/// The ids of the rows one multi-row `INSERT` stored, in the order of its `VALUES`, without `RETURNING`
/// (which hands the rows back one at a time). SQLite gives each new row the largest rowid so far plus one,
/// so in a write transaction an insert of `n` rows that stored all `n` and ended at
/// `last_insert_rowid = before + n` stored them as `before + 1 ..= before + n`. `None` when the figures do not
/// add up (a row was skipped by `ON CONFLICT DO NOTHING`, or rowids were not handed out in sequence): the
/// caller then reads the ids of the rows above `before`.
pub fn inserted_ids(
    before: i64,
    result: &sqlx::sqlite::SqliteQueryResult,
    n: usize,
) -> Option<Vec<i64>> {
    let n = i64::try_from(n).ok()?;
    (i64::try_from(result.rows_affected()).ok()? == n && result.last_insert_rowid() == before + n)
        .then(|| (before + 1..=before + n).collect())
}

/// Opens (creating if missing) the database with WAL, `busy_timeout`, foreign keys and `synchronous=FULL`
/// on every pooled connection.
pub async fn connect(
    path: &Path,
    max_connections: u32,
    busy_timeout: Duration,
) -> anyhow::Result<SqlitePool> {
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
        .connect_with(options)
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))
}

/// Runs every pending migration.
pub async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("cannot apply the database migrations")
}

/// Opens the database and brings its schema up to date.
pub async fn open(
    path: &Path,
    max_connections: u32,
    busy_timeout: Duration,
) -> anyhow::Result<SqlitePool> {
    let pool = connect(path, max_connections, busy_timeout).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Starts a write transaction that takes the write lock at once (`BEGIN IMMEDIATE`), so a
/// transaction that reads before it writes never fails to upgrade its lock.
pub async fn begin_write(pool: &SqlitePool) -> Result<Tx, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Encodes an instant as fixed-width RFC 3339 UTC with milliseconds, so text order is time order.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Decodes an instant written by [`ts`] (or any RFC 3339 text).
pub fn parse_ts(s: &str) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("bad timestamp in the database: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inserted_ids_are_the_rows_of_one_insert_in_values_order_or_none_after_a_skip() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&dir.path().join("ids.db"), 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = begin_write(&pool).await.unwrap();
        let insert = "INSERT INTO t (k) VALUES ('c'), ('a'), ('b') ON CONFLICT (k) DO NOTHING";

        let before = max_rowid(&mut tx, "t").await.unwrap();
        let result = sqlx::query(insert).execute(&mut *tx).await.unwrap();
        let ids = inserted_ids(before, &result, 3).unwrap();
        let stored: Vec<(i64, String)> = sqlx::query_as("SELECT id, k FROM t ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(
            stored,
            vec![
                (ids[0], "c".into()),
                (ids[1], "a".into()),
                (ids[2], "b".into())
            ]
        );

        // A second insert that skips the existing keys stores one row of four: no guess.
        let before = max_rowid(&mut tx, "t").await.unwrap();
        assert_eq!(before, ids[2]);
        let result = sqlx::query(
            "INSERT INTO t (k) VALUES ('a'), ('d'), ('b'), ('c') ON CONFLICT (k) DO NOTHING",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        assert_eq!(inserted_ids(before, &result, 4), None);
        tx.rollback().await.unwrap();
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        let a = ts("2026-01-02T03:04:05Z".parse().unwrap());
        let b = ts("2026-01-02T03:04:05.5Z".parse().unwrap());
        assert_eq!(a, "2026-01-02T03:04:05.000Z");
        assert!(a < b);
        assert_eq!(parse_ts(&b).unwrap().timestamp_millis() % 1000, 500);
    }

    #[test]
    fn rows_are_split_into_power_of_two_chunks() {
        let rows: Vec<u32> = (0..1200).collect();
        let sizes: Vec<usize> = insert_chunks(&rows).map(<[u32]>::len).collect();
        assert_eq!(sizes, [512, 512, 128, 32, 16]);
        let joined: Vec<u32> = insert_chunks(&rows).flatten().copied().collect();
        assert_eq!(joined, rows);
        assert_eq!(insert_chunks::<u32>(&[]).count(), 0);
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
