//! The one way a removal changes state outside a worker's attempt (an operator's approve, reject,
//! retry or cancel, a rescinded termination): the row is updated only if it is still in the state
//! the caller saw, and the audit row that records the change goes onto the chain in the same
//! transaction. A worker's attempts are recorded by [`Store::record_and_claim`](super::Store::record_and_claim),
//! many per statement.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::Tx;
use crate::audit::{Chain, Entry};

/// Where a removal goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum To<'a> {
    /// Released to the queue as it is, due when it was due (an approved held removal).
    Released,
    /// Back to the queue from `failed` or `planned`, due now, with a fresh attempt budget and no
    /// refused credentials counted (an operator's retry, an approved dry-run).
    Requeued,
    /// Will not run; the reason is kept as its last error.
    Cancelled(&'a str),
}

impl To<'_> {
    /// The state it ends in.
    pub fn state(self) -> &'static str {
        match self {
            Self::Released | Self::Requeued => "pending",
            Self::Cancelled(_) => "cancelled",
        }
    }
}

impl Tx {
    /// Moves removal `id` from `from` to `to` and pushes `entry` onto `chain` with the move (`from`,
    /// `to`, and a cancellation's reason) in its detail and the new state as its outcome. Fails if the
    /// removal is no longer in `from`.
    pub async fn transition(
        &mut self,
        chain: &mut Chain,
        id: i64,
        from: &str,
        to: To<'_>,
        entry: Entry,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if !on_tx!(self, transition::set_state(id, from, to, now))? {
            anyhow::bail!("removal {id} is no longer {from}");
        }
        let mut detail = json!({"from": from, "to": to.state()});
        if let To::Cancelled(reason) = to {
            detail["reason"] = json!(reason);
        }
        chain.push(now, entry.removal(id).outcome(to.state()).detail(detail));
        Ok(())
    }
}
