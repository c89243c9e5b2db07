//! The notification outbox: events written once (by key) in the transaction of what caused them, and
//! their delivery to each channel (`notify.rs` sends them).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::FromRow;

use super::{Error, Store, Tx};

/// An event waiting for a channel.
#[derive(Debug, Clone, FromRow, Serialize)]
pub struct NotifyEvent {
    /// Row id.
    pub id: i64,
    /// Its idempotency key: the same key is never sent twice to a receiver that keeps them.
    pub key: String,
    /// What happened (`batch_held`, `removal_failed`, ...).
    pub event: String,
    /// When.
    pub at: String,
    /// One line for people.
    pub summary: String,
    /// Details as JSON text (ids and counts; no secrets, no personal data beyond the employee id).
    pub detail: String,
    /// Tries so far to this channel.
    pub attempts: i64,
}

impl Tx {
    /// Adds a notification event in this transaction, once per key.
    pub async fn notify(
        &mut self,
        key: &str,
        event: &str,
        summary: &str,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_tx!(
            self,
            notify::add(key, event, summary, &detail.to_string(), now,)
        )
    }
}

impl Store {
    /// Adds a notification event in a transaction of its own, once per key.
    pub async fn notify(
        &self,
        key: &str,
        event: &str,
        summary: &str,
        detail: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        tx.notify(key, event, summary, detail, now).await?;
        tx.commit().await
    }

    /// Removals not done of active terminations effective by `now`: id, connector, state, employee,
    /// effective time.
    pub async fn open_removals(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String, String, String, String)>, Error> {
        on_pool!(self, notify::open_removals(now))
    }

    /// The events of `kinds` not yet delivered to `channel`, due now, oldest first.
    pub async fn notify_due(
        &self,
        channel: &str,
        kinds: &[&str],
        now: DateTime<Utc>,
        limit: u32,
    ) -> anyhow::Result<Vec<NotifyEvent>> {
        on_pool!(self, notify::due(channel, kinds, now, limit))
    }

    /// Records a delivery (`error` is `None`) or a failed try, due again at `next_at`.
    pub async fn notify_record(
        &self,
        event_id: i64,
        channel: &str,
        error: Option<&str>,
        next_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_pool!(self, notify::record(event_id, channel, error, next_at, now))
    }
}
