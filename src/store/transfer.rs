//! Moving a SQLite database to PostgreSQL (`offboard migrate --to postgres://...`): every row of every
//! table, ids and the audit chain as they are, in one read transaction on the source that holds
//! SQLite's write lock (so no daemon writes meanwhile) and one transaction on the target.

use std::collections::BTreeMap;

use anyhow::Context;
use sqlx::{Column, QueryBuilder, Row, TypeInfo};

use super::{Db, Store};

/// The tables in the order their references need (a row's parent first).
const TABLES: &[&str] = &[
    "people",
    "batches",
    "feed_rejects",
    "terminations",
    "removals",
    "audit_anchor",
    "audit_log",
    "feed_state",
    "checkpoint_outbox",
    "connector_state",
    "notify_events",
    "notify_deliveries",
    "holds",
];

/// Tables whose ids PostgreSQL gives from a sequence: it must start after the copied rows.
const SEQUENCED: &[&str] = &["batches", "feed_rejects", "notify_events", "holds"];

/// Rows copied per statement.
const ROWS_PER_INSERT: usize = 500;

/// What a transfer copied: rows per table.
pub type Copied = BTreeMap<&'static str, u64>;

/// One column's value as SQLite's STRICT tables hold it.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl Store {
    /// Copies every row of this SQLite database into `target`, a PostgreSQL database with the schema
    /// applied and no rows. The source is read under its write lock, so it cannot change meanwhile;
    /// the target is written in one transaction, so a failure leaves it empty.
    pub async fn copy_into(&self, target: &Store) -> anyhow::Result<Copied> {
        let Db::Sqlite(source) = &self.db else {
            anyhow::bail!("the configured database is not a SQLite file: nothing to move");
        };
        let Db::Postgres(pg) = &target.db else {
            anyhow::bail!("the target is not a PostgreSQL database");
        };
        let mut read = source
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("cannot lock the SQLite database (is a daemon writing to it?)")?;
        let mut write = pg.begin().await?;
        let existing: i64 = sqlx::query_scalar(
            "SELECT (SELECT COUNT(*) FROM audit_log) + (SELECT COUNT(*) FROM batches) + \
                    (SELECT COUNT(*) FROM people)",
        )
        .fetch_one(&mut *write)
        .await?;
        if existing > 0 {
            anyhow::bail!(
                "the target database already holds offboard rows; move into an empty database"
            );
        }
        let mut copied = Copied::new();
        for table in TABLES {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT * FROM {table}")))
                .fetch_all(&mut *read)
                .await
                .with_context(|| format!("cannot read {table}"))?;
            let Some(first) = rows.first() else {
                copied.insert(table, 0);
                continue;
            };
            let columns: Vec<(String, bool)> = first
                .columns()
                .iter()
                .map(|c| (c.name().to_string(), c.type_info().name() == "INTEGER"))
                .collect();
            let names = columns
                .iter()
                .map(|(name, _)| name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let mut values = Vec::with_capacity(chunk.len());
                for row in chunk {
                    let mut one = Vec::with_capacity(columns.len());
                    for (i, (_, integer)) in columns.iter().enumerate() {
                        one.push(if *integer {
                            Value::Int(row.try_get(i)?)
                        } else {
                            Value::Text(row.try_get(i)?)
                        });
                    }
                    values.push(one);
                }
                let mut insert = QueryBuilder::new(format!(
                    "INSERT INTO {table} ({names}) OVERRIDING SYSTEM VALUE "
                ));
                insert.push_values(values, |mut b, row| {
                    for value in row {
                        match value {
                            Value::Int(v) => b.push_bind(v),
                            Value::Text(v) => b.push_bind(v),
                        };
                    }
                });
                insert
                    .build()
                    .execute(&mut *write)
                    .await
                    .with_context(|| format!("cannot write {table}"))?;
            }
            copied.insert(table, rows.len() as u64);
        }
        for table in SEQUENCED {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                   (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )))
            .execute(&mut *write)
            .await?;
        }
        write.commit().await?;
        read.rollback().await?;
        Ok(copied)
    }
}
