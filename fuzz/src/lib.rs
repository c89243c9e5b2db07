//! Shared set-up for the fuzz targets: the input's first byte picks the zone and the poll instant the
//! row rules use, so the fuzzer also explores dates around DST gaps, a skipped day and the window edges.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use offboard::domain::StatusValues;
use offboard::feed::rows::RowRules;

/// Zones with quirks: midnight DST changes (Havana, Santiago), a skipped day (Apia 2011-12-30).
const ZONES: [Tz; 5] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Amsterdam,
    chrono_tz::America::Havana,
    chrono_tz::America::Santiago,
    chrono_tz::Pacific::Apia,
];

/// Poll instants, as Unix seconds: ordinary, epoch, far future, and near the window's own limits.
const NOWS: [i64; 4] = [1_767_225_600, 0, 253_402_300_799, -2_208_988_800];

/// Status values with case and non-ASCII quirks.
pub fn statuses() -> StatusValues {
    StatusValues {
        terminated: vec!["Terminated".into(), "Leaver".into()],
        active: vec!["Active".into(), "Actief".into()],
    }
}

/// Splits off the first byte (the set-up choice) and returns the rules' zone and instant with the rest.
pub fn setup(data: &[u8]) -> (Tz, DateTime<Utc>, &[u8]) {
    let (choice, rest) = match data.split_first() {
        Some((c, rest)) => (*c, rest),
        None => (0, data),
    };
    let zone = ZONES[usize::from(choice & 0x0f) % ZONES.len()];
    let secs = NOWS[usize::from(choice >> 4) % NOWS.len()];
    let now = Utc.timestamp_opt(secs, 0).single().unwrap_or_default();
    (zone, now, rest)
}

/// Row rules over `statuses`.
pub fn rules<'a>(statuses: &'a StatusValues, zone: Tz, now: DateTime<Utc>) -> RowRules<'a> {
    RowRules {
        statuses,
        timezone: zone,
        now,
    }
}
