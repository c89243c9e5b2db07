//! Workers: claim due removals under a lease, call the connector outside any transaction, record
//! the outcome (fenced), retry with backoff; per-connector and global concurrency limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sqlx::SqlitePool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backoff;
use crate::clock::Clock;
use crate::config::{Config, ConnectorConfig};
use crate::connectors::{
    CallLog, ConnectorError, ErrorClass, Registry, RemovalOutcome, Resolution, Target,
};
use crate::queue::{self, Applied, Claimed, Completion};

/// What a drain did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct DrainSummary {
    /// Attempts made.
    pub attempts: u64,
    /// Removals that ended done.
    pub done: u64,
    /// Removals that ended planned (dry-run).
    pub planned: u64,
    /// Attempts rescheduled for a retry.
    pub retried: u64,
    /// Removals that ended failed.
    pub failed: u64,
    /// Removals cancelled at the re-check.
    pub cancelled: u64,
    /// Late completions refused by the fence.
    pub stale: u64,
}

impl DrainSummary {
    fn add(&mut self, completion: &Completion, applied: Applied) {
        self.attempts += 1;
        if applied == Applied::Stale {
            self.stale += 1;
            return;
        }
        match completion {
            Completion::Done { .. } => self.done += 1,
            Completion::Planned { .. } => self.planned += 1,
            Completion::Retry { .. } => self.retried += 1,
            Completion::Failed { .. } => self.failed += 1,
            Completion::Cancelled { .. } => self.cancelled += 1,
        }
    }
}

/// The worker pool for one daemon.
#[derive(Clone)]
pub struct Workers {
    pool: SqlitePool,
    config: Arc<Config>,
    registry: Arc<Registry>,
    clock: Clock,
    owner: String,
    wake: Arc<Notify>,
    global: Arc<Semaphore>,
    per_connector: Arc<HashMap<String, Arc<Semaphore>>>,
    health: Arc<crate::http::Health>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Workers {
    /// Builds the pool; `owner` names this process in leases.
    pub fn new(
        pool: SqlitePool,
        config: Arc<Config>,
        registry: Arc<Registry>,
        clock: Clock,
    ) -> Self {
        let per_connector = config
            .connectors
            .iter()
            .map(|c| (c.name.clone(), Arc::new(Semaphore::new(c.concurrency))))
            .collect();
        let owner = format!(
            "{}:{}:{:08x}",
            hostname(),
            std::process::id(),
            rand::random::<u32>()
        );
        Self {
            global: Arc::new(Semaphore::new(config.workers.concurrency)),
            pool,
            config,
            registry,
            clock,
            owner,
            wake: Arc::new(Notify::new()),
            per_connector: Arc::new(per_connector),
            health: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Counts attempts and times to revoke in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Reports each turn of the loop to `health` (for `/readyz`).
    pub fn with_health(mut self, health: Arc<crate::http::Health>) -> Self {
        self.health = health;
        self
    }

    /// A handle that wakes the dispatcher when new work was committed.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The lease owner name of this process.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Claims what is due for every connector with free capacity and starts a task for each claim.
    async fn dispatch(
        &self,
        tasks: &mut JoinSet<(Completion, Applied)>,
        due_by: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<usize> {
        let now = self.clock.now();
        queue::reclaim_expired(&self.pool, now).await?;
        let mut started = 0;
        for connector in &self.config.connectors {
            let Some(sem) = self.per_connector.get(&connector.name) else {
                continue;
            };
            let free = self.global.available_permits().min(sem.available_permits());
            if free == 0 {
                continue;
            }
            let claimed = queue::claim_due_by(
                &self.pool,
                &self.owner,
                &connector.name,
                u32::try_from(free).unwrap_or(u32::MAX),
                self.config.workers.lease,
                now,
                due_by,
            )
            .await?;
            for claim in claimed {
                let (Ok(g), Ok(c)) = (
                    self.global.clone().try_acquire_owned(),
                    sem.clone().try_acquire_owned(),
                ) else {
                    // Only this dispatcher takes permits, so this cannot happen; the lease returns the row.
                    tracing::error!(
                        removal_id = claim.id,
                        "No free worker for a claimed removal."
                    );
                    continue;
                };
                let this = self.clone();
                let connector = connector.clone();
                tasks.spawn(async move { this.execute(claim, connector, (g, c)).await });
                started += 1;
            }
        }
        Ok(started)
    }

    /// Runs until `shutdown` turns true: claims due work, waits for it to become due, and on
    /// shutdown stops claiming and waits up to `workers.shutdown_grace` for calls in flight.
    pub async fn run_until_stopped(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tasks = JoinSet::new();
        let names: Vec<String> = self
            .config
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .collect();
        loop {
            self.health.beat();
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            let started = match self.dispatch(&mut tasks, self.clock.now()).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "Claiming removals failed; trying again shortly.");
                    0
                }
            };
            if started > 0 {
                continue;
            }
            let now = self.clock.now();
            let idle = self.config.workers.idle_poll;
            let free: Vec<String> = names
                .iter()
                .filter(|n| {
                    self.global.available_permits() > 0
                        && self
                            .per_connector
                            .get(*n)
                            .is_some_and(|s| s.available_permits() > 0)
                })
                .cloned()
                .collect();
            let wait = match queue::next_wakeup(&self.pool, &free).await {
                Ok(Some(at)) => (at - now)
                    .to_std()
                    .unwrap_or(Duration::from_millis(50))
                    .max(Duration::from_millis(50))
                    .min(idle),
                Ok(None) => idle,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "Reading the queue failed.");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        // The sender is gone, so no stop request can ever arrive and `changed` would
                        // return at once on every turn: stop rather than spin.
                        tracing::warn!("The shutdown signal handler is gone; stopping.");
                        break;
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "Stopping: waiting for calls in flight.");
            let grace = self.config.workers.shutdown_grace;
            let drained =
                tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
                    .await;
            if drained.is_err() {
                tracing::warn!(
                    abandoned = tasks.len(),
                    "Calls still in flight after the shutdown grace were abandoned; their leases will expire and they will run again."
                );
                tasks.abort_all();
            }
        }
        Ok(())
    }

    /// Processes everything that was due when it started, until none of it is left and nothing is
    /// in flight (for `run --once` and tests). A retry is always scheduled after that moment, so
    /// each removal gets at most one attempt per drain, whatever the jitter drew.
    pub async fn drain(&self) -> anyhow::Result<DrainSummary> {
        let mut tasks = JoinSet::new();
        let mut summary = DrainSummary::default();
        let started_at = self.clock.now();
        loop {
            let started = self.dispatch(&mut tasks, started_at).await?;
            if started == 0 && tasks.is_empty() {
                break;
            }
            if let Some(result) = tasks.join_next().await {
                let (completion, applied) = result?;
                summary.add(&completion, applied);
            }
        }
        Ok(summary)
    }

    /// Processes one claimed removal and records its outcome.
    async fn execute(
        &self,
        claim: Claimed,
        connector: ConnectorConfig,
        _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ) -> (Completion, Applied) {
        // At ERROR level so the span (and its fields) exists whatever level the filter lets through.
        let span = tracing::error_span!(
            "removal",
            removal_id = claim.id,
            connector = %claim.connector,
            attempt = claim.attempt
        );
        async move {
            let calls = CallLog::default();
            let completion = self.attempt(&claim, &connector, &calls).await;
            log_completion(&completion);
            let calls = calls.take();
            let applied = loop {
                // The vendor call happened: its record must land even if the database is briefly busy.
                match queue::complete(&self.pool, &claim, &calls, &completion, self.clock.now()).await {
                    Ok(applied) => break applied,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "Recording the outcome failed; retrying.");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            if applied == Applied::Stale {
                tracing::warn!("The lease expired before this attempt finished; its late result was refused.");
            }
            self.record_metrics(&claim, &completion, applied);
            self.wake.notify_one();
            (completion, applied)
        }
        .instrument(span)
        .await
    }

    /// Resolves, re-checks and removes, and turns the result into a completion.
    async fn attempt(
        &self,
        claim: &Claimed,
        config: &ConnectorConfig,
        calls: &CallLog,
    ) -> Completion {
        let Some(connector) = self.registry.get(&claim.connector) else {
            return Completion::Failed {
                error: format!("connector {} is not configured", claim.connector),
            };
        };
        let Some(account) = claim.account.clone() else {
            return Completion::Failed {
                error: "no account key could be made for this person".into(),
            };
        };
        let target = Target {
            removal_id: claim.id,
            attempt: claim.attempt,
            account,
            person: claim.person.clone(),
            calls: calls.clone(),
        };
        let remote = match connector.resolve(&target).await {
            Ok(Resolution::Found(remote)) => remote,
            Ok(Resolution::NotFound) if config.dry_run => {
                return Completion::Planned {
                    would: "nothing: the vendor has no such account".into(),
                    remote_id: None,
                };
            }
            Ok(Resolution::NotFound) => {
                return Completion::Done {
                    outcome: RemovalOutcome::AlreadyAbsent.as_str().into(),
                    remote_id: None,
                };
            }
            Ok(Resolution::Ambiguous(n)) => {
                return Completion::Failed {
                    error: format!("{n} accounts match, needs a human"),
                };
            }
            Err(e) => return self.failure(claim, config, e),
        };
        if config.dry_run {
            return Completion::Planned {
                would: connector.describe_removal(&target, &remote),
                remote_id: Some(remote.id),
            };
        }
        // The exclusion lists may have grown since planning (a legal hold added today): honour them.
        if let Some(pattern) = crate::planner::exclusion(&self.config.safety, config, &claim.person)
        {
            return Completion::Cancelled {
                reason: format!("excluded: never_remove matches {pattern}"),
            };
        }
        // The HR record may have changed since the claim: never act on a rescinded termination.
        match queue::termination_is_active(&self.pool, claim.termination_id).await {
            Ok(true) => {}
            Ok(false) => {
                return Completion::Cancelled {
                    reason: "rescinded before the call".into(),
                };
            }
            Err(e) => {
                return self.failure(
                    claim,
                    config,
                    ConnectorError::retryable(
                        format!("re-checking the termination failed: {e:#}"),
                        None,
                    ),
                );
            }
        }
        match connector.remove(&target, &remote).await {
            Ok(outcome) => Completion::Done {
                outcome: outcome.as_str().into(),
                remote_id: Some(remote.id),
            },
            Err(e) => self.failure(claim, config, e),
        }
    }

    fn record_metrics(&self, claim: &Claimed, completion: &Completion, applied: Applied) {
        let result = match (applied, completion) {
            (Applied::Stale, _) => "stale",
            (_, Completion::Done { .. }) => "done",
            (_, Completion::Planned { .. }) => "planned",
            (_, Completion::Retry { .. }) => "retry",
            (_, Completion::Failed { .. }) => "failed",
            (_, Completion::Cancelled { .. }) => "cancelled",
        };
        self.metrics.attempt(&claim.connector, result);
        if result == "done" {
            let seconds =
                (self.clock.now() - claim.effective_at).num_milliseconds() as f64 / 1000.0;
            self.metrics.time_to_revoke(&claim.connector, seconds);
        }
    }

    fn failure(
        &self,
        claim: &Claimed,
        config: &ConnectorConfig,
        error: ConnectorError,
    ) -> Completion {
        match error.class {
            ErrorClass::Permanent => Completion::Failed {
                error: error.reason,
            },
            ErrorClass::Retryable { after } => {
                let spent = u32::try_from(claim.attempt - claim.retry_base).unwrap_or(u32::MAX);
                if spent >= config.retry.max_attempts {
                    return Completion::Failed {
                        error: format!("gave up after {spent} attempts: {}", error.reason),
                    };
                }
                let delay = backoff::delay(&config.retry, spent, after, &mut rand::rng());
                let wait = chrono::Duration::from_std(delay.wait).unwrap_or(chrono::Duration::MAX);
                Completion::Retry {
                    error: error.reason,
                    due_at: self.clock.now() + wait,
                    ceiling: delay.ceiling,
                    retry_after: after,
                }
            }
        }
    }
}

fn log_completion(completion: &Completion) {
    match completion {
        Completion::Done { outcome, .. } => tracing::info!(outcome = %outcome, "Removal done."),
        Completion::Planned { would, .. } => {
            tracing::info!(would = %would, "Dry-run: removal planned.")
        }
        Completion::Retry { error, due_at, .. } => {
            tracing::warn!(error = %error, next_due_at = %due_at, "Attempt failed; will retry.")
        }
        Completion::Failed { error } => {
            tracing::error!(error = %error, "Removal failed for good; an operator must act (offboard retry).")
        }
        Completion::Cancelled { reason } => tracing::info!(reason = %reason, "Removal cancelled."),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}
