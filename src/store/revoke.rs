//! Time to revoke, computed by the database for the console's page: per connector and week the median,
//! 95th percentile and worst (window functions over the done removals), the counts, and the breaches.
//! The figures are those of `report::build` (`offboard report`), without reading every row into the
//! process: on 100,000 removals that read alone took most of a second (BENCHMARKS.md, B8).

use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{Store, ts};

/// One connector's week: removals done, and their time to revoke in seconds.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RevokeWeek {
    /// The connector.
    pub connector: String,
    /// The week of the effective date: weeks (Monday to Sunday, UTC) since 1970-01-05.
    pub week: i64,
    /// Removals done.
    pub n: i64,
    /// Median: the `⌈n/2⌉`-th smallest.
    pub median_s: Option<i64>,
    /// 95th percentile: the `⌈0.95 n⌉`-th smallest.
    pub p95_s: Option<i64>,
    /// Worst.
    pub worst_s: Option<i64>,
}

impl RevokeWeek {
    /// The Monday the week starts on.
    pub fn starts(&self) -> chrono::NaiveDate {
        chrono::NaiveDate::from_ymd_opt(1970, 1, 5).unwrap_or_default()
            + chrono::Duration::days(self.week * 7)
    }
}

/// Removals by state, and the time to revoke over all done ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, FromRow)]
pub struct RevokeCounts {
    /// Leavers (terminations).
    pub leavers: i64,
    /// Removals.
    pub removals: i64,
    /// Done.
    pub done: i64,
    /// Not finished (held, pending, running).
    pub open: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Dry-run.
    pub planned: i64,
    /// The lower middle time to revoke (seconds).
    pub median_low_s: Option<i64>,
    /// The upper middle (the same as the lower for an odd count).
    pub median_high_s: Option<i64>,
    /// The worst.
    pub worst_s: Option<i64>,
}

/// A removal past its deadline (the effective time + the connector's grace + the SLA).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RevokeBreach {
    /// The leaver.
    pub employee_id: String,
    /// The connector.
    pub connector: String,
    /// When the termination took effect.
    pub effective_at: String,
    /// The removal's state.
    pub state: String,
    /// When access was removed, if it was.
    pub removed_at: Option<String>,
    /// Its last error or note.
    pub last_error: Option<String>,
}

/// A breach as the statements return it: with how many there are in all.
#[derive(Debug, Clone, FromRow)]
pub(in crate::store) struct CountedBreach {
    total: i64,
    #[sqlx(flatten)]
    breach: RevokeBreach,
}

impl Store {
    /// Per connector and week of the effective date (leavers effective since `since`): the done
    /// removals' median, 95th percentile and worst time to revoke.
    pub async fn revoke_weeks(&self, since: DateTime<Utc>) -> anyhow::Result<Vec<RevokeWeek>> {
        Ok(on_pool!(self, revoke::weeks(&ts(since)))?)
    }

    /// Removals by state and the time to revoke over all done ones, for leavers effective since `since`.
    pub async fn revoke_counts(&self, since: DateTime<Utc>) -> anyhow::Result<RevokeCounts> {
        Ok(on_pool!(self, revoke::counts(&ts(since)))?)
    }

    /// The removals of `connector` (leavers effective since `since`) that breached a deadline `limit`
    /// after the effective time: done later than that, or still not done at `now`. How many, and the
    /// first `max` in effective time order.
    pub async fn revoke_breaches(
        &self,
        since: DateTime<Utc>,
        connector: &str,
        limit: chrono::Duration,
        now: DateTime<Utc>,
        max: u32,
    ) -> anyhow::Result<(i64, Vec<RevokeBreach>)> {
        let cutoff = ts(now - limit);
        let limit_ms = limit.num_milliseconds();
        let rows = on_pool!(
            self,
            revoke::breaches(
                &ts(since),
                connector,
                limit_ms,
                &cutoff,
                i64::from(max.max(1))
            )
        )?;
        let total = rows.first().map_or(0, |r| r.total);
        let shown = rows
            .into_iter()
            .take(usize::try_from(max).unwrap_or(0))
            .map(|r| r.breach)
            .collect();
        Ok((total, shown))
    }
}
