//! The statement of a removal's state change outside a worker's attempt, on PostgreSQL.

use chrono::{DateTime, Utc};

use super::Tx;
use crate::store::transition::To;
use crate::store::ts;

/// Moves removal `id` from `from` to `to`; returns whether it was still in `from`.
pub(in crate::store) async fn set_state(
    tx: &mut Tx,
    id: i64,
    from: &str,
    to: To<'_>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let sql = match to {
        To::Released => {
            "UPDATE removals SET state = 'pending', updated_at = $1 WHERE id = $2 AND state = $3"
        }
        To::Requeued => {
            "UPDATE removals SET state = 'pending', due_at = $1, retry_base = attempts, credential_refusals = 0, \
             outcome = NULL, last_error = NULL, finished_at = NULL, updated_at = $1 \
             WHERE id = $2 AND state = $3"
        }
        To::Cancelled(_) => {
            "UPDATE removals SET state = 'cancelled', outcome = 'cancelled', last_error = $4, \
             finished_at = $1, updated_at = $1 WHERE id = $2 AND state = $3"
        }
    };
    let mut query = sqlx::query(sql).bind(ts(now)).bind(id).bind(from);
    if let To::Cancelled(reason) = to {
        query = query.bind(reason);
    }
    Ok(query.execute(&mut **tx).await?.rows_affected() == 1)
}
