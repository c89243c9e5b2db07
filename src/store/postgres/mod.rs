//! The PostgreSQL side of the store: the pool and its connection options, the migrations under
//! `migrations_postgres/` (applied under sqlx's advisory lock, so replicas starting together apply them
//! once), write transactions, the ids of new rows, and the statements of each group of operations in
//! PostgreSQL's dialect (`$n` placeholders, `jsonb_to_recordset`, `= ANY($n)`, `LEAST`, `IS NOT DISTINCT
//! FROM`, `FOR UPDATE SKIP LOCKED`). Nothing here decides what a change means: that is `store/*.rs`.
//!
//! Several replicas write to one database. Every write transaction takes one transaction-scoped advisory
//! lock first ([`begin_write`]): the audit chain is one chain (each transaction reads its head and appends
//! after it), and a batch gives its new rows the ids after the largest, so writers take turns as they do
//! on SQLite. The lock is held for a transaction's statements only, never across a vendor call.

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

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Postgres, Transaction};

pub(super) use script::Script;

use crate::config::PostgresConfig;

/// The migrations under `migrations_postgres/`, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations_postgres");

/// A write transaction on the pool.
pub(super) type Tx = Transaction<'static, Postgres>;

/// The advisory lock every write transaction holds ("offboard" in ASCII).
const WRITE_LOCK: i64 = 0x6f66_6662_6f61_7264;

/// The advisory lock of the replica that polls the feed and runs the once-per-deployment tasks.
pub(super) const LEADER_LOCK: i64 = WRITE_LOCK + 1;

/// The channel a committed intake notifies, so every replica's workers look at the queue at once.
pub(super) const WAKE_CHANNEL: &str = "offboard_wake";

/// The connection options of `config`: the URL, the password from its file or variable, TLS.
pub(super) fn options(config: &PostgresConfig) -> anyhow::Result<PgConnectOptions> {
    let mut options: PgConnectOptions = config
        .url
        .parse()
        .with_context(|| format!("database.url {}", config.redacted_url()))?;
    options = options.application_name("offboard");
    if let Some(password) = &config.password {
        options = options.password(password.expose());
    }
    if let Some(mode) = &config.sslmode {
        let mode: PgSslMode = mode
            .parse()
            .with_context(|| format!("database.sslmode {mode:?}"))?;
        options = options.ssl_mode(mode);
    }
    if let Some(ca) = &config.ssl_root_cert {
        options = options.ssl_root_cert(ca);
    }
    Ok(options)
}

/// Opens a pool of connections to the server.
pub(super) async fn connect(
    config: &PostgresConfig,
    max_connections: u32,
) -> anyhow::Result<PgPool> {
    let options = options(config)?;
    PgPoolOptions::new()
        .max_connections(max_connections.max(2))
        .acquire_timeout(config.connect_timeout)
        .connect_with(options)
        .await
        .with_context(|| format!("cannot connect to the database {}", config.redacted_url()))
}

/// Runs every pending migration (sqlx takes an advisory lock around them).
pub(super) async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("cannot apply the database migrations")
}

/// Starts a write transaction holding the store's write lock.
pub(super) async fn begin_write(pool: &PgPool) -> Result<Tx, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The largest id of `table` (0 when empty), read under the write lock: nobody else inserts until the
/// caller commits, so it may give its new rows the ids after it.
pub(super) async fn max_id(tx: &mut Tx, table: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COALESCE(MAX(id), 0)::BIGINT FROM {table}"
    )))
    .fetch_one(&mut **tx)
    .await
}
