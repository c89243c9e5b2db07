//! Multi-row `INSERT`s sent to SQLite as one command ([`Script`]), the shapes they are split into, and
//! running a command while the caller goes on working.

use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments, Encode, Sqlite, Type};

use super::Tx;

/// Most rows one multi-row statement carries (15 columns × 512 rows = 7,680 bound values, below SQLite's
/// limit of 32,766).
const MAX_ROWS_PER_STATEMENT: usize = 512;

/// How [`Script::insert`] splits `rows` rows into statements: powers of two of at most
/// [`MAX_ROWS_PER_STATEMENT`], largest first. A multi-row statement is prepared once per size and connection,
/// so a few statement shapes serve any number of rows.
pub(in crate::store) fn statement_sizes(rows: usize) -> impl Iterator<Item = usize> {
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

/// Multi-row `INSERT`s sent to the database as one command, so the caller can prepare the next
/// command while SQLite runs this one (see `store::ingest`). Every value is bound; the SQL holds
/// only placeholders.
///
/// A command is kept prepared on the connection (like any other statement) when its shape recurs: a single
/// statement, or statements of [`MAX_ROWS_PER_STATEMENT`] rows each. Other mixes of sizes are prepared for
/// one run and dropped, so the connection's cache does not fill with one-off commands.
pub(in crate::store) struct Script {
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
pub(in crate::store) struct Values<'a> {
    args: &'a mut SqliteArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Values<'_> {
    /// Binds the next column.
    pub(in crate::store) fn add<'t, T: Encode<'t, Sqlite> + Type<Sqlite>>(
        &mut self,
        value: T,
    ) -> &mut Self {
        if let Err(e) = self.args.add(value) {
            self.error.get_or_insert(e);
        }
        self
    }
}

impl Script {
    /// Appends `head VALUES (?, …), … tail;` for `rows`, split by [`statement_sizes`], with `bind` adding the
    /// `columns` values of each row in order. Rows are taken by value, so owned text is bound without a copy.
    pub(in crate::store) fn insert<T>(
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
    pub(in crate::store) async fn execute(self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        self.run(tx, false).await.map(drop)
    }

    /// Runs the script while `work` runs on this thread, and hands back the bound values ([`Spent`])
    /// with what `work` returned.
    ///
    /// SQLite's connection has a thread of its own, and the first poll of a command only hands the command
    /// to it: polling once by hand, then doing `work`, then awaiting the end keeps both threads busy instead
    /// of one waiting for the other (what this buys: `store::ingest`, `Ingest::write_alongside`). The values
    /// come back so the caller frees them on its own thread, not on SQLite's.
    pub(in crate::store) async fn execute_alongside<R>(
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
pub(in crate::store) struct Spent {
    _values: Option<SqliteArguments>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::{begin_write, connect};
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
    fn rows_are_split_into_power_of_two_statements() {
        assert_eq!(
            statement_sizes(1200).collect::<Vec<_>>(),
            [512, 512, 128, 32, 16]
        );
        assert_eq!(statement_sizes(0).count(), 0);
        assert_eq!(statement_sizes(1).collect::<Vec<_>>(), [1]);
    }
}
