//! Connector states: a connector quarantined by the workers (its vendor keeps failing) or paused by an
//! operator has its removals left in the queue, their attempts untouched. Every change is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use super::Store;
use crate::audit::{self, Entry};

/// A connector that is not active.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct ConnectorState {
    /// The connector.
    pub connector: String,
    /// `quarantined` or `paused`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Since when.
    pub since: String,
    /// Failed probes since it was quarantined.
    pub probes: i64,
    /// When the next probe is due (quarantined only).
    pub next_probe_at: Option<String>,
}

impl Store {
    /// The connectors that are not active (quarantined or paused).
    pub async fn connector_states(&self) -> anyhow::Result<Vec<ConnectorState>> {
        Ok(on_pool!(self, connectors::all())?)
    }

    /// Quarantines or pauses a connector (`state`), audited as `connector_quarantined` or
    /// `connector_paused` by `actor`. Pausing wins over a quarantine; a quarantine does not override a
    /// pause. Returns whether the state changed.
    pub async fn set_connector_state(
        &self,
        connector: &str,
        state: &str,
        reason: &str,
        next_probe_at: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.begin_write().await?;
        let current = on_pool!(self, connectors::all())?
            .into_iter()
            .find(|s| s.connector == connector);
        if current
            .as_ref()
            .is_some_and(|c| c.state == "paused" && state == "quarantined")
            || current.as_ref().is_some_and(|c| c.state == state)
        {
            tx.rollback().await?;
            return Ok(false);
        }
        on_tx!(
            tx,
            connectors::set(connector, state, reason, next_probe_at, now)
        )?;
        tx.notify(
            &format!("connector_{state}:{connector}:{}", super::ts(now)),
            if state == "paused" {
                "connector_paused"
            } else {
                "connector_quarantined"
            },
            &format!("Connector {connector} is {state}: {reason}; its removals wait"),
            &json!({"connector": connector, "state": state, "reason": reason}),
            now,
        )
        .await?;
        audit::append(
            &mut tx,
            now,
            Entry::by(
                actor,
                if state == "paused" {
                    "connector_paused"
                } else {
                    "connector_quarantined"
                },
            )
            .connector(connector)
            .outcome(state)
            .detail(json!({"reason": reason, "next_probe_at": next_probe_at.map(super::ts)})),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Makes a connector active again (a probe succeeded, or an operator resumed it), audited as
    /// `connector_resumed`. Returns the state it left (`None`: it was active).
    pub async fn resume_connector(
        &self,
        connector: &str,
        reason: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<String>> {
        let mut tx = self.begin_write().await?;
        let before = on_tx!(tx, connectors::clear(connector))?;
        if before.is_some() {
            tx.notify(
                &format!("connector_resumed:{connector}:{}", super::ts(now)),
                "connector_resumed",
                &format!("Connector {connector} runs again: {reason}"),
                &json!({"connector": connector, "reason": reason}),
                now,
            )
            .await?;
            audit::append(
                &mut tx,
                now,
                Entry::by(actor, "connector_resumed")
                    .connector(connector)
                    .outcome("active")
                    .detail(json!({"from": before, "reason": reason})),
            )
            .await?;
        }
        tx.announce_work().await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Records a failed probe of a quarantined connector and when the next one is due.
    pub async fn connector_probe_failed(
        &self,
        connector: &str,
        reason: &str,
        next_probe_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let mut tx = self.begin_write().await?;
        on_tx!(
            tx,
            connectors::probe_failed(connector, reason, next_probe_at)
        )?;
        tx.commit().await?;
        Ok(())
    }
}
