//! Per-connector call limits shared by the connector's workers: a token bucket, and a pause that
//! holds every worker of the connector back after the vendor answers 429.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Rate;

/// The limiter of one connector.
#[derive(Debug)]
pub struct Limiter {
    rate: Option<Rate>,
    bucket: tokio::sync::Mutex<Bucket>,
    paused_until: Mutex<Option<Instant>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Limiter {
    /// A limiter allowing `rate` (unlimited when `None`). The bucket starts full: `rate.calls` may
    /// go at once, then one per `per / calls`.
    pub fn new(rate: Option<Rate>) -> Self {
        Self {
            bucket: tokio::sync::Mutex::new(Bucket {
                tokens: rate.map_or(0.0, |r| f64::from(r.calls)),
                last: Instant::now(),
            }),
            rate,
            paused_until: Mutex::new(None),
        }
    }

    /// An unlimited limiter.
    pub fn unlimited() -> Self {
        Self::new(None)
    }

    /// The configured rate.
    pub fn rate(&self) -> Option<Rate> {
        self.rate
    }

    /// Waits until the connector is not paused and a call is allowed, then takes that call.
    pub async fn acquire(&self) {
        loop {
            let pause = self.paused_until.lock().ok().and_then(|p| *p);
            if let Some(until) = pause.filter(|u| *u > Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let Some(rate) = self.rate else {
                return;
            };
            let capacity = f64::from(rate.calls);
            let per_call = rate.per.as_secs_f64() / capacity;
            let wait = {
                let mut bucket = self.bucket.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(bucket.last).as_secs_f64() / per_call;
                bucket.tokens = (bucket.tokens + refill).min(capacity);
                bucket.last = now;
                if bucket.tokens >= 1.0 {
                    bucket.tokens -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - bucket.tokens) * per_call)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every call of this connector back for `for_` (extends, never shortens, a pause).
    pub fn pause(&self, for_: Duration) {
        let until = Instant::now() + for_;
        if let Ok(mut p) = self.paused_until.lock()
            && p.is_none_or(|current| current < until)
        {
            *p = Some(until);
        }
    }

    /// How long the connector stays paused, if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = self.paused_until.lock().ok().and_then(|p| *p)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_bucket_allows_a_burst_then_the_rate() {
        let limiter = Limiter::new(Some(Rate {
            calls: 5,
            per: Duration::from_secs(1),
        }));
        let start = Instant::now();
        for _ in 0..15 {
            limiter.acquire().await;
        }
        // 5 at once, then 10 more at 5/s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1990) && took <= Duration::from_millis(2100),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller_back() {
        let limiter = std::sync::Arc::new(Limiter::unlimited());
        limiter.pause(Duration::from_secs(2));
        let start = Instant::now();
        let a = tokio::spawn({
            let l = limiter.clone();
            async move { l.acquire().await }
        });
        limiter.acquire().await;
        a.await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(2));
        limiter.pause(Duration::from_secs(1));
        assert!(limiter.paused_for().is_some());
    }
}
