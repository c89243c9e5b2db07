//! Effective dates: the three accepted forms, each read as a UTC instant, and the window around the
//! poll that a date must fall in.

use chrono::{
    DateTime, FixedOffset, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;

/// Whether an effective date lies within 50 years before and 10 years after `now` (bounds included).
pub fn date_in_window(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let earliest = now.checked_sub_months(Months::new(50 * 12));
    let latest = now.checked_add_months(Months::new(10 * 12));
    earliest.is_none_or(|e| at >= e) && latest.is_none_or(|l| at <= l)
}

/// Parses an effective date in one of the three accepted forms and returns it as a UTC instant
/// truncated to the second: `YYYY-MM-DD` (start of that day in `tz`), an RFC 3339 date-time with
/// seconds and an offset, or `YYYY-MM-DD±hh:mm` (start of that day at that offset). `None` for
/// anything else, including dates that do not exist.
pub fn parse_effective_date(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let bytes = s.as_bytes();
    let date = parse_date(bytes.get(..10)?)?;
    let rest = bytes.get(10..)?;
    match rest.first() {
        None => start_of_day(date, tz),
        Some(b'+' | b'-') => {
            let offset = parse_offset(rest)?;
            to_utc(date.and_time(NaiveTime::MIN), offset)
        }
        // RFC 3339 allows a lower-case 't' and 'z'.
        Some(b'T' | b't') => {
            let rest = rest.get(1..)?;
            let time = parse_time(rest.get(..8)?)?;
            let mut rest = rest.get(8..)?;
            if rest.first() == Some(&b'.') {
                let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return None;
                }
                // The fraction is dropped: instants are kept to the second.
                rest = rest.get(1 + digits..)?;
            }
            let offset = match rest {
                b"Z" | b"z" => FixedOffset::east_opt(0)?,
                _ => parse_offset(rest)?,
            };
            to_utc(date.and_time(time), offset)
        }
        _ => None,
    }
}

/// A run of ASCII digits as a number: `u8::is_ascii_digit` keeps fullwidth and other scripts' digits out.
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')))
}

fn parse_date(b: &[u8]) -> Option<NaiveDate> {
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(&b[5..7])?, digits(&b[8..10])?)
}

fn parse_time(b: &[u8]) -> Option<NaiveTime> {
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    // from_hms_opt refuses hour 24, minute 60 and the leap second 60.
    NaiveTime::from_hms_opt(digits(&b[..2])?, digits(&b[3..5])?, digits(&b[6..8])?)
}

/// `+hh:mm` or `-hh:mm` and nothing after it, hh at most 23 and mm at most 59.
fn parse_offset(b: &[u8]) -> Option<FixedOffset> {
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hours, minutes) = (digits(&b[1..3])?, digits(&b[4..6])?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
    FixedOffset::east_opt(sign * seconds)
}

fn to_utc(local: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    local
        .checked_sub_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))
        .map(|naive| naive.and_utc())
}

/// The first instant of `date` in `tz`. Where the clocks skip midnight (a DST gap, as in Chile or
/// Lebanon) the day starts when the gap ends, so the instant is searched for rather than refused.
fn start_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => Some(at.with_timezone(&Utc)),
        LocalResult::None => {
            // Local time only moves forward across a gap, so bisect for the first instant whose local
            // time is at or after midnight; no zone is two days away from UTC, so the bounds hold.
            let local_at = |secs: i64| {
                DateTime::from_timestamp(secs, 0)
                    .map(|t| tz.from_utc_datetime(&t.naive_utc()).naive_local())
            };
            let guess = midnight.and_utc().timestamp();
            let (mut before, mut after) = (guess - 2 * 86_400, guess + 2 * 86_400);
            while after - before > 1 {
                let mid = before + (after - before) / 2;
                if local_at(mid)? >= midnight {
                    after = mid;
                } else {
                    before = mid;
                }
            }
            DateTime::from_timestamp(after, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, sec).unwrap()
    }

    fn ams(date: &str) -> Option<DateTime<Utc>> {
        parse_effective_date(date, chrono_tz::Europe::Amsterdam)
    }

    #[test]
    fn bare_date_is_start_of_day_in_the_configured_zone() {
        assert_eq!(ams("2026-01-15"), Some(utc(2026, 1, 14, 23, 0, 0)));
        assert_eq!(ams("2026-07-15"), Some(utc(2026, 7, 14, 22, 0, 0)));
        assert_eq!(
            parse_effective_date("2026-07-15", chrono_tz::UTC),
            Some(utc(2026, 7, 15, 0, 0, 0))
        );
        assert_eq!(
            parse_effective_date("2024-02-29", chrono_tz::America::New_York),
            Some(utc(2024, 2, 29, 5, 0, 0))
        );
    }

    #[test]
    fn bare_date_in_a_midnight_dst_gap_starts_when_the_gap_ends() {
        // Chile skipped from 00:00 (-04) to 01:00 (-03) on 2022-09-11.
        assert_eq!(
            parse_effective_date("2022-09-11", chrono_tz::America::Santiago),
            Some(utc(2022, 9, 11, 4, 0, 0))
        );
        // And repeated 23:00-24:00 on 2022-04-02: midnight of the 3rd exists once, at -04.
        assert_eq!(
            parse_effective_date("2022-04-03", chrono_tz::America::Santiago),
            Some(utc(2022, 4, 3, 4, 0, 0))
        );
    }

    #[test]
    fn rfc3339_date_times() {
        assert_eq!(
            ams("2026-03-31T10:20:30Z"),
            Some(utc(2026, 3, 31, 10, 20, 30))
        );
        assert_eq!(
            ams("2026-03-31T10:20:30+02:00"),
            Some(utc(2026, 3, 31, 8, 20, 30))
        );
        assert_eq!(
            ams("2026-03-31T22:20:30-05:30"),
            Some(utc(2026, 4, 1, 3, 50, 30))
        );
        assert_eq!(
            ams("2026-03-31T10:20:30-00:00"),
            Some(utc(2026, 3, 31, 10, 20, 30))
        );
        assert_eq!(
            ams("2026-03-31T10:20:30+23:59"),
            Some(utc(2026, 3, 30, 10, 21, 30))
        );
        // Fractions are truncated, never rounded.
        assert_eq!(
            ams("2026-03-31T10:20:30.999999999Z"),
            Some(utc(2026, 3, 31, 10, 20, 30))
        );
        assert_eq!(
            ams("2026-03-31T23:59:59.9+01:00"),
            Some(utc(2026, 3, 31, 22, 59, 59))
        );
        assert_eq!(
            ams("2026-03-31T10:20:30.1234567890123456789012345Z"),
            Some(utc(2026, 3, 31, 10, 20, 30))
        );
        // RFC 3339 allows lower-case separators.
        assert_eq!(
            ams("2026-03-31t10:20:30z"),
            Some(utc(2026, 3, 31, 10, 20, 30))
        );
    }

    #[test]
    fn date_with_offset_is_start_of_that_day_at_that_offset() {
        assert_eq!(ams("2026-03-31+02:00"), Some(utc(2026, 3, 30, 22, 0, 0)));
        assert_eq!(ams("2026-03-31-05:00"), Some(utc(2026, 3, 31, 5, 0, 0)));
        assert_eq!(ams("2026-03-31+00:00"), Some(utc(2026, 3, 31, 0, 0, 0)));
    }

    #[test]
    fn rejected_date_forms() {
        for bad in [
            "",
            "2026-02-30",
            "2025-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "26-03-31",
            "2026/03/31",
            "2026.03.31",
            "31.03.2026",
            "2026-3-31",
            "2026-03-1",
            "20260331",
            "２０２６-03-31",
            "٢٠٢٦-٠٣-٣١",
            "2026-03-31T10:00:00",
            "2026-03-31T10:00Z",
            "2026-03-31T10:00+02:00",
            "2026-03-31T10:00:00+0200",
            "2026-03-31T10:00:00+02",
            "2026-03-31T10:00:00 +02:00",
            "2026-03-31T10:00:00 Z",
            "2026-03-31 10:00:00Z",
            "2026-03-31 +02:00",
            "2026-03-31T24:00:00Z",
            "2026-03-31T10:60:00Z",
            "2026-03-31T10:00:60Z",
            "2026-03-31T10:00:00+24:00",
            "2026-03-31T10:00:00+23:60",
            "2026-03-31T10:00:00.Z",
            "2026-03-31T10:00:00,5Z",
            "2026-03-31T10:00:00ZZ",
            "2026-03-31T10:00:00Z ",
            "2026-03-31+0200",
            "2026-03-31+02",
            "2026-03-31Z",
            "2026-03-31T",
            "2026-03-31x",
            "+2026-03-31",
            "-2026-03-31",
            "2026-03-31T1:00:00Z",
            "2026-03-31T10:00:00+02:00:00",
            "2026-03-31T10:00:00\u{2212}02:00",
            "2026-03-31T10:00:00.5",
            "2026-03-31é",
            "é026-03-31",
        ] {
            assert_eq!(ams(bad), None, "{bad:?} should be refused");
        }
    }

    #[test]
    fn date_parser_survives_arbitrary_input() {
        // A small deterministic generator over the characters that matter to the grammar.
        let alphabet: Vec<char> = "0123456789-+:.TZtz /é٣\u{0}".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut text = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 32) as usize;
            for i in 0..len {
                let idx = ((seed >> (i % 50)) as usize + i * 7) % alphabet.len();
                text.push(alphabet[idx]);
            }
            let prefix = format!("2026-03-31{text}");
            for candidate in [&text, &prefix] {
                if let Some(at) = parse_effective_date(candidate, chrono_tz::America::Santiago) {
                    assert_eq!(at.timestamp_subsec_nanos(), 0, "{candidate:?}");
                }
            }
        }
        assert_eq!(
            parse_effective_date("0000-01-01+23:59", chrono_tz::UTC).map(|t| t.timestamp() < 0),
            Some(true)
        );
        assert!(
            parse_effective_date("9999-12-31T23:59:59-23:59", chrono_tz::Pacific::Kiritimati)
                .is_some()
        );
        assert!(parse_effective_date("0000-01-01", chrono_tz::Pacific::Kiritimati).is_some());
    }
}
