//! The outbox of signed checkpoints on their way to an HTTP sink (`checkpoint::Checkpointer`).

use chrono::{DateTime, Utc};

use super::{Error, Store};

impl Store {
    /// Adds a signed checkpoint (its JSON line) to the outbox.
    pub async fn outbox_add(&self, seq: i64, line: &str, now: DateTime<Utc>) -> Result<(), Error> {
        on_pool!(self, checkpoints::add(seq, line, now))
    }

    /// The checkpoints not yet delivered, oldest first: sequence number and JSON line.
    pub async fn outbox_unsent(&self) -> Result<Vec<(i64, String)>, Error> {
        on_pool!(self, checkpoints::unsent())
    }

    /// Records a delivery (`error` is `None`) or a failed try.
    pub async fn outbox_record(
        &self,
        seq: i64,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        on_pool!(self, checkpoints::record(seq, error, now))
    }
}
