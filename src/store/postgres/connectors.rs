//! The statements of connector states (quarantine, pause), on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Tx;
use crate::store::connectors::ConnectorState;
use crate::store::ts;

/// Every connector that is not active.
pub(in crate::store) async fn all(pool: &PgPool) -> Result<Vec<ConnectorState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT connector, state, reason, since, probes, next_probe_at FROM connector_state ORDER BY connector",
    )
    .fetch_all(pool)
    .await
}

/// Sets a connector's state; returns the state it had (`None`: active).
pub(in crate::store) async fn set(
    tx: &mut Tx,
    connector: &str,
    state: &str,
    reason: &str,
    next_probe_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    let before: Option<String> =
        sqlx::query_scalar("SELECT state FROM connector_state WHERE connector = $1")
            .bind(connector)
            .fetch_optional(&mut **tx)
            .await?;
    sqlx::query(
        "INSERT INTO connector_state (connector, state, reason, since, probes, next_probe_at) \
         VALUES ($1, $2, $3, $4, 0, $5) \
         ON CONFLICT (connector) DO UPDATE SET state = $2, reason = $3, since = $4, probes = 0, next_probe_at = $5",
    )
    .bind(connector)
    .bind(state)
    .bind(reason)
    .bind(ts(now))
    .bind(next_probe_at.map(ts))
    .execute(&mut **tx)
    .await?;
    Ok(before)
}

/// Makes a connector active again; returns the state it had (`None`: it was active).
pub(in crate::store) async fn clear(
    tx: &mut Tx,
    connector: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("DELETE FROM connector_state WHERE connector = $1 RETURNING state")
        .bind(connector)
        .fetch_optional(&mut **tx)
        .await
}

/// Records a failed probe of a quarantined connector and when to probe next.
pub(in crate::store) async fn probe_failed(
    tx: &mut Tx,
    connector: &str,
    reason: &str,
    next_probe_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE connector_state SET probes = probes + 1, reason = $1, next_probe_at = $2 \
         WHERE connector = $3 AND state = 'quarantined'",
    )
    .bind(reason)
    .bind(ts(next_probe_at))
    .bind(connector)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
