//! The store: every SQL statement of offboard lives below this module, behind named operations.
//!
//! The rest of the code holds a [`Store`] (cheap to clone) and calls its operations, grouped by what they
//! serve: the removal queue (`queue.rs`: claim, record attempts, reclaim expired leases, operator retry and
//! cancel, listings), held batches (`batches.rs`), ingesting a batch (`ingest.rs`), the one way a removal
//! changes state with its audit row ([`Tx::transition`]), the audit log's rows (`audit_log.rs`, written only
//! through `audit::Chain`), and the reads of the views, the readiness probe and the feed validators
//! (`reads.rs`). These files decide what a change means: which rows it touches in which transaction, its
//! checks and the audit rows that record it.
//!
//! The statements themselves are the backend's: `sqlite/` holds the pool and its pragmas, the migrations, the
//! ids given to new rows, the multi-row statements and SQLite's dialect; `postgres/` the same for
//! PostgreSQL (several replicas on one database). An operation runs its backend's statement through
//! [`on_pool!`] or [`on_tx!`], which pick the backend the store was opened on.

/// Runs the backend statement `module::function(args)` on the store's pool.
macro_rules! on_pool {
    ($store:expr, $module:ident :: $function:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.db {
            $crate::store::Db::Sqlite(pool) => {
                $crate::store::sqlite::$module::$function(pool, $($arg),*).await
            }
            $crate::store::Db::Postgres(pool) => {
                $crate::store::postgres::$module::$function(pool, $($arg),*).await
            }
        }
    };
}

/// Runs the backend statement `module::function(args)` in the write transaction `tx`.
macro_rules! on_tx {
    ($tx:expr, $module:ident :: $function:ident ( $($arg:expr),* $(,)? )) => {
        match &mut $tx.inner {
            $crate::store::TxInner::Sqlite(tx) => {
                $crate::store::sqlite::$module::$function(tx, $($arg),*).await
            }
            $crate::store::TxInner::Postgres(tx) => {
                $crate::store::postgres::$module::$function(tx, $($arg),*).await
            }
        }
    };
}

pub mod audit_log;
pub mod batches;
pub mod checkpoints;
pub mod connectors;
pub mod holds;
pub mod ingest;
pub mod leases;
pub mod notify;
mod postgres;
pub mod queue;
pub mod reads;
mod replicas;
pub mod revoke;
mod rows;
mod sqlite;
mod transfer;
pub mod transition;

pub use replicas::{Leadership, WakeListener};
pub use transfer::Copied;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::config::{Backend, DatabaseConfig};

/// The database: a pool of connections and the operations the rest of the code may run on it.
/// Cloning it is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

/// The backend a store was opened on.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A write transaction: the changes of one operation, committed together with their audit rows.
pub struct Tx {
    inner: TxInner,
}

enum TxInner {
    Sqlite(sqlite::Tx),
    Postgres(postgres::Tx),
}

/// What a failed statement reports.
pub type Error = sqlx::Error;

impl Store {
    /// Opens the configured database (creating a SQLite file if missing) and brings its schema up to
    /// date.
    pub async fn open_configured(config: &DatabaseConfig) -> anyhow::Result<Store> {
        let store = Self::connect_configured(config).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the configured database as it is, without migrating it.
    pub async fn connect_configured(config: &DatabaseConfig) -> anyhow::Result<Store> {
        match &config.backend {
            Backend::Sqlite(path) => {
                Self::connect(path, config.max_connections, config.busy_timeout).await
            }
            Backend::Postgres(pg) => Ok(Store {
                db: Db::Postgres(postgres::connect(pg, config.max_connections).await?),
            }),
        }
    }

    /// Whether this store is on PostgreSQL (several replicas may share it).
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// Opens (creating if missing) the SQLite database at `path` and brings its schema up to date.
    pub async fn open(
        path: &Path,
        max_connections: u32,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let store = Self::connect(path, max_connections, busy_timeout).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating if missing) the SQLite database at `path` as it is, without migrating it.
    pub async fn connect(
        path: &Path,
        max_connections: u32,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        Ok(Store {
            db: Db::Sqlite(sqlite::connect(path, max_connections, busy_timeout).await?),
        })
    }

    /// Why the database at `path` could not be opened for writing, if it could not: the path and the
    /// cause, e.g. "the directory /var/lib/offboard is on a read-only file system". Creates nothing.
    pub fn storage_problem(path: &Path) -> Option<String> {
        sqlite::storage_problem(path)
    }

    /// Writes a consistent copy of the database to `path` (a new file) while the daemon may keep
    /// writing.
    pub async fn backup_to(&self, path: &Path) -> anyhow::Result<()> {
        if path.exists() {
            anyhow::bail!("{} exists: refusing to overwrite it", path.display());
        }
        match &self.db {
            Db::Sqlite(pool) => sqlite::backup(pool, path).await,
            Db::Postgres(_) => anyhow::bail!(
                "`offboard backup` copies a SQLite database; back up PostgreSQL with its own tools (pg_dump, or the server's base backups and WAL archive)"
            ),
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.db {
            Db::Sqlite(pool) => sqlite::migrate(pool).await,
            Db::Postgres(pool) => postgres::migrate(pool).await,
        }
    }

    /// Waits for the connections in use and closes them all; the store is not used afterwards.
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }

    /// Starts a write transaction. It holds the write lock from the start (SQLite's, or the advisory
    /// lock every writer to a PostgreSQL database takes), so one that reads before it writes never
    /// fails to upgrade its lock and the audit chain has one writer at a time.
    pub async fn begin_write(&self) -> Result<Tx, Error> {
        Ok(Tx {
            inner: match &self.db {
                Db::Sqlite(pool) => TxInner::Sqlite(sqlite::begin_write(pool).await?),
                Db::Postgres(pool) => TxInner::Postgres(postgres::begin_write(pool).await?),
            },
        })
    }

    /// The SQLite pool underneath, for tests and tools that read the database file directly; `None` on
    /// PostgreSQL. Offboard's own code goes through the operations.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.db {
            Db::Sqlite(pool) => Some(pool),
            Db::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool underneath, for tests; `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.db {
            Db::Sqlite(_) => None,
            Db::Postgres(pool) => Some(pool),
        }
    }
}

impl Tx {
    /// Makes the transaction's changes durable.
    pub async fn commit(self) -> Result<(), Error> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.commit().await,
            TxInner::Postgres(tx) => tx.commit().await,
        }
    }

    /// Drops the transaction's changes.
    pub async fn rollback(self) -> Result<(), Error> {
        match self.inner {
            TxInner::Sqlite(tx) => tx.rollback().await,
            TxInner::Postgres(tx) => tx.rollback().await,
        }
    }
}

/// Encodes an instant as the store keeps it: fixed-width RFC 3339 UTC with milliseconds, so text order is
/// time order.
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

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        let a = ts("2026-01-02T03:04:05Z".parse().unwrap());
        let b = ts("2026-01-02T03:04:05.5Z".parse().unwrap());
        assert_eq!(a, "2026-01-02T03:04:05.000Z");
        assert!(a < b);
        assert_eq!(parse_ts(&b).unwrap().timestamp_millis() % 1000, 500);
    }
}
