//! Several replicas on one PostgreSQL database: which one does the once-per-deployment work
//! ([`Leadership`]: the feed poll, checkpoints, notifications), and how a change committed on one wakes
//! the workers of all ([`WakeListener`], `LISTEN`/`NOTIFY`). On SQLite there is one process: it always
//! leads and nothing needs to be heard from elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgListener};
use tokio::sync::{Notify, watch};

use super::postgres::{LEADER_LOCK, WAKE_CHANNEL};
use super::{Db, Store, Tx, TxInner};

/// How often a replica that does not lead tries to take the lead, and how often the leader checks that
/// its session (which holds the lock) is alive.
const LEADER_CHECK: Duration = Duration::from_secs(2);

/// Whether this replica leads: polls the feed, writes checkpoints, delivers notifications. Cheap to
/// clone; every clone sees the same flag.
#[derive(Debug, Clone)]
pub struct Leadership {
    leads: Arc<AtomicBool>,
    gained: Arc<Notify>,
}

impl Leadership {
    /// A process that always leads (SQLite, or a one-off command).
    pub fn always() -> Self {
        Self {
            leads: Arc::new(AtomicBool::new(true)),
            gained: Arc::new(Notify::new()),
        }
    }

    /// Whether this replica leads now.
    pub fn leads(&self) -> bool {
        self.leads.load(Ordering::Relaxed)
    }

    /// Resolves the next time this replica takes the lead.
    pub async fn next_gain(&self) {
        self.gained.notified().await;
    }

    fn set(&self, leads: bool) {
        let before = self.leads.swap(leads, Ordering::Relaxed);
        if leads && !before {
            tracing::info!(
                "This replica now leads: it polls the feed, writes checkpoints and delivers notifications."
            );
            self.gained.notify_waiters();
        } else if !leads && before {
            tracing::warn!(
                "This replica no longer leads (its database session ended); another replica takes over."
            );
        }
    }
}

/// Hears the changes other replicas commit that give workers something to do.
pub struct WakeListener {
    listener: PgListener,
}

impl WakeListener {
    /// Wakes `waker` on every notification, and once after each reconnection (notifications sent while
    /// the connection was down are lost, so the workers look at the queue themselves), until `stop`.
    pub async fn run(mut self, waker: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                heard = self.listener.try_recv() => match heard {
                    Ok(_) => waker.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "Listening for work from other replicas failed; trying again.");
                        tokio::time::sleep(LEADER_CHECK).await;
                        waker.notify_one();
                    }
                },
                _ = stop.changed() => {
                    if *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

impl Store {
    /// Starts following which replica leads: on SQLite this process always does; on PostgreSQL the
    /// replica whose session holds the leader's advisory lock does. A leader whose session ends (the
    /// process died, the node was lost, the server restarted) loses the lock; another replica takes it
    /// within a few seconds. The task ends at `stop`.
    pub fn leadership(&self, stop: watch::Receiver<bool>) -> Leadership {
        let Db::Postgres(pool) = &self.db else {
            return Leadership::always();
        };
        let leadership = Leadership {
            leads: Arc::new(AtomicBool::new(false)),
            gained: Arc::new(Notify::new()),
        };
        let options = pool.connect_options().as_ref().clone();
        let flag = leadership.clone();
        tokio::spawn(async move {
            let mut stop = stop;
            let mut session: Option<PgConnection> = None;
            loop {
                match lead(&options, &mut session, flag.leads()).await {
                    Ok(leads) => flag.set(leads),
                    Err(e) => {
                        tracing::debug!(error = %e, "Cannot reach the database to take or keep the lead.");
                        session = None;
                        flag.set(false);
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(LEADER_CHECK) => {}
                    _ = stop.changed() => {
                        if *stop.borrow() {
                            break;
                        }
                    }
                }
            }
            // Stopping: the lead goes with the session, without a warning.
            flag.leads.store(false, Ordering::Relaxed);
            if let Some(conn) = session {
                let _ = conn.close().await;
            }
        });
        leadership
    }

    /// Listens for the changes other replicas commit that give workers something to do; `None` on
    /// SQLite.
    pub async fn wake_listener(&self) -> anyhow::Result<Option<WakeListener>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(WAKE_CHANNEL).await?;
        Ok(Some(WakeListener { listener }))
    }
}

/// Whether this replica leads after one check: opens the session if there is none (with short TCP
/// keepalives, so the server notices a lost node and frees the lock within about half a minute), checks
/// that a leader's session is alive, or tries to take the free lock.
async fn lead(
    options: &sqlx::postgres::PgConnectOptions,
    session: &mut Option<PgConnection>,
    leads: bool,
) -> Result<bool, sqlx::Error> {
    let conn = match session {
        Some(conn) => conn,
        None => {
            let mut conn = PgConnection::connect_with(options).await?;
            for setting in [
                "SET tcp_keepalives_idle = 10",
                "SET tcp_keepalives_interval = 5",
                "SET tcp_keepalives_count = 3",
            ] {
                sqlx::query(setting).execute(&mut conn).await?;
            }
            session.insert(conn)
        }
    };
    if leads {
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        return Ok(true);
    }
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut *conn)
        .await
}

impl Tx {
    /// Tells every replica's workers, when this transaction commits, that there may be work for them now
    /// (new or released removals). Nothing to do on SQLite, where the caller wakes its own workers.
    pub async fn announce_work(&mut self) -> Result<(), super::Error> {
        if let TxInner::Postgres(tx) = &mut self.inner {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(WAKE_CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}
