//! Workers: claim due removals under a lease, call the connector outside any transaction, record
//! the outcome (fenced), retry with backoff; per-connector and global concurrency limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Store;
use serde::Serialize;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::backoff;
use crate::clock::Clock;
use crate::config::{Config, ConnectorConfig};
use crate::connectors::classify::{self, CHECK_THE_CREDENTIALS, CredentialResend, CredentialStep};
use crate::connectors::{
    Bound, CallLog, ConnectorError, ErrorClass, Fault, Registry, RemovalOutcome, Resolution, Target,
};
use crate::metrics::AttemptResult;
use crate::store::queue::{Applied, Attempt, Claimed, Completion};

mod bind;
mod leases;

use bind::Binder;
use leases::{ReclaimSchedule, hostname};

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
    store: Store,
    config: Arc<Config>,
    registry: Arc<Registry>,
    clock: Clock,
    owner: String,
    wake: Arc<Notify>,
    global: Arc<Semaphore>,
    per_connector: Arc<HashMap<String, Arc<Semaphore>>>,
    health: Arc<crate::http::Health>,
    metrics: Arc<crate::metrics::Metrics>,
    breakers: Arc<crate::quarantine::Breakers>,
    /// Each connector's destructive stages: a legal hold stops them.
    hold_stages: Arc<Vec<(String, Vec<String>)>>,
}

impl Workers {
    /// Builds the pool; `owner` names this process in leases.
    pub fn new(store: Store, config: Arc<Config>, registry: Arc<Registry>, clock: Clock) -> Self {
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
            hold_stages: Arc::new(crate::config::hold_stages(&config.connectors)),
            global: Arc::new(Semaphore::new(config.workers.concurrency)),
            store,
            config,
            registry,
            clock,
            owner,
            wake: Arc::new(Notify::new()),
            per_connector: Arc::new(per_connector),
            health: Arc::default(),
            metrics: Arc::default(),
            breakers: Arc::default(),
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

    /// The free slots of each connector that has any, and the free global slots, which the claims of
    /// all connectors share.
    fn wanted(&self) -> (Vec<(String, u32)>, u32) {
        let global = self.global.available_permits();
        let mut wanted = Vec::new();
        if global > 0 {
            for connector in &self.config.connectors {
                let Some(sem) = self.per_connector.get(&connector.name) else {
                    continue;
                };
                // A quarantined or paused connector's removals wait, their attempts untouched.
                if !self.breakers.is_active(&connector.name) {
                    continue;
                }
                let free = global.min(sem.available_permits());
                if free > 0 {
                    wanted.push((
                        connector.name.clone(),
                        u32::try_from(free).unwrap_or(u32::MAX),
                    ));
                }
            }
        }
        (wanted, u32::try_from(global).unwrap_or(u32::MAX))
    }

    /// One turn of the loop: in a single transaction, records the attempts in `finished` (emptying it)
    /// and, with `claim`, claims due work for every connector with free slots; then starts a task per
    /// claim. Returns the recorded attempts with what the fence said, and how many tasks started.
    /// Nothing is written when there is nothing to record and no free slot. On an error `finished` is
    /// left as it was, to be recorded by a later turn.
    async fn turn(
        &self,
        finished: &mut Vec<Attempt>,
        tasks: &mut JoinSet<Attempt>,
        binder: &Binder,
        claim: bool,
        due_by: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<(Vec<(Attempt, Applied)>, usize)> {
        let (wanted, total) = if claim {
            self.wanted()
        } else {
            (Vec::new(), 0)
        };
        if finished.is_empty() && wanted.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let asked: Vec<(&str, u32)> = wanted.iter().map(|(c, n)| (c.as_str(), *n)).collect();
        let turn = self
            .store
            .record_and_claim(
                finished,
                &asked,
                &self.hold_stages,
                total,
                &self.owner,
                self.config.workers.lease,
                self.clock.now(),
                due_by,
            )
            .await?;
        let recorded: Vec<(Attempt, Applied)> = std::mem::take(finished)
            .into_iter()
            .zip(turn.applied)
            .collect();
        for (attempt, applied) in &recorded {
            if *applied == Applied::Stale {
                tracing::warn!(
                    removal_id = attempt.claim.id,
                    connector = %attempt.claim.connector,
                    attempt = attempt.claim.attempt,
                    "The lease expired before this attempt finished; its late result was refused."
                );
            }
            self.record_metrics(&attempt.claim, &attempt.completion, *applied);
            if *applied == Applied::Applied {
                let after = self
                    .config
                    .connector(&attempt.claim.connector)
                    .map_or(0, |c| c.quarantine_after);
                if let Some(reason) = self.breakers.note(
                    &attempt.claim.connector,
                    &attempt.completion,
                    &attempt.calls,
                    after,
                ) {
                    self.breakers
                        .quarantine(
                            &self.store,
                            &attempt.claim.connector,
                            &reason,
                            self.clock.now(),
                        )
                        .await;
                }
            }
        }
        let mut started = 0;
        for claim in turn.claimed {
            let connector = self.config.connector(&claim.connector).cloned();
            let sem = self.per_connector.get(&claim.connector);
            let (Some(connector), Some(sem)) = (connector, sem) else {
                continue;
            };
            let (Ok(g), Ok(c)) = (
                self.global.clone().try_acquire_owned(),
                sem.clone().try_acquire_owned(),
            ) else {
                // Only this loop takes permits, and it claimed no more than were free, so this cannot
                // happen; the lease returns the row.
                tracing::error!(
                    removal_id = claim.id,
                    "No free worker for a claimed removal."
                );
                continue;
            };
            let this = self.clone();
            let binder = binder.clone();
            tasks.spawn(async move { this.execute(claim, connector, &binder, (g, c)).await });
            started += 1;
        }
        Ok((recorded, started))
    }

    /// Runs until `shutdown` turns true: records finished attempts and claims due work, a turn at a
    /// time, and waits for work to become due, a wake-up or a call to finish. On shutdown it stops
    /// claiming, waits up to `workers.shutdown_grace` for calls in flight, and records what finished.
    pub async fn run_until_stopped(
        self,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut tasks = JoinSet::new();
        let mut finished: Vec<Attempt> = Vec::new();
        let mut reclaim = ReclaimSchedule::default();
        let binder = Binder::start(self.store.clone(), self.clock.clone());
        // Alive from the start: `/readyz` must not see a daemon that is taking back its leases as stalled.
        self.health.beat();
        self.reclaim_abandoned().await;
        loop {
            self.health.beat();
            if *shutdown.borrow() {
                break;
            }
            while let Some(result) = tasks.try_join_next() {
                collect(result, &mut finished);
            }
            self.breakers
                .refresh(&self.store, &self.registry, self.clock.now(), true)
                .await;
            if let Err(e) = reclaim.run(&self.store, &self.clock, &self.config).await {
                tracing::warn!(error = %format!("{e:#}"), "Reclaiming expired leases failed; trying again shortly.");
            }
            let failed = match self
                .turn(&mut finished, &mut tasks, &binder, true, self.clock.now())
                .await
            {
                Ok(_) => false,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "Recording or claiming removals failed; trying again shortly.");
                    true
                }
            };
            let now = self.clock.now();
            let idle = self.config.workers.idle_poll;
            let free: Vec<String> = self.wanted().0.into_iter().map(|(name, _)| name).collect();
            let wait = if failed {
                Duration::from_millis(500)
            } else if free.is_empty() {
                // Every slot is busy: the next thing to do comes when a call finishes.
                idle
            } else {
                match self.store.next_wakeup(&free).await {
                    Ok(Some(at)) => (at - now)
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                        .max(Duration::from_millis(50))
                        .min(idle),
                    Ok(None) => idle,
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "Reading the queue failed.");
                        Duration::from_secs(1)
                    }
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
                Some(result) = tasks.join_next(), if !tasks.is_empty() => {
                    collect(result, &mut finished);
                    gather(&mut tasks, &mut finished).await;
                }
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "Stopping: waiting for calls in flight.");
            let grace = self.config.workers.shutdown_grace;
            let drained = tokio::time::timeout(grace, async {
                while let Some(result) = tasks.join_next().await {
                    collect(result, &mut finished);
                }
            })
            .await;
            if drained.is_err() {
                tracing::warn!(
                    abandoned = tasks.len(),
                    "Calls still in flight after the shutdown grace were abandoned; their leases will expire and they will run again."
                );
                tasks.abort_all();
            }
        }
        // The vendor calls happened: their records must land even if the database is briefly busy.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !finished.is_empty() {
            match self
                .turn(&mut finished, &mut tasks, &binder, false, self.clock.now())
                .await
            {
                Ok(_) => {}
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %format!("{e:#}"), "Recording finished attempts failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(
                        error = %format!("{e:#}"),
                        unrecorded = finished.len(),
                        "Finished attempts could not be recorded before stopping; their leases will expire and they will run again."
                    );
                    break;
                }
            }
        }
        Ok(())
    }

    /// Processes everything that was due when it started, until none of it is left and nothing is
    /// in flight (for `run --once` and tests). A retry is always scheduled after that moment, so
    /// each removal gets at most one attempt per drain, whatever the jitter drew.
    pub async fn drain(&self) -> anyhow::Result<DrainSummary> {
        self.drain_claiming(false).await
    }

    /// Like [`Workers::drain`], but also takes what falls due while it runs, retries included, and
    /// waits for what falls due within [`ONCE_HORIZON`] (for `run --once`); it ends when nothing is in
    /// flight and nothing falls due within the horizon. Bounded by each connector's `max_attempts`.
    pub async fn drain_settled(&self) -> anyhow::Result<DrainSummary> {
        self.drain_claiming(true).await
    }

    /// For a drain that takes what falls due: how long until the next removal falls due, when that is
    /// within [`ONCE_HORIZON`] (a retry's short backoff); `None` otherwise, and the drain ends.
    async fn next_due_soon(&self, falling_due: bool) -> anyhow::Result<Option<Duration>> {
        if !falling_due {
            return Ok(None);
        }
        // A quarantined or paused connector's removals are not waited for.
        let names: Vec<String> = self
            .config
            .connectors
            .iter()
            .filter(|c| self.breakers.is_active(&c.name))
            .map(|c| c.name.clone())
            .collect();
        if names.is_empty() {
            return Ok(None);
        }
        let Some(at) = self.store.next_wakeup(&names).await? else {
            return Ok(None);
        };
        let wait = (at - self.clock.now()).to_std().unwrap_or(Duration::ZERO);
        Ok((wait <= ONCE_HORIZON).then_some(wait.max(Duration::from_millis(10))))
    }

    async fn drain_claiming(&self, falling_due: bool) -> anyhow::Result<DrainSummary> {
        let started_at = self.clock.now();
        let mut tasks = JoinSet::new();
        let mut finished: Vec<Attempt> = Vec::new();
        let mut summary = DrainSummary::default();
        let mut reclaim = ReclaimSchedule::default();
        let binder = Binder::start(self.store.clone(), self.clock.clone());
        loop {
            while let Some(result) = tasks.try_join_next() {
                finished.push(result?);
            }
            self.breakers
                .refresh(&self.store, &self.registry, self.clock.now(), false)
                .await;
            reclaim.run(&self.store, &self.clock, &self.config).await?;
            let due_by = if falling_due {
                self.clock.now()
            } else {
                started_at
            };
            match self
                .turn(&mut finished, &mut tasks, &binder, true, due_by)
                .await
            {
                Ok((recorded, started)) => {
                    for (attempt, applied) in &recorded {
                        summary.add(&attempt.completion, *applied);
                    }
                    if started == 0 && tasks.is_empty() {
                        match self.next_due_soon(falling_due).await? {
                            Some(wait) => {
                                tokio::time::sleep(wait).await;
                                continue;
                            }
                            None => break,
                        }
                    }
                }
                // The vendor calls happened: their records must land even if the database is briefly busy.
                Err(e) if !finished.is_empty() => {
                    tracing::warn!(error = %format!("{e:#}"), "Recording the outcome failed; retrying.");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
                Err(e) => return Err(e),
            }
            if let Some(result) = tasks.join_next().await {
                finished.push(result?);
                gather(&mut tasks, &mut finished).await;
            }
        }
        Ok(summary)
    }

    /// Processes one claimed removal and returns how it ended, for the loop to record.
    async fn execute(
        &self,
        claim: Claimed,
        connector: ConnectorConfig,
        binder: &Binder,
        _permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ) -> Attempt {
        // At ERROR level so the span (and its fields) exists whatever level the filter lets through.
        let span = tracing::error_span!(
            "removal",
            removal_id = claim.id,
            connector = %claim.connector,
            attempt = claim.attempt
        );
        async move {
            let calls = CallLog::default();
            let completion = self.attempt(&claim, &connector, binder, &calls).await;
            log_completion(&completion);
            Attempt {
                claim,
                calls: calls.take(),
                completion,
            }
        }
        .instrument(span)
        .await
    }

    /// Resolves, re-checks and removes, and turns the result into a completion.
    async fn attempt(
        &self,
        claim: &Claimed,
        config: &ConnectorConfig,
        binder: &Binder,
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
            bound: claim.bound.as_ref().map(|b| b.account.clone()),
            stage: claim.stage.clone(),
            calls: calls.clone(),
        };
        // A refused credential is sent once more at once on the removal's first refused attempt.
        let mut resend = CredentialResend::for_attempt(claim.credential_refusals);
        // A removal bound by an earlier attempt looks up that account alone (a retry after a lost
        // answer must never reach a second account), and its absence is that attempt's doing.
        let resolution = match &claim.bound {
            Some(binding) => {
                resend
                    .run(|| connector.resolve_bound(&target, &binding.account))
                    .await
            }
            None => resend.run(|| connector.resolve(&target)).await,
        };
        let remote = match (resolution, &claim.bound) {
            (Ok(Resolution::Found(remote)), Some(binding))
                if !remote.id.eq_ignore_ascii_case(&binding.account.id) =>
            {
                return Completion::Failed {
                    error: format!(
                        "the account an earlier attempt acted on (vendor id {}) is gone and the lookup now finds another one (vendor id {}); not touched: needs a human",
                        binding.account.id, remote.id
                    ),
                };
            }
            (Ok(Resolution::NotFound), Some(_)) if claim.stage == crate::connectors::REACTIVATE => {
                return Completion::Failed {
                    error: "the account to reactivate is gone: restore the person's access by hand"
                        .into(),
                };
            }
            (Ok(Resolution::NotFound), Some(binding)) => {
                return Completion::Done {
                    outcome: RemovalOutcome::RemovedUnconfirmed.as_str().into(),
                    remote_id: Some(binding.account.id.clone()),
                };
            }
            (resolution, _) => resolution,
        };
        let remote = match remote {
            Ok(Resolution::Found(remote)) => remote,
            Ok(Resolution::NotFound) if config.dry_run => {
                return Completion::Planned {
                    would: "nothing: the vendor has no such account".into(),
                    remote_id: None,
                };
            }
            // A rehired person's account to give back is gone: a human must restore their access.
            Ok(Resolution::NotFound) if claim.stage == crate::connectors::REACTIVATE => {
                return Completion::Failed {
                    error: "the account to reactivate is gone: restore the person's access by hand"
                        .into(),
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
        // The HR record may have changed since the claim: never act on a rescinded termination (a
        // reactivation exists because of the rescind).
        let checked = if claim.stage == crate::connectors::REACTIVATE {
            // ...unless the person left again since: then their access stays removed.
            self.store
                .terminated_again(claim.termination_id)
                .await
                .map_err(|e| (e, "re-checking the person's terminations failed"))
                .map(|again| again.then_some("terminated again: the account is not reactivated"))
        } else {
            self.store
                .termination_is_active(claim.termination_id)
                .await
                .map_err(|e| (e, "re-checking the termination failed"))
                .map(|active| (!active).then_some("rescinded before the call"))
        };
        // Then the account is bound before the call that acts (unless an earlier attempt did).
        let checked = match (checked, &claim.bound) {
            (Ok(None), None) => {
                let account = Bound {
                    id: remote.id.clone(),
                    key: remote.found_by.clone(),
                };
                binder
                    .bind(claim, account)
                    .await
                    .map_err(|e| {
                        (
                            e,
                            "recording the account before the call failed, nothing was sent",
                        )
                    })
                    // The lease was lost meanwhile: another attempt owns the removal; the fence
                    // refuses whatever this one records.
                    .map(|bound| {
                        (!bound).then_some("the lease expired before the call; nothing was sent")
                    })
            }
            (checked, _) => checked,
        };
        match checked {
            Ok(None) => {}
            Ok(Some(reason)) => {
                return Completion::Cancelled {
                    reason: reason.into(),
                };
            }
            // The store could not answer: nothing was sent; retried like a vendor that did not.
            Err((e, what)) => {
                return self.failure(
                    claim,
                    config,
                    ConnectorError::new(Fault::Transport, format!("{what}: {e:#}")),
                );
            }
        }
        match resend.run(|| connector.remove(&target, &remote)).await {
            // An earlier attempt sent the call that removes and lost the answer.
            Ok(RemovalOutcome::AlreadyAbsent) if claim.bound.is_some() => Completion::Done {
                outcome: RemovalOutcome::RemovedUnconfirmed.as_str().into(),
                remote_id: Some(remote.id),
            },
            Ok(outcome) => Completion::Done {
                outcome: outcome.as_str().into(),
                remote_id: Some(remote.id),
            },
            Err(e) => self.failure(claim, config, e),
        }
    }

    fn record_metrics(&self, claim: &Claimed, completion: &Completion, applied: Applied) {
        let result = match (applied, completion) {
            (Applied::Stale, _) => AttemptResult::Stale,
            (_, Completion::Done { .. }) => AttemptResult::Done,
            (_, Completion::Planned { .. }) => AttemptResult::Planned,
            (_, Completion::Retry { .. }) => AttemptResult::Retry,
            (_, Completion::Failed { .. }) => AttemptResult::Failed,
            (_, Completion::Cancelled { .. }) => AttemptResult::Cancelled,
        };
        self.metrics.attempt(&claim.connector, result);
        // Time to revoke is the first stage's: a later deletion or a reactivation is not.
        if result == AttemptResult::Done && claim.stage_index == 0 {
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
        let (after, credential_refused) = match error.class {
            ErrorClass::Permanent => {
                return Completion::Failed {
                    error: error.reason,
                };
            }
            ErrorClass::CredentialRefused => {
                match classify::credential_step(claim.credential_refusals) {
                    CredentialStep::Fail => {
                        return Completion::Failed {
                            error: format!("{}; {CHECK_THE_CREDENTIALS}", error.reason),
                        };
                    }
                    CredentialStep::RetryOnce(wait) => (Some(wait), true),
                }
            }
            ErrorClass::Retryable { after } => (after, false),
        };
        let spent = u32::try_from(claim.attempt - claim.retry_base).unwrap_or(u32::MAX);
        if spent >= config.retry.max_attempts {
            return Completion::Failed {
                error: format!("gave up after {spent} attempts: {}", error.reason),
            };
        }
        let delay = backoff::delay(&config.retry, spent, after, &mut rand::rng());
        let wait = chrono::Duration::from_std(delay.wait).unwrap_or(chrono::Duration::MAX);
        let error = if credential_refused {
            format!(
                "{} (credentials refused: retrying once, in case they are being rotated)",
                error.reason
            )
        } else {
            error.reason
        };
        Completion::Retry {
            error,
            due_at: self.clock.now() + wait,
            ceiling: delay.ceiling,
            retry_after: after,
            credential_refused,
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

/// How far ahead `run --once` waits for work falling due (a retry after a short backoff) before it
/// ends; what falls due later is the next run's.
pub const ONCE_HORIZON: Duration = Duration::from_secs(60);

/// How long the loop waits, once a call has finished, for more calls to finish before it records them:
/// the attempts that finish within the window share one commit (group commit). A commit with
/// `synchronous=FULL` costs an fsync, so against a fast vendor this multiplies the removals recorded per
/// second; an idle daemon pays at most this much more time to revoke.
const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(2);

/// Group commit only pays off when calls are fast: when the attempt that just finished spent at least
/// this long in vendor calls, the other calls in flight finish spread out over a similar time, so
/// waiting would only delay the claim of the freed slot.
const GROUP_COMMIT_FAST_CALLS: u64 = 10;

/// After a call finished, collects the calls that finish within [`GROUP_COMMIT_WINDOW`], so that one
/// turn records them together; does nothing when the last finished attempt's calls were slow.
async fn gather(tasks: &mut JoinSet<Attempt>, finished: &mut Vec<Attempt>) {
    let fast = finished.last().is_some_and(|a| {
        a.calls.iter().map(|c| c.duration_ms).sum::<u64>() < GROUP_COMMIT_FAST_CALLS
    });
    if !fast {
        return;
    }
    let deadline = tokio::time::Instant::now() + GROUP_COMMIT_WINDOW;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(result)) => collect(result, finished),
            Ok(None) | Err(_) => break,
        }
    }
}

/// Keeps a finished task's attempt; a task that panicked or was aborted leaves its lease to expire.
fn collect(result: Result<Attempt, tokio::task::JoinError>, finished: &mut Vec<Attempt>) {
    match result {
        Ok(attempt) => finished.push(attempt),
        Err(e) => {
            tracing::error!(error = %e, "A removal task ended without a result; its lease will expire and it will run again.")
        }
    }
}
