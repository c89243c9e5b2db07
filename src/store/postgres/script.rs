//! Multi-row `INSERT`s for PostgreSQL ([`Script`]): each a statement of its own with `$n` placeholders
//! (PostgreSQL runs one statement per prepared command), run in order in the caller's transaction.

use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, Postgres, Type};

use super::Tx;

/// Most rows one statement carries (15 columns × 1,000 rows = 15,000 bound values, below PostgreSQL's
/// limit of 65,535). Each statement stays prepared on its connection (sqlx's cache drops the least used).
const ROWS_PER_STATEMENT: usize = 1000;

/// Multi-row inserts to run in order.
#[derive(Default)]
pub(in crate::store) struct Script {
    statements: Vec<(String, PgArguments)>,
}

/// The values of one row of a [`Script::insert`].
pub(in crate::store) struct Values<'a> {
    args: &'a mut PgArguments,
    error: Option<sqlx::error::BoxDynError>,
}

impl Values<'_> {
    /// Binds the next column.
    pub(in crate::store) fn add<'t, T: Encode<'t, Postgres> + Type<Postgres>>(
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
    /// Appends `head VALUES ($1, …), … tail` for `rows`, with `bind` adding the `columns` values of
    /// each row in order.
    pub(in crate::store) fn insert<T>(
        &mut self,
        head: &str,
        columns: usize,
        tail: &str,
        rows: impl IntoIterator<Item = T, IntoIter: ExactSizeIterator>,
        mut bind: impl FnMut(&mut Values<'_>, T),
    ) -> Result<(), sqlx::Error> {
        let mut rows = rows.into_iter();
        while rows.len() > 0 {
            let size = rows.len().min(ROWS_PER_STATEMENT);
            let mut sql = String::with_capacity(head.len() + tail.len() + size * columns * 7 + 16);
            sql.push_str(head);
            sql.push_str(" VALUES ");
            let mut args = PgArguments::default();
            let mut values = Values {
                args: &mut args,
                error: None,
            };
            let mut n = 0;
            for (i, row) in rows.by_ref().take(size).enumerate() {
                sql.push_str(if i == 0 { "(" } else { ",(" });
                for c in 0..columns {
                    n += 1;
                    if c > 0 {
                        sql.push(',');
                    }
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                sql.push(')');
                bind(&mut values, row);
            }
            if let Some(e) = values.error {
                return Err(sqlx::Error::Encode(e));
            }
            if args.len() != size * columns {
                return Err(sqlx::Error::Encode(
                    format!(
                        "{head} bound {} values for {} placeholders",
                        args.len(),
                        size * columns
                    )
                    .into(),
                ));
            }
            sql.push_str(tail);
            self.statements.push((sql, args));
        }
        Ok(())
    }

    /// Runs every statement in the caller's transaction, in order.
    pub(in crate::store) async fn execute(self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        for (sql, args) in self.statements {
            sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}
