//! The SQLite pool: pragmas on every connection, embedded migrations, write transactions, time encoding.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Arguments, Encode, Sqlite, SqlitePool, Transaction, Type};

/// The migrations under `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A write transaction on the pool.
pub type Tx = Transaction<'static, Sqlite>;

/// The database handle the rest of the code passes around (cheap to clone).
pub type Pool = SqlitePool;

/// What a failed statement reports.
pub type Error = sqlx::Error;

/// Most rows one multi-row statement carries (15 columns × 512 rows = 7,680 bound values, below SQLite's
/// limit of 32,766).
pub const MAX_ROWS_PER_STATEMENT: usize = 512;

/// Prepared statements kept per connection. The multi-row statements of [`Script`] add a few sizes per table to
/// the crate's fixed statements; a cache too small for all of them would prepare them again and again.
const STATEMENT_CACHE: usize = 400;

/// How [`Script::insert`] splits `rows` rows into statements: powers of two of at most
/// [`MAX_ROWS_PER_STATEMENT`], largest first. A multi-row statement is prepared once per size and connection,
/// so a few statement shapes serve any number of rows.
pub fn statement_sizes(rows: usize) -> impl Iterator<Item = usize> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let size = MAX_ROWS_PER_STATEMENT.min(1 << rest.ilog2());
        rest -= size;
        Some(size)
    })
}

/// The largest rowid of `table` (0 when empty), read in the caller's transaction. Nobody else inserts while a
/// write transaction is open, so the caller can give its new rows the ids after it, as SQLite itself would.
pub async fn max_rowid(tx: &mut Tx, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(rowid), 0) FROM {table}"
    )))
    .fetch_one(&mut **tx)
    .await
}

/// Multi-row `INSERT`s sent to the database as one command, so the caller can prepare the next
/// command while SQLite runs this one (see [`crate::feed::intake`]). Every value is bound; the SQL holds
/// only placeholders.
///
/// A command is kept prepared on the connection (like any other statement) when its shape recurs: a single
/// statement, or statements of [`MAX_ROWS_PER_STATEMENT`] rows each. Other mixes of sizes are prepared for
/// one run and dropped, so the connection's cache does not fill with one-off commands.
pub struct Script {
    sql: String,
    args: SqliteArguments,
    statements: usize,
    full: bool,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            sql: String::new(),
            args: SqliteArguments::default(),
            statements: 0,
            full: true,
        }
    }
}

/// The values of one row of a [`Script::insert`].
pub struct Values<'a> {
    args: &'a mut SqliteArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Values<'_> {
    /// Binds the next column.
    pub fn add<'t, T: Encode<'t, Sqlite> + Type<Sqlite>>(&mut self, value: T) -> &mut Self {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }
}

impl Script {
    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.sql.is_empty()
    }

    /// Appends `head VALUES (?, …), … tail;` for `rows`, split by [`statement_sizes`], with `bind` adding the
    /// `columns` values of each row in order. Rows are taken by value, so owned text is bound without a copy.
    pub fn insert<T>(
        &mut self,
        head: &str,
        columns: usize,
        tail: &str,
        rows: impl IntoIterator<Item = T, IntoIter: ExactSizeIterator>,
        mut bind: impl FnMut(&mut Values<'_>, T),
    ) -> Result<(), sqlx::Error> {
        let mut row_sql = String::with_capacity(2 * columns + 2);
        row_sql.push('(');
        for c in 0..columns {
            row_sql.push_str(if c == 0 { "?" } else { ",?" });
        }
        row_sql.push(')');
        let mut rows = rows.into_iter();
        for size in statement_sizes(rows.len()) {
            self.sql
                .reserve(head.len() + tail.len() + size * (row_sql.len() + 1) + 10);
            self.sql.push_str(head);
            self.sql.push_str(" VALUES ");
            let before = self.args.len();
            let mut values = Values {
                args: &mut self.args,
                error: None,
            };
            for (i, row) in rows.by_ref().take(size).enumerate() {
                if i > 0 {
                    self.sql.push(',');
                }
                self.sql.push_str(&row_sql);
                bind(&mut values, row);
            }
            if let Some(e) = values.error {
                return Err(sqlx::Error::Encode(e));
            }
            let bound = self.args.len() - before;
            if bound != size * columns {
                return Err(sqlx::Error::Encode(
                    format!(
                        "{head} bound {bound} values for {} placeholders",
                        size * columns
                    )
                    .into(),
                ));
            }
            self.sql.push_str(tail);
            self.sql.push_str(";\n");
            self.statements += 1;
            self.full &= size == MAX_ROWS_PER_STATEMENT;
        }
        Ok(())
    }

    /// Runs every statement in the caller's transaction, in order. The first poll hands the command to the
    /// database's thread.
    pub async fn execute(self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        self.run(tx, false).await.map(drop)
    }

    /// Runs the script while `work` runs on this thread, and hands back the bound values ([`Spent`])
    /// with what `work` returned.
    ///
    /// What it buys: SQLite's connection has a thread of its own, and the first poll of a command only
    /// hands the command to it. Polling once by hand, then doing `work` (a bulk writer preparing its
    /// next command), then awaiting the end, keeps both threads busy instead of one waiting for the
    /// other: for a 100,000-row feed this took intake from about 6 s to about 4.5 s (BENCHMARKS.md, B5).
    /// The values come back so the caller frees them on its own thread, not on SQLite's.
    pub async fn execute_alongside<R>(
        self,
        tx: &mut Tx,
        work: impl FnOnce() -> R,
    ) -> Result<(Spent, R), sqlx::Error> {
        let mut run = std::pin::pin!(self.run(tx, true));
        let started =
            std::future::poll_fn(|cx| std::task::Poll::Ready(run.as_mut().poll(cx))).await;
        let out = work();
        let spent = match started {
            std::task::Poll::Ready(ran) => ran?,
            std::task::Poll::Pending => run.await?,
        };
        Ok((spent, out))
    }

    async fn run(self, tx: &mut Tx, keep: bool) -> Result<Spent, sqlx::Error> {
        if self.sql.is_empty() {
            return Ok(Spent { _values: None });
        }
        let kept = keep.then(|| self.args.clone());
        let recurs = self.statements == 1 || self.full;
        sqlx::query_with(sqlx::AssertSqlSafe(self.sql), self.args)
            .persistent(recurs)
            .execute(&mut **tx)
            .await?;
        Ok(Spent { _values: kept })
    }
}

/// The values a [`Script`] bound, handed back by [`Script::execute_alongside`]; dropping it frees them.
pub struct Spent {
    _values: Option<SqliteArguments>,
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
    async fn a_script_runs_its_inserts_in_order_as_one_command_and_refuses_a_short_row() {
        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&dir.path().join("script.db"), 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
             CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER NOT NULL REFERENCES parent (id), n INTEGER)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = begin_write(&pool).await.unwrap();
        let parents: Vec<i64> = (1..=700).collect();
        let children: Vec<(i64, i64)> = (1..=1400).map(|i| (i, (i + 1) / 2)).collect();
        let mut script = Script::default();
        assert!(script.is_empty());
        script
            .insert("INSERT INTO parent (id, name)", 2, "", &parents, |b, id| {
                b.add(*id).add(format!("p{id}"));
            })
            .unwrap();
        // The children refer to parents inserted earlier in the same command (foreign keys are on).
        script
            .insert(
                "INSERT INTO child (id, parent, n)",
                3,
                "",
                &children,
                |b, (id, parent)| {
                    b.add(*id).add(*parent).add(Some(id * 10));
                },
            )
            .unwrap();
        script.execute(&mut tx).await.unwrap();
        let (parents_stored, children_stored, last): (i64, i64, String) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM parent), (SELECT sum(n) FROM child), (SELECT name FROM parent WHERE id = 700)",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(
            (parents_stored, children_stored),
            (700, 10 * 1400 * 1401 / 2)
        );
        assert_eq!(last, "p700");

        let mut short = Script::default();
        let err = short
            .insert("INSERT INTO parent (id, name)", 2, "", &[1_i64], |b, id| {
                b.add(*id);
            })
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("bound 1 values for 2 placeholders"),
            "{err}"
        );
        tx.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn only_scripts_whose_shape_recurs_stay_prepared() {
        use sqlx::Connection;

        let dir = tempfile::tempdir().unwrap();
        let pool = connect(&dir.path().join("cache.db"), 1, Duration::from_secs(5))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        let mut tx = begin_write(&pool).await.unwrap();
        let mut next = 0_i64;
        let mut run = async |tx: &mut Tx, rows: usize| {
            let ids: Vec<i64> = (next + 1..=next + rows as i64).collect();
            next += rows as i64;
            let mut script = Script::default();
            script
                .insert("INSERT INTO t (id)", 1, "", ids, |b, id| {
                    b.add(id);
                })
                .unwrap();
            let before = tx.cached_statements_size();
            script.execute(tx).await.unwrap();
            tx.cached_statements_size() - before
        };
        assert_eq!(run(&mut tx, 3).await, 0, "2 + 1 rows: prepared for one run");
        assert_eq!(run(&mut tx, 4).await, 1, "one statement: kept");
        assert_eq!(run(&mut tx, 4).await, 0, "and found again");
        assert_eq!(run(&mut tx, 1024).await, 1, "two full statements: kept");
        assert_eq!(run(&mut tx, 1025).await, 0, "512 + 512 + 1 rows: not kept");
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(stored, 3 + 4 + 4 + 1024 + 1025);
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
    fn rows_are_split_into_power_of_two_statements() {
        assert_eq!(
            statement_sizes(1200).collect::<Vec<_>>(),
            [512, 512, 128, 32, 16]
        );
        assert_eq!(statement_sizes(0).count(), 0);
        assert_eq!(statement_sizes(1).collect::<Vec<_>>(), [1]);
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
