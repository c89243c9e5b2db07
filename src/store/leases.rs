//! Leases taken back: expired ones (the worker that held them stopped or outlived them), and those of a
//! process of this host that is gone; the removals are due again, or `failed` when their attempts are
//! spent. Audited as `lease_expired`.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::queue::Reclaimed;
use super::{Store, Tx};
use crate::audit::{self, Entry};

impl Store {
    /// Returns running removals whose lease expired to `pending`, due from the moment the lease ran out. An
    /// attempt cut short by a crash or a hang counts toward the connector's retry limit (`max_attempts`
    /// gives it for a connector name): a removal whose attempts reached it moves to `failed` instead, so a
    /// removal that brings the daemon down on every attempt ends in the dead-letter state rather than being
    /// tried forever. Audited per removal, in the same transaction.
    pub async fn reclaim_expired(
        &self,
        now: DateTime<Utc>,
        max_attempts: impl Fn(&str) -> u32,
    ) -> anyhow::Result<Reclaimed> {
        // A cheap read first: the write lock is taken only when a lease really expired.
        if !on_pool!(self, queue::any_expired(now))? {
            return Ok(Reclaimed::default());
        }
        let mut tx = self.begin_write().await?;
        let rows = on_tx!(tx, queue::expired(now))?;
        let reclaimed = reclaim(&mut tx, &rows, None, now, max_attempts).await?;
        tx.commit().await?;
        Ok(reclaimed)
    }

    /// Takes back at once the leases whose holder is known to be gone, instead of waiting for them to
    /// expire: `gone(owner)` says so of a lease owner (a process of this host that no longer runs, whose
    /// calls the shutdown abandoned or a kill cut short). The same as an expiry otherwise: the removal is
    /// due again, or `failed` when its attempts are spent; audited as `lease_expired` with the reason.
    pub async fn reclaim_abandoned(
        &self,
        now: DateTime<Utc>,
        gone: impl Fn(&str) -> bool,
        max_attempts: impl Fn(&str) -> u32,
    ) -> anyhow::Result<Reclaimed> {
        let mut tx = self.begin_write().await?;
        let rows: Vec<_> = on_tx!(tx, queue::running())?
            .into_iter()
            .filter(|r| r.lease_owner.as_deref().is_some_and(&gone))
            .collect();
        if rows.is_empty() {
            tx.rollback().await?;
            return Ok(Reclaimed::default());
        }
        let reason = "the process that held the lease is gone (reclaimed at start)";
        let reclaimed = reclaim(&mut tx, &rows, Some(reason), now, max_attempts).await?;
        tx.commit().await?;
        Ok(reclaimed)
    }
}

/// Requeues (or fails, when its attempts are spent) each running removal of `rows`, audited as
/// `lease_expired` with `reason` when one is given.
async fn reclaim(
    tx: &mut Tx,
    rows: &[super::queue::Expired],
    reason: Option<&str>,
    now: DateTime<Utc>,
    max_attempts: impl Fn(&str) -> u32,
) -> anyhow::Result<Reclaimed> {
    let mut chain = audit::Chain::start(tx).await?;
    let mut reclaimed = Reclaimed::default();
    for row in rows {
        let spent = row.attempts - row.retry_base;
        let limit = i64::from(max_attempts(&row.connector));
        let entry = Entry::daemon("lease_expired")
            .employee(&row.employee_id)
            .connector(&row.connector)
            .removal(row.id)
            .attempt(row.attempts);
        let owner = &row.lease_owner;
        if spent >= limit {
            let error = format!(
                "gave up after {spent} attempts: the lease of the last one expired before it finished \
                 (the daemon stopped or the call outlived the lease)"
            );
            on_tx!(tx, queue::fail_expired(row.id, &error, now))?;
            chain.push(
                now,
                entry.outcome("failed").detail(json!({
                    "from": "running", "to": "failed", "lease_owner": owner, "error": error, "reason": reason,
                })),
            );
            reclaimed.failed += 1;
        } else {
            on_tx!(tx, queue::requeue_expired(row.id, now))?;
            chain.push(
                now,
                entry.detail(json!({"from": "running", "to": "pending", "lease_owner": owner, "reason": reason})),
            );
            reclaimed.requeued += 1;
        }
    }
    chain.write(tx).await?;
    Ok(reclaimed)
}
