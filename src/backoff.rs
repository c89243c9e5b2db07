//! Retry delays: exponential backoff with full jitter and a cap, and the vendor's Retry-After.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryPolicy;

/// The delay before the next attempt and the ceiling it was drawn under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay {
    /// How long to wait.
    pub wait: Duration,
    /// The exponential ceiling for this attempt (`initial × factor^(attempt−1)`, at most `max`).
    pub ceiling: Duration,
}

/// The ceiling after `attempt` failed attempts (1-based).
pub fn ceiling(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = policy.initial.as_secs_f64() * policy.factor.powi(exp);
    let max = policy.max.as_secs_f64();
    Duration::from_secs_f64(if secs.is_finite() { secs.min(max) } else { max })
}

/// The delay after `attempt` failed: uniformly random in `[0, ceiling]` (full jitter, so a crowd of
/// failures spreads out), but never shorter than the vendor's `Retry-After`.
pub fn delay(
    policy: &RetryPolicy,
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Delay {
    let ceiling = ceiling(policy, attempt);
    let jittered = Duration::from_secs_f64(rng.random_range(0.0..=ceiling.as_secs_f64()));
    let wait = match retry_after {
        Some(after) => jittered.max(after),
        None => jittered,
    };
    Delay { wait, ceiling }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(3600),
            factor: 2.0,
            max_attempts: 12,
        }
    }

    #[test]
    fn ceiling_grows_exponentially_up_to_the_cap() {
        let p = policy();
        assert_eq!(ceiling(&p, 1), Duration::from_secs(30));
        assert_eq!(ceiling(&p, 2), Duration::from_secs(60));
        assert_eq!(ceiling(&p, 3), Duration::from_secs(120));
        assert_eq!(ceiling(&p, 8), Duration::from_secs(3600));
        assert_eq!(ceiling(&p, u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let p = policy();
        let mut rng = rand::rng();
        let waits: Vec<Duration> = (0..200)
            .map(|_| delay(&p, 3, None, &mut rng).wait)
            .collect();
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(120)));
        let distinct: std::collections::BTreeSet<_> = waits.iter().map(|w| w.as_millis()).collect();
        assert!(distinct.len() > 50, "jitter should spread delays");
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = policy();
        let mut rng = rand::rng();
        for _ in 0..50 {
            let d = delay(&p, 1, Some(Duration::from_secs(90)), &mut rng);
            assert!(d.wait >= Duration::from_secs(90));
        }
    }
}
