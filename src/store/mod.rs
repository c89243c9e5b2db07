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
//! ids given to new rows, the multi-row statements and SQLite's dialect. A PostgreSQL backend is a second
//! directory beside it, and a second variant of [`Store`] and [`Tx`].

pub mod audit_log;
pub mod batches;
pub mod checkpoints;
pub mod connectors;
pub mod ingest;
pub mod leases;
pub mod notify;
pub mod queue;
pub mod reads;
mod sqlite;
pub mod transition;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

/// The database: a pool of connections and the operations the rest of the code may run on it.
/// Cloning it is cheap and shares the pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: sqlx::SqlitePool,
}

/// A write transaction: the changes of one operation, committed together with their audit rows.
pub struct Tx {
    inner: sqlite::Tx,
}

/// What a failed statement reports.
pub type Error = sqlx::Error;

impl Store {
    /// Opens (creating if missing) the database at `path` and brings its schema up to date.
    pub async fn open(
        path: &Path,
        max_connections: u32,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        let store = Self::connect(path, max_connections, busy_timeout).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens (creating if missing) the database at `path` as it is, without migrating it.
    pub async fn connect(
        path: &Path,
        max_connections: u32,
        busy_timeout: Duration,
    ) -> anyhow::Result<Store> {
        Ok(Store {
            pool: sqlite::connect(path, max_connections, busy_timeout).await?,
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
        sqlite::backup(&self.pool, path).await
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        sqlite::migrate(&self.pool).await
    }

    /// Waits for the connections in use and closes them all; the store is not used afterwards.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction. It holds the write lock from the start, so one that reads before it
    /// writes never fails to upgrade its lock.
    pub async fn begin_write(&self) -> Result<Tx, Error> {
        Ok(Tx {
            inner: sqlite::begin_write(&self.pool).await?,
        })
    }

    /// The SQLite pool underneath, for tests and tools that read the database file directly. Offboard's own
    /// code goes through the operations.
    pub fn sqlite_pool(&self) -> &sqlx::SqlitePool {
        &self.pool
    }
}

impl Tx {
    /// Makes the transaction's changes durable.
    pub async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }

    /// Drops the transaction's changes.
    pub async fn rollback(self) -> Result<(), Error> {
        self.inner.rollback().await
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
