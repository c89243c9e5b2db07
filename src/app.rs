//! Wiring: the database, connectors, the feed scheduler and the workers; run until stopped, or once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::clock::Clock;
use crate::config::Config;
use crate::connectors::Registry;
use crate::feed::{self, PollOutcome};
use crate::http::{Health, HttpState};
use crate::metrics::{Metrics, PollResult};
use crate::store::Store;
use crate::worker::{DrainSummary, Workers};
use std::sync::atomic::Ordering;

/// A built daemon: everything opened, nothing running yet. Cloning it is cheap (shared handles).
#[derive(Clone)]
pub struct App {
    /// The database.
    pub store: Store,
    /// The validated config.
    pub config: Arc<Config>,
    /// The connectors.
    pub registry: Arc<Registry>,
    /// The clock.
    pub clock: Clock,
    /// The HTTP client for feeds.
    pub http: reqwest::Client,
    /// The metrics, shared by the workers, the poller and `/metrics`.
    pub metrics: Arc<Metrics>,
}

/// What `run --once` did.
#[derive(Debug, Clone, Serialize)]
pub struct OnceSummary {
    /// The feed poll, if a feed is configured.
    pub poll: Option<PollSummary>,
    /// The drain of due removals.
    pub drain: DrainSummary,
    /// Removals still pending (not yet due, or waiting for a retry).
    pub pending: i64,
    /// Removals held for approval.
    pub held: i64,
}

/// A poll's result in `run --once` output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum PollSummary {
    /// Ingested.
    Ingested(crate::feed::intake::BatchSummary),
    /// Not modified since the last poll.
    Unchanged {
        /// Batch id.
        batch_id: i64,
    },
    /// Could not be read.
    Failed {
        /// Batch id.
        batch_id: i64,
        /// Why.
        error: String,
    },
}

impl From<PollOutcome> for PollSummary {
    fn from(p: PollOutcome) -> Self {
        match p {
            PollOutcome::Ingested(s) => Self::Ingested(s),
            PollOutcome::Unchanged { batch_id } => Self::Unchanged { batch_id },
            PollOutcome::Failed { batch_id, error } => Self::Failed { batch_id, error },
        }
    }
}

/// The HTTP client of feed polls (a feed URL).
pub fn feed_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("offboard/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTP client")
}

impl App {
    /// Opens the database (applying migrations) and builds the connectors.
    pub async fn build(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let store = Store::open_configured(&config.database).await?;
        let registry = Arc::new(Registry::build(&config, &clock)?);
        let http = feed_client()?;
        let metrics = Arc::new(Metrics::for_connectors(
            config.connectors.iter().map(|c| c.name.clone()).collect(),
        ));
        Ok(Self {
            store,
            config: Arc::new(config),
            registry,
            clock,
            http,
            metrics,
        })
    }

    /// The checkpointer of `[checkpoints]`, if configured.
    pub fn checkpointer(&self) -> anyhow::Result<Option<crate::checkpoint::Checkpointer>> {
        let Some(c) = &self.config.checkpoints else {
            return Ok(None);
        };
        let key = crate::checkpoint::SigningKey::from_secret(&c.signing_key)?;
        Ok(Some(crate::checkpoint::Checkpointer::new(
            self.store.clone(),
            key,
            crate::checkpoint::Sinks {
                file: c.file.clone(),
                log: c.log,
                url: c.url.clone().map(|url| crate::checkpoint::HttpSink {
                    url,
                    token: c.url_token.clone(),
                    client: self.http.clone(),
                }),
            },
            c.every_rows,
            c.every,
        )))
    }

    /// The worker pool of this app.
    pub fn workers(&self) -> Workers {
        Workers::new(
            self.store.clone(),
            self.config.clone(),
            self.registry.clone(),
            self.clock.clone(),
        )
        .with_metrics(self.metrics.clone())
    }

    /// Polls the feed once (if configured), then processes everything due.
    pub async fn run_once(&self) -> anyhow::Result<OnceSummary> {
        scan_inactive(&self.store, &self.config, self.clock.now()).await;
        let poll = match &self.config.feed {
            Some(_) => Some(
                feed::poll_once(&self.store, &self.config, &self.http, self.clock.now())
                    .await?
                    .into(),
            ),
            None => None,
        };
        let drain = self.workers().drain_settled().await?;
        if let Some(mut checkpointer) = self.checkpointer()? {
            checkpointer.checkpoint(self.clock.now()).await?;
        }
        if !self.config.notify.is_empty()
            && let Err(e) = async {
                crate::notify::scan_sla(&self.store, &self.config, self.clock.now()).await?;
                crate::notify::deliver(
                    &self.store,
                    &self.config.notify,
                    &self.http,
                    self.clock.now(),
                )
                .await
            }
            .await
        {
            tracing::warn!(error = %format!("{e:#}"), "Delivering notifications failed; the next run tries again.");
        }
        let (pending, held) = self.store.pending_and_held().await?;
        Ok(OnceSummary {
            poll,
            drain,
            pending,
            held,
        })
    }

    /// Runs the daemon until `shutdown` turns true.
    pub async fn run_until_stopped(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        self.start(shutdown)
            .await?
            .join
            .await
            .context("the daemon task panicked")?
    }

    /// Starts the daemon: the HTTP listener, a feed poll at start and on the schedule (never two at
    /// once), and the workers. Returns once everything listens; `join` ends after `shutdown`.
    pub async fn start(self, shutdown: watch::Receiver<bool>) -> anyhow::Result<Running> {
        let health = Arc::new(Health::default());
        health.poller_alive.store(true, Ordering::Relaxed);
        let workers = self.workers().with_health(health.clone());
        let waker = workers.waker();
        // Several replicas on PostgreSQL: one leads (polls the feed, signs checkpoints, notifies), and
        // work committed on any replica wakes the workers of all.
        let leadership = self.store.leadership(shutdown.clone());
        // Listening is set up in the background: a server restarting as the daemon starts must not
        // stop the start (the workers still look at the queue every idle_poll meanwhile).
        let wake_listener = self.store.is_shared().then(|| {
            let (store, waker, mut stop) = (self.store.clone(), waker.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    match store.wake_listener().await {
                        Ok(Some(listener)) => return listener.run(waker, stop).await,
                        Ok(None) => return,
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "Cannot listen for work from other replicas yet; trying again in 2 s.");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(2)) => waker.notify_one(),
                                _ = stop.changed() => if *stop.borrow() { return },
                            }
                        }
                    }
                }
            })
        });

        let listener = tokio::net::TcpListener::bind(self.config.http.listen)
            .await
            .with_context(|| format!("cannot listen on http.listen {}", self.config.http.listen))?;
        let http_addr = listener.local_addr()?;
        tracing::info!(address = %http_addr, "Listening for /healthz, /readyz and pushes.");
        let router = crate::http::router(HttpState {
            store: self.store.clone(),
            config: self.config.clone(),
            clock: self.clock.clone(),
            wake: waker.clone(),
            health: health.clone(),
            metrics: self.metrics.clone(),
        });
        let mut http_stop = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = http_stop.wait_for(|stop| *stop).await;
                })
                .await
        });

        let console = match &self.config.console {
            Some(_) => {
                let state = crate::console::ConsoleState::new(
                    self.store.clone(),
                    self.config.clone(),
                    self.clock.clone(),
                    waker.clone(),
                )?;
                Some(crate::console::serve(state, shutdown.clone()).await?)
            }
            None => None,
        };
        let console_addr = console.as_ref().map(|(addr, _)| *addr);
        tracing::info!(
            target: "offboard::startup",
            address = %http_addr,
            console = %console_addr.map_or_else(|| "off".to_string(), |a| a.to_string()),
            version = env!("CARGO_PKG_VERSION"),
            database = %self.config.database.describe(),
            connectors = self.config.connectors.len(),
            "offboard started."
        );

        let worker_task = tokio::spawn(workers.run_until_stopped(shutdown.clone()));
        let checkpoints = self
            .checkpointer()?
            .map(|c| tokio::spawn(c.with_leadership(leadership.clone()).run(shutdown.clone())));
        let notifier = (!self.config.notify.is_empty()).then(|| {
            tokio::spawn(crate::notify::run(
                self.store.clone(),
                self.config.clone(),
                self.http.clone(),
                leadership.clone(),
                shutdown.clone(),
            ))
        });

        let mut scheduler = None;
        let mut poller = None;
        if let Some(feed) = &self.config.feed {
            health.poller_alive.store(false, Ordering::Relaxed);
            // Ticks go through a one-slot channel to a single poller task: a slow poll is never
            // overlapped, and ticks that arrive meanwhile collapse into one.
            let (tick_tx, mut tick_rx) = mpsc::channel::<()>(1);
            // The feed is polled at start by the process that leads (SQLite: this one), and by a replica
            // the moment it takes the lead, not at the next scheduled tick.
            let gain_tx = tick_tx.clone();
            let gains = leadership.clone();
            let mut gain_stop = shutdown.clone();
            tokio::spawn(async move {
                let mut led = false;
                loop {
                    let leads = gains.leads();
                    if leads && !led {
                        let _ = gain_tx.try_send(());
                    }
                    led = leads;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = gain_stop.changed() => if *gain_stop.borrow() { break },
                    }
                }
            });
            let poll_leadership = leadership.clone();
            let sched = JobScheduler::new()
                .await
                .context("cannot start the scheduler")?;
            let job_tx = tick_tx.clone();
            let job = Job::new_async(feed.schedule.as_str(), move |_id, _lock| {
                let tx = job_tx.clone();
                Box::pin(async move {
                    if tx.try_send(()).is_err() {
                        tracing::debug!(
                            "A feed poll is still running; this tick is folded into the next poll."
                        );
                    }
                })
            })
            .with_context(|| format!("invalid feed.schedule {:?}", feed.schedule))?;
            sched
                .add(job)
                .await
                .context("cannot schedule the feed poll")?;
            sched.start().await.context("cannot start the scheduler")?;
            scheduler = Some(sched);
            let store = self.store.clone();
            let config = self.config.clone();
            let http = self.http.clone();
            let clock = self.clock.clone();
            let mut stop = shutdown.clone();
            let alive = health.clone();
            let metrics = self.metrics.clone();
            let alert_after =
                chrono::Duration::from_std(feed.alert_after).unwrap_or(chrono::Duration::MAX);
            let mut failing_since: Option<chrono::DateTime<chrono::Utc>> = None;
            let mut inactive_scanned: Option<tokio::time::Instant> = None;
            let waker = waker.clone();
            alive.poller_alive.store(true, Ordering::Relaxed);
            poller = Some(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        tick = tick_rx.recv() => if tick.is_none() { break },
                        _ = stop.changed() => break,
                    }
                    if *stop.borrow() {
                        break;
                    }
                    if !poll_leadership.leads() {
                        tracing::debug!("Another replica leads and polls the feed.");
                        continue;
                    }
                    // The apps' last-login exports are read at the first tick and then daily:
                    // inactivity is counted in days, and each scan is a batch of its own.
                    if inactive_scanned.is_none_or(|t: tokio::time::Instant| {
                        t.elapsed() >= Duration::from_secs(86_400)
                    }) {
                        scan_inactive(&store, &config, clock.now()).await;
                        inactive_scanned = Some(tokio::time::Instant::now());
                    }
                    match feed::poll_once(&store, &config, &http, clock.now()).await {
                        Ok(PollOutcome::Ingested(s)) => {
                            failing_since = None;
                            metrics.poll(PollResult::Ingested);
                            metrics.batch(&s);
                            tracing::info!(
                                batch_id = s.batch_id,
                                rows = s.rows,
                                rejected = s.rejected,
                                new_terminations = s.new_terminations,
                                rescinded = s.rescinded,
                                held = s.held,
                                "Feed polled."
                            );
                            waker.notify_one();
                        }
                        Ok(PollOutcome::Unchanged { batch_id }) => {
                            failing_since = None;
                            metrics.poll(PollResult::Unchanged);
                            tracing::info!(batch_id, "Feed unchanged since the last poll.");
                        }
                        Ok(PollOutcome::Failed { batch_id, error }) => {
                            metrics.poll(PollResult::Failed);
                            let since = *failing_since.get_or_insert_with(|| clock.now());
                            if clock.now() - since >= alert_after {
                                let _ = store
                                    .notify(
                                        &format!("feed_failing:{}", crate::store::ts(since)),
                                        "feed_failing",
                                        &format!("The HR feed has been failing since {since}: leavers are not being seen. Last error: {error}"),
                                        &serde_json::json!({"failing_since": crate::store::ts(since), "batch_id": batch_id}),
                                        clock.now(),
                                    )
                                    .await;
                                tracing::error!(
                                    batch_id, error = %error, failing_since = %since,
                                    "The HR feed has been failing for longer than feed.alert_after; leavers are not being seen. An operator must act."
                                );
                            } else {
                                tracing::warn!(batch_id, error = %error, "Feed poll failed; nothing changed. Retrying at the next tick.");
                            }
                        }
                        Err(e) => {
                            metrics.poll(PollResult::Failed);
                            tracing::warn!(error = %format!("{e:#}"), "Feed poll failed.");
                        }
                    }
                }
                alive.poller_alive.store(false, Ordering::Relaxed);
                drop(tick_tx);
            }));
        }

        let store = self.store.clone();
        let join = tokio::spawn(async move {
            let result = worker_task.await.context("the worker task panicked")?;
            if let Some(notifier) = notifier {
                let _ = tokio::time::timeout(Duration::from_secs(5), notifier).await;
            }
            if let Some(checkpoints) = checkpoints
                && let Ok(checkpointer) = checkpoints.await
            {
                // Signed after the workers recorded their last attempts: the head at shutdown.
                checkpointer.finish().await;
            }
            if let Some(mut sched) = scheduler {
                let _ = sched.shutdown().await;
            }
            if let Some(poller) = poller {
                // A poll commits in one transaction; give it a moment, then leave it (nothing half-written).
                let _ = tokio::time::timeout(Duration::from_secs(10), poller).await;
            }
            match tokio::time::timeout(Duration::from_secs(5), server).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "The HTTP listener failed."),
                Ok(_) => {}
                Err(_) => tracing::warn!("The HTTP listener did not stop within 5 s."),
            }
            if let Some((_, console)) = console {
                let _ = tokio::time::timeout(Duration::from_secs(5), console).await;
            }
            if let Some(listener) = wake_listener {
                let _ = tokio::time::timeout(Duration::from_secs(2), listener).await;
            }
            store.close().await;
            result
        });
        Ok(Running {
            http_addr,
            console_addr,
            join,
        })
    }
}

/// A started daemon.
pub struct Running {
    /// Where the HTTP listener is bound.
    pub http_addr: std::net::SocketAddr,
    /// Where the console listens, when `[console]` is configured.
    pub console_addr: Option<std::net::SocketAddr>,
    /// Ends when the daemon has stopped.
    pub join: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A watch that turns true on SIGTERM or SIGINT.
pub fn shutdown_on_signals() -> anyhow::Result<watch::Receiver<bool>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping."),
            _ = int.recv() => tracing::info!("SIGINT: stopping."),
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

/// Reads each connector's last-login export (`[connector.inactive]`) and queues the accounts unused
/// past its threshold; a failure is logged and the next tick tries again.
pub async fn scan_inactive(store: &Store, config: &Config, now: chrono::DateTime<chrono::Utc>) {
    for connector in config.connectors.iter().filter(|c| c.inactive.is_some()) {
        match crate::feed::inactive::scan(
            store,
            connector,
            &config.safety,
            crate::audit::DAEMON,
            now,
        )
        .await
        {
            Ok(Some(s)) if s.new_terminations + s.rescinded > 0 || s.rejected > 0 => {
                tracing::info!(
                    connector = %connector.name, batch_id = s.batch_id, rows = s.rows,
                    inactive = s.new_terminations, used_again = s.rescinded, rejected = s.rejected, held = s.held,
                    "Inactive accounts scanned."
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                connector = %connector.name, error = %format!("{e:#}"),
                "Scanning the connector's last-login export failed; the next tick tries again."
            ),
        }
    }
}
