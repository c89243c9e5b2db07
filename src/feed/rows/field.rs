//! The seven mapped fields, their raw values as a source hands them over, and the checks every field
//! shares (UTF-8 or type, trimming, control characters, byte limits).

use crate::domain::FieldNames;

use super::Reason;

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
