//! The outbox of signed checkpoints on their way to an HTTP sink (`checkpoint::Checkpointer`).

use chrono::{DateTime, Utc};

use super::{Error, Store, sqlite};

impl Store {
    /// Adds a signed checkpoint (its JSON line) to the outbox.
    pub async fn outbox_add(&self, seq: i64, line: &str, now: DateTime<Utc>) -> Result<(), Error> {
        sqlite::checkpoints::add(&self.pool, seq, line, now).await
    }

    /// The checkpoints not yet delivered, oldest first: sequence number and JSON line.
    pub async fn outbox_unsent(&self) -> Result<Vec<(i64, String)>, Error> {
        sqlite::checkpoints::unsent(&self.pool).await
    }

    /// Records a delivery (`error` is `None`) or a failed try.
    pub async fn outbox_record(
        &self,
        seq: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlite::checkpoints::record(&self.pool, seq, error, now).await
    }
}
