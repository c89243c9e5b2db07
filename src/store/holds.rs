//! Legal holds: while a person has a hold in force (not released, its `until` not passed), the
//! destructive stages of their removals (a deletion; see `ConnectorConfig::destructive`) wait in
//! the state `on_hold`; stages that only remove access still run. A hold comes from an operator
//! (`offboard hold add`) or from the feed (`feed.legal_hold_attribute`). The claim transaction puts
//! a held person's due destructive removal on hold before it claims, so no deletion of a held person
//! is ever claimed. Every change is audited.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::FromRow;

use super::{Store, Tx, ts};
use crate::audit::{self, Chain, Entry};

/// A hold.
#[derive(Debug, Clone, Serialize, FromRow, PartialEq, Eq)]
pub struct Hold {
    /// Its id.
    pub id: i64,
    /// The person.
    pub employee_id: String,
    /// Why (a case or matter reference).
    pub reason: String,
    /// When it ends by itself, if it does.
    pub until: Option<String>,
    /// `cli` or `feed`.
    pub source: String,
    /// Who placed it.
    pub created_by: String,
    /// When.
    pub created_at: String,
}

/// Each connector's destructive stages, which a hold stops: (connector, stage actions).
pub type HoldStages<'a> = &'a [(String, Vec<String>)];

impl Store {
    /// The holds not released.
    pub async fn holds(&self) -> anyhow::Result<Vec<Hold>> {
        Ok(on_pool!(self, holds::open())?)
    }

    /// Places a hold on `employee_id` (an error if one is open) and puts their pending destructive
    /// removals (`stages`) on hold, audited as `hold_added` and `removal_on_hold` by `actor`.
    /// Returns how many removals were put on hold.
    #[allow(clippy::too_many_arguments)]
    pub async fn hold_add(
        &self,
        employee_id: &str,
        reason: &str,
        until: Option<DateTime<Utc>>,
        source: &str,
        stages: HoldStages<'_>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let mut tx = self.begin_write().await?;
        if let Some(open) = on_tx!(tx, holds::of(employee_id))? {
            anyhow::bail!(
                "{employee_id} is already on hold since {} ({}); `offboard hold remove {employee_id}` first to change it",
                open.created_at,
                open.reason
            );
        }
        on_tx!(
            tx,
            holds::insert(employee_id, reason, until, source, actor, now)
        )?;
        let mut chain = Chain::start(&mut tx).await?;
        chain.push(
            now,
            Entry::by(actor, "hold_added")
                .employee(employee_id)
                .detail(json!({"reason": reason, "until": until.map(ts), "source": source})),
        );
        let held = put_on_hold(&mut tx, &mut chain, stages, actor, now).await?;
        chain.write(&mut tx).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Releases `employee_id`'s hold: their on-hold removals are pending again (due when they were
    /// due), audited as `hold_removed` and `removal_released`. Returns how many removals were
    /// released; an error when the person has no open hold.
    pub async fn hold_remove(
        &self,
        employee_id: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<usize> {
        let mut tx = self.begin_write().await?;
        if on_tx!(tx, holds::release(employee_id, actor, now))? == 0 {
            anyhow::bail!("{employee_id} has no hold (`offboard hold list`)");
        }
        let mut chain = Chain::start(&mut tx).await?;
        let released = release(&mut tx, &mut chain, employee_id, actor, now).await?;
        chain.write(&mut tx).await?;
        tx.announce_work().await?;
        tx.commit().await?;
        Ok(released)
    }

    /// Ends the holds whose `until` has passed, as the daemon; returns the people released.
    pub async fn release_expired_holds(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<String>> {
        if !on_pool!(self, holds::any_expired(now))? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let mut chain = Chain::start(&mut tx).await?;
        let people = end_expired(&mut tx, &mut chain, now).await?;
        if people.is_empty() {
            tx.rollback().await?;
            return Ok(people);
        }
        chain.write(&mut tx).await?;
        tx.announce_work().await?;
        tx.commit().await?;
        Ok(people)
    }
}

/// In an ingest's transaction: the holds the feed places and lifts (`safety.legal_hold_attribute`).
/// Each of `flagged` without an open hold gets one (source `feed`); each of `cleared` whose open hold
/// came from the feed is released (a hold an operator placed stays). Then the pending deleting
/// stages of held people go on hold. Returns (placed, lifted).
pub async fn sync_feed_holds(
    tx: &mut Tx,
    chain: &mut Chain,
    attribute: &str,
    flagged: &[String],
    cleared: &[String],
    stages: HoldStages<'_>,
    now: DateTime<Utc>,
) -> anyhow::Result<(usize, usize)> {
    const FEED: &str = "feed";
    // A hold whose `until` has passed ends first (as the daemon would end it), so the feed can place
    // its own where it still flags the person; every open hold left is in force.
    end_expired(tx, chain, now).await?;
    let open = on_tx!(tx, holds::open_in_tx())?;
    let open: std::collections::HashMap<&str, &Hold> =
        open.iter().map(|h| (h.employee_id.as_str(), h)).collect();
    let mut placed = 0;
    for employee_id in flagged.iter().filter(|e| !open.contains_key(e.as_str())) {
        let reason = format!("feed attribute {attribute}");
        on_tx!(
            tx,
            holds::insert(employee_id, &reason, None, FEED, FEED, now)
        )?;
        chain.push(
            now,
            Entry::by(FEED, "hold_added")
                .employee(employee_id)
                .detail(json!({"reason": reason, "until": null, "source": FEED})),
        );
        placed += 1;
    }
    let mut lifted = 0;
    for employee_id in cleared {
        if open
            .get(employee_id.as_str())
            .is_some_and(|h| h.source == FEED)
        {
            on_tx!(tx, holds::release(employee_id, FEED, now))?;
            release(tx, chain, employee_id, FEED, now).await?;
            lifted += 1;
        }
    }
    if placed > 0 {
        put_on_hold(tx, chain, stages, FEED, now).await?;
    }
    Ok((placed, lifted))
}

/// In a write transaction: ends the holds whose `until` has passed (as the daemon), their removals
/// pending again; returns the people this transaction released (another replica may have been first).
async fn end_expired(
    tx: &mut Tx,
    chain: &mut Chain,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let mut released = Vec::new();
    for employee_id in on_tx!(tx, holds::expired(now))? {
        if on_tx!(tx, holds::release(&employee_id, audit::DAEMON, now))? > 0 {
            release(tx, chain, &employee_id, audit::DAEMON, now).await?;
            released.push(employee_id);
        }
    }
    Ok(released)
}

/// In a write transaction: puts the pending removals of `stages` whose person is under a hold in
/// force on hold, each audited (`removal_on_hold`) by `actor`; returns how many. Cheap when no
/// hold is open.
pub(in crate::store) async fn put_on_hold(
    tx: &mut Tx,
    chain: &mut Chain,
    stages: HoldStages<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    if stages.iter().all(|(_, s)| s.is_empty()) || !on_tx!(tx, holds::any_open())? {
        return Ok(0);
    }
    let mut n = 0;
    for (connector, stages) in stages.iter().filter(|(_, s)| !s.is_empty()) {
        for (id, employee) in on_tx!(tx, holds::hold_pending(connector, stages, now))? {
            chain.push(
                now,
                Entry::by(actor, "removal_on_hold")
                    .employee(&employee)
                    .connector(connector.as_str())
                    .removal(id)
                    .detail(json!({"from": "pending", "to": "on_hold", "reason": "legal hold"})),
            );
            n += 1;
        }
    }
    Ok(n)
}

/// In a write transaction: a person's on-hold removals back to pending, each audited.
async fn release(
    tx: &mut Tx,
    chain: &mut Chain,
    employee_id: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    chain.push(now, Entry::by(actor, "hold_removed").employee(employee_id));
    let released = on_tx!(tx, holds::unhold(employee_id, now))?;
    for (id, connector) in &released {
        chain.push(
            now,
            Entry::by(actor, "removal_released")
                .employee(employee_id)
                .connector(connector)
                .removal(*id)
                .detail(json!({"from": "on_hold", "to": "pending", "reason": "legal hold ended"})),
        );
    }
    Ok(released.len())
}
