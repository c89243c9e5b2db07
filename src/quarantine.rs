//! Per-connector quarantine (a circuit breaker): after `quarantine_after` consecutive vendor failures
//! (anything retried but a 429), or at once when the vendor refuses the credentials for good (again
//! after the credential rule's retry), the workers stop claiming the connector's removals, so their attempts are not spent while the vendor is down; a probe (the
//! connector's read-only `probe`) checks the vendor at growing intervals and resumes it on success.
//! Other connectors are not slowed. The state lives in the store (`connector_state`), so `status`,
//! `/metrics`, a restart and an operator's `connector pause`/`resume` all see the same thing.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::audit::DAEMON;
use crate::connectors::classify::CHECK_THE_CREDENTIALS;
use crate::connectors::{Registry, VendorCall};
use crate::store::Store;
use crate::store::queue::Completion;

/// The waits between probes of a quarantined connector: 1, 2, 5, 10, then every 30 minutes.
pub const PROBE_STEPS: [Duration; 5] = [
    Duration::from_secs(60),
    Duration::from_secs(120),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1800),
];

/// How long a probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The wait after the `probes`-th failed probe.
pub fn probe_wait(probes: i64) -> Duration {
    let i = usize::try_from(probes).unwrap_or(usize::MAX);
    PROBE_STEPS[i.min(PROBE_STEPS.len() - 1)]
}

/// What the workers know about their connectors' health.
#[derive(Debug, Default)]
pub struct Breakers {
    /// Connectors not to claim for (quarantined or paused), as last read from the store.
    inactive: Mutex<HashSet<String>>,
    /// Consecutive vendor failures per connector, since its last answer.
    strikes: Mutex<HashMap<String, u32>>,
    /// Connectors with a probe in flight.
    probing: Mutex<HashSet<String>>,
    /// When the states were last read.
    read_at: Mutex<Option<DateTime<Utc>>>,
}

/// Whether an attempt says the vendor is down (a retry, not a 429), refused the credentials (once, or
/// for good: again after the retry the credential rule allows), or answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Down,
    Refusing,
    Refused,
    Answered,
}

fn verdict(completion: &Completion, calls: &[VendorCall]) -> Verdict {
    match completion {
        Completion::Retry {
            credential_refused: true,
            ..
        } => Verdict::Refusing,
        Completion::Failed { error } if error.ends_with(CHECK_THE_CREDENTIALS) => Verdict::Refused,
        Completion::Retry { .. } if calls.last().and_then(|c| c.http_status) == Some(429) => {
            Verdict::Answered
        }
        Completion::Retry { .. } => Verdict::Down,
        _ => Verdict::Answered,
    }
}

impl Breakers {
    /// Whether the workers may claim for `connector`.
    pub fn is_active(&self, connector: &str) -> bool {
        self.inactive
            .lock()
            .map(|s| !s.contains(connector))
            .unwrap_or(true)
    }

    /// Counts a recorded attempt; returns the reason to quarantine `connector` when this attempt makes
    /// `after` consecutive vendor failures (0: never), or refused the credentials.
    pub fn note(
        &self,
        connector: &str,
        completion: &Completion,
        calls: &[VendorCall],
        after: u32,
    ) -> Option<String> {
        if after == 0 {
            return None;
        }
        let mut strikes = self.strikes.lock().ok()?;
        match verdict(completion, calls) {
            Verdict::Answered => {
                strikes.remove(connector);
                None
            }
            // A refused credential follows the one credential rule of `connectors::classify` (sent
            // once more within the attempt, retried once, in case they are being rotated); it neither
            // counts toward a quarantine nor clears the count.
            Verdict::Refusing => None,
            // Refused again after that retry: the credentials are wrong, and every other removal of
            // the connector would meet the same refusal and fail. The connector is quarantined at
            // once; its probe authenticates, so it resumes once the credentials work again.
            Verdict::Refused => Some(format!(
                "the vendor refused the credentials again after a retry; check the connector's credentials and permissions: it resumes when a probe succeeds, or `offboard connector resume {connector}`"
            )),
            Verdict::Down => {
                let n = strikes.entry(connector.to_string()).or_default();
                *n += 1;
                if *n >= after {
                    strikes.remove(connector);
                    let why = match completion {
                        Completion::Retry { error, .. } => error.clone(),
                        _ => String::new(),
                    };
                    Some(format!(
                        "{after} attempts in a row failed at the vendor; the last: {why}"
                    ))
                } else {
                    None
                }
            }
        }
    }

    /// Quarantines `connector` now (its removals stay queued, attempts untouched).
    pub async fn quarantine(
        &self,
        store: &Store,
        connector: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) {
        if let Ok(mut inactive) = self.inactive.lock() {
            inactive.insert(connector.to_string());
        }
        let next = now + chrono::Duration::from_std(PROBE_STEPS[0]).unwrap_or_default();
        match store
            .set_connector_state(connector, "quarantined", reason, Some(next), DAEMON, now)
            .await
        {
            Ok(true) => tracing::error!(
                connector, reason, next_probe_at = %next,
                "Connector quarantined: its removals wait (no attempts spent) until a probe finds the vendor back, or `offboard connector resume`."
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), connector, "Recording the quarantine failed.")
            }
        }
    }

    /// Reads the states from the store (at most once a second unless `force`), and probes the
    /// quarantined connectors whose probe is due: in a task of its own when `spawn` (the daemon's loop,
    /// which must not wait), else in place (a drain).
    pub async fn refresh(
        self: &Arc<Self>,
        store: &Store,
        registry: &Arc<Registry>,
        now: DateTime<Utc>,
        spawn: bool,
    ) {
        {
            let Ok(mut read_at) = self.read_at.lock() else {
                return;
            };
            if read_at.is_some_and(|t| now - t < chrono::Duration::seconds(1)) {
                return;
            }
            *read_at = Some(now);
        }
        let states = match store.connector_states().await {
            Ok(states) => states,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Reading the connector states failed.");
                return;
            }
        };
        if let Ok(mut inactive) = self.inactive.lock() {
            *inactive = states.iter().map(|s| s.connector.clone()).collect();
        }
        for state in states.into_iter().filter(|s| s.state == "quarantined") {
            let due = state
                .next_probe_at
                .as_deref()
                .and_then(|t| crate::store::parse_ts(t).ok())
                .is_none_or(|t| t <= now);
            if !due {
                continue;
            }
            // One probe per connector at a time.
            let fresh = self
                .probing
                .lock()
                .map(|mut p| p.insert(state.connector.clone()))
                .unwrap_or(false);
            if !fresh {
                continue;
            }
            let this = self.clone();
            let (store, registry) = (store.clone(), registry.clone());
            let probe = async move {
                this.probe(&store, &registry, &state.connector, state.probes, now)
                    .await;
                if let Ok(mut p) = this.probing.lock() {
                    p.remove(&state.connector);
                }
            };
            if spawn {
                tokio::spawn(probe);
            } else {
                probe.await;
            }
        }
    }

    async fn probe(
        &self,
        store: &Store,
        registry: &Registry,
        connector: &str,
        probes: i64,
        now: DateTime<Utc>,
    ) {
        let Some(c) = registry.get(connector) else {
            return;
        };
        let result = tokio::time::timeout(PROBE_TIMEOUT, c.probe()).await;
        match result {
            Ok(Ok(message)) => {
                if let Ok(mut inactive) = self.inactive.lock() {
                    inactive.remove(connector);
                }
                let reason = format!("the probe succeeded: {message}");
                match store
                    .resume_connector(connector, &reason, DAEMON, now)
                    .await
                {
                    Ok(Some(_)) => tracing::warn!(
                        connector,
                        "Connector back from quarantine: its removals run again."
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), connector, "Recording the recovery failed.")
                    }
                }
            }
            outcome => {
                let why = match outcome {
                    Ok(Err(e)) => e.reason,
                    _ => format!("the probe took longer than {} s", PROBE_TIMEOUT.as_secs()),
                };
                let next =
                    now + chrono::Duration::from_std(probe_wait(probes + 1)).unwrap_or_default();
                tracing::warn!(connector, error = %why, next_probe_at = %next, "Quarantined connector: the probe failed.");
                if let Err(e) = store.connector_probe_failed(connector, &why, next).await {
                    tracing::warn!(error = %format!("{e:#}"), connector, "Recording the probe failed.");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_wait_longer_each_time_up_to_half_an_hour() {
        let waits: Vec<u64> = (0..7).map(|n| probe_wait(n).as_secs() / 60).collect();
        assert_eq!(waits, [1, 2, 5, 10, 30, 30, 30]);
    }
}
