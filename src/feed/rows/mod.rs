//! Checks one feed row's raw field values against the intake rules, whatever the source (CSV, JSON, push).
//!
//! A source reader only locates the seven mapped fields and hands over their raw values; everything the
//! rules say about a single value (UTF-8, type, trimming, control characters, byte limits, syntax, dates,
//! status matching) and the order in which faults are reported lives here, so every source judges a row
//! the same way.
//!
//! This file checks a row; `field.rs` holds the seven fields, their raw values and the checks every
//! field shares, `syntax.rs` the syntax of ids and addresses, `date.rs` effective dates and their
//! window, and `fault.rs` the reject codes.

mod date;
mod fault;
mod field;
mod syntax;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::domain::{FeedRow, HrStatus, Person, StatusValues};
pub use date::{date_in_window, parse_effective_date};
pub use fault::{Fault, FileError, Reason};
pub use field::{Field, RawField, RawRow, RawValue, clean_value};
use syntax::{is_address, is_employee_id};

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
