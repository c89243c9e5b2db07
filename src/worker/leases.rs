//! The workers' leases: expired ones taken back once a second, and at start those of an earlier
//! process of this host that is gone.

use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;

use super::Workers;

impl Workers {
    /// Takes back at once the leases of an earlier process of this host that is gone (a shutdown that
    /// abandoned calls, a kill), so their removals do not wait a whole lease; a live process's leases,
    /// such as a `run --once` beside the daemon, are left alone.
    pub(super) async fn reclaim_abandoned(&self) {
        let host = hostname();
        let me = std::process::id();
        let gone = |owner: &str| previous_owner_is_gone(owner, &self.owner, &host, me);
        let max_attempts = |name: &str| {
            self.config
                .connector(name)
                .map_or(self.config.retry.max_attempts, |c| c.retry.max_attempts)
        };
        match self
            .store
            .reclaim_abandoned(self.clock.now(), gone, max_attempts)
            .await
        {
            Ok(r) if r.requeued + r.failed > 0 => tracing::warn!(
                requeued = r.requeued,
                failed = r.failed,
                "Took back the leases of an earlier run of this daemon that ended with calls in flight; those removals are due again."
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "Reclaiming the leases of an earlier run failed; they will expire.")
            }
        }
    }
}

/// Looks for expired leases at the first turn and then at most once a second: a lease lasts at least
/// ten seconds, and the look is a read the busy loop need not repeat on every turn.
#[derive(Debug, Default)]
pub(super) struct ReclaimSchedule {
    next: Option<chrono::DateTime<chrono::Utc>>,
}

impl ReclaimSchedule {
    pub(super) async fn run(
        &mut self,
        store: &Store,
        clock: &Clock,
        config: &Config,
    ) -> anyhow::Result<()> {
        let now = clock.now();
        if self.next.is_some_and(|next| now < next) {
            return Ok(());
        }
        let max_attempts = |name: &str| {
            config
                .connector(name)
                .map_or(config.retry.max_attempts, |c| c.retry.max_attempts)
        };
        let reclaimed = store.reclaim_expired(now, max_attempts).await?;
        if reclaimed.requeued > 0 {
            tracing::warn!(
                removals = reclaimed.requeued,
                "Leases expired before their attempts finished; those removals are due again."
            );
        }
        if reclaimed.failed > 0 {
            tracing::error!(
                removals = reclaimed.failed,
                "Removals failed for good: their attempts kept ending without a result until the retry limit; an operator must act (offboard retry)."
            );
        }
        let released = store.release_expired_holds(now).await?;
        if !released.is_empty() {
            tracing::info!(
                people = released.len(),
                "Legal holds ended (their `until` passed); the deletions they held are due again."
            );
        }
        self.next = Some(now + chrono::Duration::seconds(1));
        Ok(())
    }
}

/// Whether a lease `owner` (`host:pid:random`, see [`Workers::new`]) belongs to a process of this
/// host that no longer runs: another incarnation with our own pid (a restarted container's PID 1), or
/// a pid with no process. A pid that runs is taken as alive, whatever it now is.
fn previous_owner_is_gone(owner: &str, me: &str, host: &str, my_pid: u32) -> bool {
    let mut parts = owner.rsplitn(3, ':');
    let (Some(_), Some(pid), Some(owner_host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if owner == me || owner_host != host {
        return false;
    }
    pid == my_pid || !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::previous_owner_is_gone;

    #[test]
    fn only_a_gone_process_of_this_host_loses_its_leases_at_start() {
        let me = std::process::id();
        let mine = format!("h1:{me}:0000abcd");
        // An earlier incarnation with our pid (a restarted container's PID 1).
        assert!(previous_owner_is_gone(
            &format!("h1:{me}:1234abcd"),
            &mine,
            "h1",
            me
        ));
        // Ourselves, another host, a live process (pid 1 always runs), garbage.
        assert!(!previous_owner_is_gone(&mine, &mine, "h1", me));
        assert!(!previous_owner_is_gone("h2:4194304:00", &mine, "h1", me));
        assert!(!previous_owner_is_gone("h1:1:00", &mine, "h1", me));
        assert!(!previous_owner_is_gone("nonsense", &mine, "h1", me));
        // A pid above the kernel's maximum never runs.
        assert!(previous_owner_is_gone("h1:4194305:00", &mine, "h1", me));
    }
}
