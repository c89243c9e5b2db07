//! Checks one feed row's raw field values against the intake rules, whatever the source (CSV, JSON, push).
//!
//! A source reader only locates the seven mapped fields and hands over their raw values; everything the
//! rules say about a single value (UTF-8, type, trimming, control characters, byte limits, syntax, dates,
//! status matching) and the order in which faults are reported lives here, so every source judges a row
//! the same way.

use std::borrow::Cow;
use std::fmt;

use chrono::{
    DateTime, FixedOffset, LocalResult, Months, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta,
    TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::Serialize;

use crate::domain::{FeedRow, FieldNames, HrStatus, Person, StatusValues};

/// Why a row, or one of its fields, was rejected. The codes are stable and stored with every reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A required field is absent, null or blank.
    Missing,
    /// The field's bytes are not valid UTF-8 (CSV).
    InvalidUtf8,
    /// The value is not a string or null (JSON).
    WrongType,
    /// A mapped key appears twice in one record (JSON).
    DuplicateKey,
    /// The trimmed value holds a control character it may not hold.
    ControlChar,
    /// The trimmed value exceeds the field's byte limit.
    TooLong,
    /// The value breaks the field's syntax.
    InvalidValue,
    /// The effective date is not one of the accepted forms, or not a real date.
    InvalidDate,
    /// The effective date lies outside the window around the poll.
    DateOutOfRange,
    /// The status matches none of the configured values.
    UnknownStatus,
    /// The record's field count differs from the header's (CSV, whole row).
    ColumnCount,
    /// The record is not a JSON object (whole row).
    NotAnObject,
    /// A push record holds a key that is not a known field.
    UnknownField,
}

impl Reason {
    /// Every reason, in the order the intake rules list them.
    pub const ALL: [Reason; 13] = [
        Self::Missing,
        Self::InvalidUtf8,
        Self::WrongType,
        Self::DuplicateKey,
        Self::ControlChar,
        Self::TooLong,
        Self::InvalidValue,
        Self::InvalidDate,
        Self::DateOutOfRange,
        Self::UnknownStatus,
        Self::ColumnCount,
        Self::NotAnObject,
        Self::UnknownField,
    ];

    /// The stable snake_case code stored with a reject.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::WrongType => "wrong_type",
            Self::DuplicateKey => "duplicate_key",
            Self::ControlChar => "control_char",
            Self::TooLong => "too_long",
            Self::InvalidValue => "invalid_value",
            Self::InvalidDate => "invalid_date",
            Self::DateOutOfRange => "date_out_of_range",
            Self::UnknownStatus => "unknown_status",
            Self::ColumnCount => "column_count",
            Self::NotAnObject => "not_an_object",
            Self::UnknownField => "unknown_field",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fault of a rejected row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Fault {
    /// The canonical field name (or an unknown push key); `None` for a whole-row fault.
    pub field: Option<String>,
    /// Why.
    pub reason: Reason,
}

impl Fault {
    /// A fault of one of the seven mapped fields.
    pub fn for_field(field: Field, reason: Reason) -> Self {
        Self {
            field: Some(field.as_str().to_string()),
            reason,
        }
    }

    /// A fault of the row as a whole (column count, not an object).
    pub fn for_row(reason: Reason) -> Self {
        Self {
            field: None,
            reason,
        }
    }
}

/// Why a whole file or document was refused: none of its rows are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileError {
    /// The CSV file has no header row (it is empty or blank).
    NoHeader,
    /// The CSV header row is not valid UTF-8.
    HeaderInvalid,
    /// A configured column is not in the header; holds the configured name.
    MissingColumn(String),
    /// A configured column appears more than once in the header; holds the configured name.
    DuplicateColumn(String),
    /// The JSON document does not parse; holds the parser's message.
    InvalidJson(String),
    /// `/Report_Entry` does not resolve in the JSON document.
    PointerNotFound,
    /// `/Report_Entry` resolves to something other than an array.
    NotAnArray,
}

impl FileError {
    /// The stable snake_case code stored with the refused file.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoHeader => "no_header",
            Self::HeaderInvalid => "header_invalid",
            Self::MissingColumn(_) => "missing_column",
            Self::DuplicateColumn(_) => "duplicate_column",
            Self::InvalidJson(_) => "invalid_json",
            Self::PointerNotFound => "pointer_not_found",
            Self::NotAnArray => "not_an_array",
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHeader => f.write_str("the file is empty: there is no header row"),
            Self::HeaderInvalid => f.write_str(
                "the header row is not valid UTF-8 (was the file exported as UTF-16 or a legacy code page?)",
            ),
            Self::MissingColumn(name) => write!(
                f,
                "the configured column {name:?} is not in the header (is the file ','-delimited?)"
            ),
            Self::DuplicateColumn(name) => write!(
                f,
                "the configured column {name:?} appears more than once in the header"
            ),
            Self::InvalidJson(msg) => write!(f, "the document is not valid JSON: {msg}"),
            Self::PointerNotFound => f.write_str("the document has no /Report_Entry"),
            Self::NotAnArray => f.write_str("/Report_Entry is not an array"),
        }
    }
}

impl std::error::Error for FileError {}

/// The seven mapped fields of a row, in the order faults are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The HR system's employee id (required).
    EmployeeId,
    /// Work email (optional).
    Email,
    /// Login name (optional).
    Username,
    /// User principal name (optional).
    Upn,
    /// Display name (optional free text).
    DisplayName,
    /// Effective date (required on terminated rows only).
    EffectiveDate,
    /// HR status (required).
    Status,
}

impl Field {
    /// Every field, in fault order.
    pub const ALL: [Field; 7] = [
        Self::EmployeeId,
        Self::Email,
        Self::Username,
        Self::Upn,
        Self::DisplayName,
        Self::EffectiveDate,
        Self::Status,
    ];

    /// The canonical name used in faults (and as the push key).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmployeeId => "employee_id",
            Self::Email => "email",
            Self::Username => "username",
            Self::Upn => "upn",
            Self::DisplayName => "display_name",
            Self::EffectiveDate => "effective_date",
            Self::Status => "status",
        }
    }

    /// The column or key the configuration maps to this field; `None` when it is not mapped.
    pub fn configured_name(self, names: &FieldNames) -> Option<&str> {
        match self {
            Self::EmployeeId => Some(names.employee_id.as_str()),
            Self::Email => names.email.as_deref(),
            Self::Username => names.username.as_deref(),
            Self::Upn => names.upn.as_deref(),
            Self::DisplayName => names.display_name.as_deref(),
            Self::EffectiveDate => Some(names.effective_date.as_str()),
            Self::Status => Some(names.status.as_str()),
        }
    }

    /// The largest trimmed value in UTF-8 bytes; `None` when the rules set no limit.
    pub fn max_bytes(self) -> Option<usize> {
        match self {
            Self::EmployeeId => Some(64),
            Self::Email => Some(254),
            Self::Username | Self::Upn => Some(256),
            Self::DisplayName => Some(1024),
            Self::EffectiveDate | Self::Status => None,
        }
    }

    /// Free text may span lines and hold tabs; identifiers, dates and statuses may not.
    fn allows_line_breaks(self) -> bool {
        self == Self::DisplayName
    }
}

/// What the row checks need besides the row itself.
#[derive(Debug, Clone, Copy)]
pub struct RowRules<'a> {
    /// The configured status values.
    pub statuses: &'a StatusValues,
    /// The zone in which a bare date (YYYY-MM-DD) starts.
    pub timezone: Tz,
    /// The poll's instant: the date window is measured from it.
    pub now: DateTime<Utc>,
}

/// One field's raw value as a source gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RawValue<'a> {
    /// No such key or column, the field is not mapped, or JSON null.
    #[default]
    Absent,
    /// A CSV cell: not yet known to be UTF-8.
    Bytes(&'a [u8]),
    /// A JSON string.
    Str(&'a str),
    /// A JSON value of any type other than string or null.
    WrongType,
}

/// One field as a source found it: its value and whether its key was repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawField<'a> {
    /// The value (for a repeated key, whichever one the source kept: it is never read).
    pub value: RawValue<'a>,
    /// The mapped key appeared more than once in the record (JSON only; CSV never sets it).
    pub duplicate_key: bool,
}

impl<'a> From<RawValue<'a>> for RawField<'a> {
    fn from(value: RawValue<'a>) -> Self {
        Self {
            value,
            duplicate_key: false,
        }
    }
}

/// The raw values of the seven mapped fields of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawRow<'a> {
    /// Raw employee id.
    pub employee_id: RawField<'a>,
    /// Raw email.
    pub email: RawField<'a>,
    /// Raw username.
    pub username: RawField<'a>,
    /// Raw UPN.
    pub upn: RawField<'a>,
    /// Raw display name.
    pub display_name: RawField<'a>,
    /// Raw effective date.
    pub effective_date: RawField<'a>,
    /// Raw status.
    pub status: RawField<'a>,
}

impl<'a> RawRow<'a> {
    /// The raw field for `field`.
    pub fn get(&self, field: Field) -> &RawField<'a> {
        match field {
            Field::EmployeeId => &self.employee_id,
            Field::Email => &self.email,
            Field::Username => &self.username,
            Field::Upn => &self.upn,
            Field::DisplayName => &self.display_name,
            Field::EffectiveDate => &self.effective_date,
            Field::Status => &self.status,
        }
    }

    /// The raw field for `field`, for a source filling the row in.
    pub fn get_mut(&mut self, field: Field) -> &mut RawField<'a> {
        match field {
            Field::EmployeeId => &mut self.employee_id,
            Field::Email => &mut self.email,
            Field::Username => &mut self.username,
            Field::Upn => &mut self.upn,
            Field::DisplayName => &mut self.display_name,
            Field::EffectiveDate => &mut self.effective_date,
            Field::Status => &mut self.status,
        }
    }
}

/// The checks every field shares, in the rules' order: duplicate key, UTF-8 or type, trim, blank means
/// absent, control characters, byte limit. `Ok(None)` is an absent value; the field's own syntax check
/// and whether it is required are left to the caller.
pub fn clean_value<'a>(field: Field, raw: &RawField<'a>) -> Result<Option<&'a str>, Reason> {
    if raw.duplicate_key {
        return Err(Reason::DuplicateKey);
    }
    let text = match raw.value {
        RawValue::Absent => return Ok(None),
        RawValue::Bytes(bytes) => std::str::from_utf8(bytes).map_err(|_| Reason::InvalidUtf8)?,
        RawValue::Str(text) => text,
        RawValue::WrongType => return Err(Reason::WrongType),
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let line_breaks = field.allows_line_breaks();
    if text
        .chars()
        .any(|c| c.is_control() && !(line_breaks && matches!(c, '\t' | '\n' | '\r')))
    {
        return Err(Reason::ControlChar);
    }
    if field.max_bytes().is_some_and(|max| text.len() > max) {
        return Err(Reason::TooLong);
    }
    Ok(Some(text))
}

/// Checks one record and builds its `FeedRow`, or lists every faulty field in the rules' order.
pub fn check_row(raw: &RawRow<'_>, rules: &RowRules<'_>) -> Result<FeedRow, Vec<Fault>> {
    let mut faults = Vec::new();

    let employee_id = keep(
        &mut faults,
        Field::EmployeeId,
        required(clean_value(Field::EmployeeId, &raw.employee_id))
            .and_then(|id| valid(id, is_employee_id(id))),
    );
    let email = keep(
        &mut faults,
        Field::Email,
        optional(Field::Email, &raw.email, is_address).map(|e| e.map(str::to_ascii_lowercase)),
    );
    let username = keep(
        &mut faults,
        Field::Username,
        optional(Field::Username, &raw.username, |u| {
            !u.chars().any(char::is_whitespace)
        })
        .map(|u| u.map(str::to_string)),
    );
    let upn = keep(
        &mut faults,
        Field::Upn,
        optional(Field::Upn, &raw.upn, is_address).map(|u| u.map(str::to_string)),
    );
    let display_name = keep(
        &mut faults,
        Field::DisplayName,
        optional(Field::DisplayName, &raw.display_name, |_| true).map(|d| d.map(str::to_string)),
    );

    // The status decides whether the date is read at all, but its fault is listed after the date's.
    let status = required(clean_value(Field::Status, &raw.status))
        .and_then(|s| match_status(s, rules.statuses).ok_or(Reason::UnknownStatus));
    let effective_at = match status {
        Ok(StatusKind::Terminated) => keep(
            &mut faults,
            Field::EffectiveDate,
            check_effective_date(&raw.effective_date, rules),
        ),
        _ => None,
    };
    let status = keep(&mut faults, Field::Status, status);

    if !faults.is_empty() {
        return Err(faults);
    }
    let (
        Some(employee_id),
        Some(email),
        Some(username),
        Some(upn),
        Some(display_name),
        Some(status),
    ) = (employee_id, email, username, upn, display_name, status)
    else {
        return Err(faults);
    };
    let status = match (status, effective_at) {
        (StatusKind::Active, _) => HrStatus::Active,
        (StatusKind::Terminated, Some(effective_at)) => HrStatus::Terminated { effective_at },
        (StatusKind::Terminated, None) => return Err(faults),
    };
    Ok(FeedRow {
        person: Person {
            employee_id: employee_id.to_string(),
            email,
            username,
            upn,
            display_name,
            attributes: Default::default(),
        },
        status,
    })
}

/// What a matched status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKind {
    Terminated,
    Active,
}

/// Records a fault and yields `None`, or yields the checked value.
fn keep<T>(faults: &mut Vec<Fault>, field: Field, checked: Result<T, Reason>) -> Option<T> {
    match checked {
        Ok(value) => Some(value),
        Err(reason) => {
            faults.push(Fault::for_field(field, reason));
            None
        }
    }
}

fn required(cleaned: Result<Option<&str>, Reason>) -> Result<&str, Reason> {
    cleaned?.ok_or(Reason::Missing)
}

fn valid(value: &str, ok: bool) -> Result<&str, Reason> {
    if ok {
        Ok(value)
    } else {
        Err(Reason::InvalidValue)
    }
}

fn optional<'a>(
    field: Field,
    raw: &RawField<'a>,
    syntax: impl Fn(&str) -> bool,
) -> Result<Option<&'a str>, Reason> {
    match clean_value(field, raw)? {
        Some(value) => valid(value, syntax(value)).map(Some),
        None => Ok(None),
    }
}

fn check_effective_date(raw: &RawField<'_>, rules: &RowRules<'_>) -> Result<DateTime<Utc>, Reason> {
    let text = required(clean_value(Field::EffectiveDate, raw))?;
    let at = parse_effective_date(text, rules.timezone).ok_or(Reason::InvalidDate)?;
    if date_in_window(at, rules.now) {
        Ok(at)
    } else {
        Err(Reason::DateOutOfRange)
    }
}

fn match_status(value: &str, statuses: &StatusValues) -> Option<StatusKind> {
    // eq_ignore_ascii_case folds ASCII letters only, so fullwidth letters or a Turkish dotted I never match.
    let matches = |list: &[String]| list.iter().any(|v| v.trim().eq_ignore_ascii_case(value));
    if matches(&statuses.terminated) {
        Some(StatusKind::Terminated)
    } else if matches(&statuses.active) {
        Some(StatusKind::Active)
    } else {
        None
    }
}

/// ASCII letters, digits, '.', '_', '-', starting with a letter or digit: ids end up in URLs, logs and
/// SQL, so anything that could be read as syntax there is refused at the door.
fn is_employee_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The email/UPN syntax of the rules: deliberately narrower than RFC 5322 (no quoted local parts, no
/// IDN), because the address is matched against SaaS accounts, not delivered to.
fn is_address(address: &str) -> bool {
    if !address.is_ascii() {
        return false;
    }
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_graphic());
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        b.first().is_some_and(u8::is_ascii_alphanumeric)
            && b.last().is_some_and(u8::is_ascii_alphanumeric)
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    // split_once takes the first '@', so a second one lands in the domain, whose labels refuse it.
    local_ok && domain.contains('.') && domain.split('.').all(label_ok)
}

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

/// Neutralises a cell for CSV output: a cell starting with = + - @ TAB CR gets a leading single quote,
/// so a spreadsheet opening the export shows the text instead of evaluating it as a formula.
pub fn csv_safe_cell(s: &str) -> Cow<'_, str> {
    match s.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{s}")),
        _ => Cow::Borrowed(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses() -> StatusValues {
        StatusValues {
            terminated: vec!["Terminated".into(), "Withdrawn".into()],
            active: vec!["Active".into()],
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
    }

    fn check(row: &RawRow<'_>) -> Result<FeedRow, Vec<Fault>> {
        let statuses = statuses();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::Europe::Amsterdam,
            now: now(),
        };
        check_row(row, &rules)
    }

    fn s(v: &str) -> RawField<'_> {
        RawValue::Str(v).into()
    }

    fn b(v: &[u8]) -> RawField<'_> {
        RawValue::Bytes(v).into()
    }

    /// A valid terminated row to break one field at a time.
    fn good() -> RawRow<'static> {
        RawRow {
            employee_id: s("E1005"),
            email: s("Ann.Smith@Example.org"),
            username: s("ASmith"),
            upn: s("ASmith@Corp.Example.org"),
            display_name: s("Ann Smith"),
            effective_date: s("2026-04-01"),
            status: s("Terminated"),
        }
    }

    fn faults(row: &RawRow<'_>) -> Vec<(Option<String>, &'static str)> {
        match check(row) {
            Ok(r) => panic!("expected faults, got {r:?}"),
            Err(f) => f
                .into_iter()
                .map(|f| (f.field, f.reason.as_str()))
                .collect(),
        }
    }

    fn only(field: &str, reason: &'static str) -> Vec<(Option<String>, &'static str)> {
        vec![(Some(field.to_string()), reason)]
    }

    fn with(field: Field, value: RawField<'_>) -> RawRow<'_> {
        let mut row = good();
        *row.get_mut(field) = value;
        row
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, sec: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, sec).unwrap()
    }

    fn ams(date: &str) -> Option<DateTime<Utc>> {
        parse_effective_date(date, chrono_tz::Europe::Amsterdam)
    }

    #[test]
    fn reason_codes_are_exactly_the_documented_ones() {
        let codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            codes,
            [
                "missing",
                "invalid_utf8",
                "wrong_type",
                "duplicate_key",
                "control_char",
                "too_long",
                "invalid_value",
                "invalid_date",
                "date_out_of_range",
                "unknown_status",
                "column_count",
                "not_an_object",
                "unknown_field"
            ]
        );
        assert_eq!(Reason::ColumnCount.to_string(), "column_count");
        assert_eq!(
            serde_json::to_value(Fault::for_row(Reason::NotAnObject)).unwrap(),
            serde_json::json!({"field": null, "reason": "not_an_object"})
        );
    }

    #[test]
    fn file_error_codes_and_messages() {
        let cases = [
            (FileError::NoHeader, "no_header", "no header"),
            (FileError::HeaderInvalid, "header_invalid", "UTF-8"),
            (
                FileError::MissingColumn("Worker ID".into()),
                "missing_column",
                "\"Worker ID\"",
            ),
            (
                FileError::DuplicateColumn("Status".into()),
                "duplicate_column",
                "\"Status\"",
            ),
            (
                FileError::InvalidJson("EOF at line 1".into()),
                "invalid_json",
                "EOF at line 1",
            ),
            (
                FileError::PointerNotFound,
                "pointer_not_found",
                "/Report_Entry",
            ),
            (FileError::NotAnArray, "not_an_array", "not an array"),
        ];
        for (err, code, text) in cases {
            assert_eq!(err.code(), code);
            assert!(err.to_string().contains(text), "{err}");
        }
    }

    #[test]
    fn field_names_are_canonical() {
        let names: Vec<_> = Field::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            names,
            [
                "employee_id",
                "email",
                "username",
                "upn",
                "display_name",
                "effective_date",
                "status"
            ]
        );
        let mut config = FieldNames {
            employee_id: "Worker ID".into(),
            ..FieldNames::default()
        };
        config.upn = None;
        assert_eq!(
            Field::EmployeeId.configured_name(&config),
            Some("Worker ID")
        );
        assert_eq!(Field::Upn.configured_name(&config), None);
        assert_eq!(Field::Status.configured_name(&config), Some("status"));
    }

    #[test]
    fn good_terminated_row_is_normalised() {
        let row = check(&good()).unwrap();
        assert_eq!(row.person.employee_id, "E1005");
        assert_eq!(row.person.email.as_deref(), Some("ann.smith@example.org"));
        assert_eq!(row.person.username.as_deref(), Some("ASmith"));
        assert_eq!(row.person.upn.as_deref(), Some("ASmith@Corp.Example.org"));
        assert_eq!(row.person.display_name.as_deref(), Some("Ann Smith"));
        assert!(row.person.attributes.is_empty());
        // Amsterdam is on CEST (+02:00) on 1 April.
        assert_eq!(
            row.status,
            HrStatus::Terminated {
                effective_at: utc(2026, 3, 31, 22, 0, 0)
            }
        );
    }

    #[test]
    fn csv_bytes_and_json_strings_give_the_same_row() {
        let row = RawRow {
            employee_id: b(b" 42 "),
            email: b(b"A@B.CO"),
            username: RawField::default(),
            upn: b(b""),
            display_name: b("Zoë".as_bytes()),
            effective_date: b(b"2026-01-01T00:00:00Z"),
            status: b(b"terminated"),
        };
        let from_bytes = check(&row).unwrap();
        let row = RawRow {
            employee_id: s(" 42 "),
            email: s("A@B.CO"),
            username: RawValue::Absent.into(),
            upn: s(""),
            display_name: s("Zoë"),
            effective_date: s("2026-01-01T00:00:00Z"),
            status: s("terminated"),
        };
        assert_eq!(check(&row).unwrap(), from_bytes);
        assert_eq!(from_bytes.person.employee_id, "42");
        assert_eq!(from_bytes.person.email.as_deref(), Some("a@b.co"));
        assert_eq!(from_bytes.person.upn, None);
        assert_eq!(from_bytes.person.username, None);
    }

    #[test]
    fn required_fields_missing_when_absent_null_or_blank() {
        for blank in [RawField::default(), s(""), s(" \t "), b(b"  ")] {
            assert_eq!(
                faults(&with(Field::EmployeeId, blank)),
                only("employee_id", "missing")
            );
            assert_eq!(
                faults(&with(Field::Status, blank)),
                only("status", "missing")
            );
            assert_eq!(
                faults(&with(Field::EffectiveDate, blank)),
                only("effective_date", "missing")
            );
        }
    }

    #[test]
    fn optional_fields_may_be_absent_or_blank() {
        let mut row = good();
        row.email = RawField::default();
        row.username = s("   ");
        row.upn = b(b"");
        row.display_name = s("\u{a0}");
        let row = check(&row).unwrap();
        assert_eq!(row.person.email, None);
        assert_eq!(row.person.username, None);
        assert_eq!(row.person.upn, None);
        assert_eq!(row.person.display_name, None);
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        assert_eq!(
            faults(&with(Field::DisplayName, b(b"Ann \xff Smith"))),
            only("display_name", "invalid_utf8")
        );
        assert_eq!(
            faults(&with(Field::EmployeeId, b(b"\xc3"))),
            only("employee_id", "invalid_utf8")
        );
    }

    #[test]
    fn wrong_type_and_duplicate_key() {
        let wrong = RawField::from(RawValue::WrongType);
        assert_eq!(
            faults(&with(Field::Email, wrong)),
            only("email", "wrong_type")
        );
        assert_eq!(
            faults(&with(Field::Status, wrong)),
            only("status", "wrong_type")
        );
        // A repeated key wins over everything else, even over a value that would be fine or absent.
        for value in [RawValue::Str("E1"), RawValue::WrongType, RawValue::Absent] {
            let dup = RawField {
                value,
                duplicate_key: true,
            };
            assert_eq!(
                faults(&with(Field::EmployeeId, dup)),
                only("employee_id", "duplicate_key")
            );
        }
    }

    #[test]
    fn trim_uses_unicode_white_space_only() {
        let spaced = with(
            Field::EmployeeId,
            s("\u{a0}\u{2003}\u{3000}\u{85}\u{2028}E9\u{202f}\u{205f}\u{1680}\t\r\n\u{b}\u{c}"),
        );
        assert_eq!(check(&spaced).unwrap().person.employee_id, "E9");
        // U+200B and U+FEFF are not whitespace: they stay and the id syntax refuses them.
        for odd in ["\u{200b}E9", "E9\u{feff}"] {
            assert_eq!(
                faults(&with(Field::EmployeeId, s(odd))),
                only("employee_id", "invalid_value")
            );
        }
        let row = check(&with(Field::Username, s("ann\u{200b}"))).unwrap();
        assert_eq!(row.person.username.as_deref(), Some("ann\u{200b}"));
        let row = check(&with(Field::DisplayName, s("\u{feff}Ann\u{a0}"))).unwrap();
        assert_eq!(row.person.display_name.as_deref(), Some("\u{feff}Ann"));
    }

    #[test]
    fn control_chars_are_refused_inside_the_trimmed_value() {
        for (field, value) in [
            (Field::EmployeeId, "E\u{0}1"),
            (Field::Email, "a\u{7f}@b.org"),
            (Field::Username, "ann\u{85}smith"),
            (Field::Username, "ann\tsmith"),
            (Field::Upn, "a\u{9f}@b.org"),
            (Field::DisplayName, "Ann\u{b}Smith"),
            (Field::DisplayName, "Ann\u{1b}[31m"),
            (Field::EffectiveDate, "2026-04-01\u{0}x"),
            (Field::Status, "Termi\nnated"),
        ] {
            assert_eq!(
                faults(&with(field, s(value))),
                only(field.as_str(), "control_char"),
                "{value:?}"
            );
        }
        let row = check(&with(Field::DisplayName, s("\tAnn\tvan\r\nSmith\n"))).unwrap();
        assert_eq!(
            row.person.display_name.as_deref(),
            Some("Ann\tvan\r\nSmith")
        );
    }

    #[test]
    fn byte_limits_count_utf8_bytes() {
        let id64 = "a".repeat(64);
        assert_eq!(
            check(&with(Field::EmployeeId, s(&id64)))
                .unwrap()
                .person
                .employee_id,
            id64
        );
        let id65 = "a".repeat(65);
        assert_eq!(
            faults(&with(Field::EmployeeId, s(&id65))),
            only("employee_id", "too_long")
        );
        // too_long comes before the id syntax.
        assert_eq!(
            faults(&with(Field::EmployeeId, s(&"!".repeat(65)))),
            only("employee_id", "too_long")
        );

        let email254 = format!("{}@{}.org", "a".repeat(64), "b".repeat(185));
        assert_eq!(email254.len(), 254);
        assert!(check(&with(Field::Email, s(&email254))).is_ok());
        let email255 = format!("{}@{}.org", "a".repeat(64), "b".repeat(186));
        assert_eq!(
            faults(&with(Field::Email, s(&email255))),
            only("email", "too_long")
        );

        let user256 = "ü".repeat(128);
        assert!(check(&with(Field::Username, s(&user256))).is_ok());
        let user258 = "ü".repeat(129);
        assert_eq!(
            faults(&with(Field::Username, s(&user258))),
            only("username", "too_long")
        );

        let upn257 = format!("{}@b.org", "a".repeat(251));
        assert_eq!(
            faults(&with(Field::Upn, s(&upn257))),
            only("upn", "too_long")
        );
        let upn256 = format!("{}@b.org", "a".repeat(250));
        assert!(check(&with(Field::Upn, s(&upn256))).is_ok());

        let name1024 = "é".repeat(512);
        assert!(check(&with(Field::DisplayName, s(&name1024))).is_ok());
        // 513 characters, 1025 bytes.
        let name1025 = format!("{name1024}a");
        assert_eq!(
            faults(&with(Field::DisplayName, s(&name1025))),
            only("display_name", "too_long")
        );
        // Trimmed before measuring.
        let padded = format!("   {name1024}   ");
        assert!(check(&with(Field::DisplayName, s(&padded))).is_ok());
    }

    #[test]
    fn checks_run_in_the_documented_order_and_the_first_failure_wins() {
        // duplicate_key -> invalid_utf8 / wrong_type -> trim -> empty is absent -> control_char
        // -> too_long -> the field's own check: each value below fails two checks at once.
        let long_with_control = format!("{}\u{0}", "a".repeat(300));
        let long_bad_utf8 = [vec![0xffu8], vec![b'a'; 300]].concat();
        let long_non_email = "x".repeat(300);
        let long_non_id = "-".repeat(65);
        let cases: Vec<(Field, RawField<'_>, &str)> = vec![
            (
                Field::Email,
                RawField {
                    value: RawValue::WrongType,
                    duplicate_key: true,
                },
                "duplicate_key",
            ),
            (Field::Username, b(&long_bad_utf8), "invalid_utf8"),
            (Field::Email, b(b"\xff\x00"), "invalid_utf8"),
            (Field::Username, s(&long_with_control), "control_char"),
            // Too long and not an email: the length is checked first.
            (Field::Email, s(&long_non_email), "too_long"),
            // Too long and not an id: likewise.
            (Field::EmployeeId, s(&long_non_id), "too_long"),
        ];
        for (field, value, reason) in cases {
            assert_eq!(
                faults(&with(field, value)),
                only(field.as_str(), reason),
                "{field:?}"
            );
        }
        // Trimming comes before the empty check: whitespace alone is absent, even on a field with a
        // syntax of its own; a control character is not whitespace, so it is not absent.
        assert!(check(&with(Field::Email, s(" \u{a0}\t "))).is_ok());
        assert_eq!(
            faults(&with(Field::Email, s(" \u{0} "))),
            only("email", "control_char")
        );
    }

    #[test]
    fn employee_id_syntax_and_exactness() {
        for bad in [
            "'; DROP TABLE removals; --",
            "-1",
            "_a",
            ".a",
            "a b",
            "ä1",
            "a/b",
            "a@b",
        ] {
            assert_eq!(
                faults(&with(Field::EmployeeId, s(bad))),
                only("employee_id", "invalid_value"),
                "{bad}"
            );
        }
        for ok in ["a.b_c-1", "01005", "1005", "Z", "9-"] {
            assert_eq!(
                check(&with(Field::EmployeeId, s(ok)))
                    .unwrap()
                    .person
                    .employee_id,
                ok
            );
        }
        assert_eq!(
            check(&with(Field::EmployeeId, s("Abc")))
                .unwrap()
                .person
                .employee_id,
            "Abc"
        );
    }

    #[test]
    fn email_and_upn_syntax() {
        for bad in [
            "a@b",
            "a@@b.org",
            "a@b@c.org",
            "@b.org",
            "a b@c.org",
            "a@-b.org",
            "a@b-.org",
            "a@b..org",
            "a@b.org.",
            "a@.b.org",
            "a@b_c.org",
            "ä@b.org",
            "a@bü.org",
            "no-at-sign.org",
        ] {
            assert_eq!(
                faults(&with(Field::Email, s(bad))),
                only("email", "invalid_value"),
                "{bad}"
            );
            assert_eq!(
                faults(&with(Field::Upn, s(bad))),
                only("upn", "invalid_value"),
                "{bad}"
            );
        }
        let row = check(&with(
            Field::Email,
            s(" O'Brien+x!{}@Mail-1.Example.CO.uk "),
        ))
        .unwrap();
        assert_eq!(
            row.person.email.as_deref(),
            Some("o'brien+x!{}@mail-1.example.co.uk")
        );
        let row = check(&with(Field::Upn, s(" O'Brien@Corp.Example.ORG "))).unwrap();
        assert_eq!(row.person.upn.as_deref(), Some("O'Brien@Corp.Example.ORG"));
    }

    #[test]
    fn username_syntax() {
        for bad in [
            "ann smith",
            "ann\u{3000}smith",
            "ann\u{a0}smith",
            "ann\u{2009}s",
        ] {
            assert_eq!(
                faults(&with(Field::Username, s(bad))),
                only("username", "invalid_value"),
                "{bad:?}"
            );
        }
        let row = check(&with(Field::Username, s("Ånn.O'Brien@X"))).unwrap();
        assert_eq!(row.person.username.as_deref(), Some("Ånn.O'Brien@X"));
    }

    #[test]
    fn display_name_is_data_stored_verbatim() {
        for text in [
            "=HYPERLINK(\"http://evil\",\"x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "Robert'); DROP TABLE people;--",
            "<script>alert(1)</script>",
            "Ｚｏë \u{200b}",
        ] {
            let row = check(&with(Field::DisplayName, s(text))).unwrap();
            assert_eq!(row.person.display_name.as_deref(), Some(text));
        }
    }

    #[test]
    fn status_matching() {
        for terminated in ["Terminated", "TERMINATED", " terminated\u{a0}", "withdrawn"] {
            let row = check(&with(Field::Status, s(terminated))).unwrap();
            assert!(
                matches!(row.status, HrStatus::Terminated { .. }),
                "{terminated}"
            );
        }
        for active in ["ACTIVE", "active", "\tActive "] {
            assert_eq!(
                check(&with(Field::Status, s(active))).unwrap().status,
                HrStatus::Active
            );
        }
        for unknown in [
            "ＴＥＲＭＩＮＡＴＥＤ",
            "actİve",
            "actıve",
            "Terminat",
            "Leave",
            "Terminated.",
        ] {
            assert_eq!(
                faults(&with(Field::Status, s(unknown))),
                only("status", "unknown_status"),
                "{unknown}"
            );
        }
    }

    #[test]
    fn configured_status_values_are_trimmed_too() {
        let statuses = StatusValues {
            terminated: vec![" Left ".into()],
            active: vec!["Employed".into()],
        };
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::UTC,
            now: now(),
        };
        let row = check_row(&with(Field::Status, s("LEFT")), &rules).unwrap();
        assert_eq!(
            row.status,
            HrStatus::Terminated {
                effective_at: utc(2026, 4, 1, 0, 0, 0)
            }
        );
        assert_eq!(
            check_row(&good(), &rules).unwrap_err(),
            vec![Fault::for_field(Field::Status, Reason::UnknownStatus)]
        );
    }

    #[test]
    fn effective_date_is_not_read_unless_terminated() {
        let odd_dates = [
            s("9999-12-31"),
            s("garbage"),
            s("1900-01-01"),
            b(b"\xff"),
            RawValue::WrongType.into(),
            RawField {
                value: RawValue::Str("x"),
                duplicate_key: true,
            },
            s("2026\u{0}"),
            RawField::default(),
        ];
        for date in odd_dates {
            let mut row = with(Field::Status, s("Active"));
            row.effective_date = date;
            assert_eq!(check(&row).unwrap().status, HrStatus::Active, "{date:?}");
            // Nor when the status is unknown or missing: only the status is reported.
            row.status = s("Retired");
            assert_eq!(faults(&row), only("status", "unknown_status"));
            row.status = RawField::default();
            assert_eq!(faults(&row), only("status", "missing"));
        }
    }

    #[test]
    fn effective_date_faults_on_terminated_rows() {
        assert_eq!(
            faults(&with(Field::EffectiveDate, s("2026-02-30"))),
            only("effective_date", "invalid_date")
        );
        assert_eq!(
            faults(&with(Field::EffectiveDate, s("9999-12-31"))),
            only("effective_date", "date_out_of_range")
        );
        assert_eq!(
            faults(&with(Field::EffectiveDate, s("1970-01-01"))),
            only("effective_date", "date_out_of_range")
        );
        assert_eq!(
            faults(&with(Field::EffectiveDate, RawValue::WrongType.into())),
            only("effective_date", "wrong_type")
        );
    }

    #[test]
    fn date_window_bounds_are_inclusive() {
        let now = now();
        assert!(date_in_window(utc(1976, 3, 31, 12, 0, 0), now));
        assert!(!date_in_window(utc(1976, 3, 31, 11, 59, 59), now));
        assert!(date_in_window(utc(2036, 3, 31, 12, 0, 0), now));
        assert!(!date_in_window(utc(2036, 3, 31, 12, 0, 1), now));
        assert_eq!(
            faults(&with(Field::EffectiveDate, s("2036-03-31T12:00:01Z"))),
            only("effective_date", "date_out_of_range")
        );
        assert!(check(&with(Field::EffectiveDate, s("2036-03-31T12:00:00Z"))).is_ok());
        assert!(check(&with(Field::EffectiveDate, s("1976-03-31T12:00:00.999Z"))).is_ok());
    }

    #[test]
    fn faults_follow_field_order_with_one_per_field() {
        let mut row = RawRow {
            employee_id: s("'; --"),
            email: s("not-an-email"),
            username: s("a b"),
            upn: b(b"\xfe"),
            display_name: s("a\u{0}b"),
            effective_date: s("31/12/2026"),
            status: s("terminated"),
        };
        assert_eq!(
            faults(&row),
            vec![
                (Some("employee_id".into()), "invalid_value"),
                (Some("email".into()), "invalid_value"),
                (Some("username".into()), "invalid_value"),
                (Some("upn".into()), "invalid_utf8"),
                (Some("display_name".into()), "control_char"),
                (Some("effective_date".into()), "invalid_date"),
            ]
        );
        row.status = s("gone");
        row.employee_id = RawField::default();
        assert_eq!(
            faults(&row),
            vec![
                (Some("employee_id".into()), "missing"),
                (Some("email".into()), "invalid_value"),
                (Some("username".into()), "invalid_value"),
                (Some("upn".into()), "invalid_utf8"),
                (Some("display_name".into()), "control_char"),
                (Some("status".into()), "unknown_status"),
            ]
        );
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

    #[test]
    fn csv_safe_cell_neutralises_formula_starts() {
        for (cell, safe) in [
            ("=1+1", "'=1+1"),
            ("+31 20 123", "'+31 20 123"),
            ("-5", "'-5"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
        ] {
            assert_eq!(csv_safe_cell(cell), safe);
            assert!(matches!(csv_safe_cell(cell), Cow::Owned(_)));
        }
        for plain in ["Ann", "", " =x", "'=x", "a=b", "\nx", "é"] {
            assert!(
                matches!(csv_safe_cell(plain), Cow::Borrowed(p) if p == plain),
                "{plain:?}"
            );
        }
    }
}
