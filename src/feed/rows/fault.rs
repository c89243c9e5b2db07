//! Why a row or a whole file is refused: the stable codes stored with every reject.

use std::fmt;

use serde::Serialize;

use super::Field;

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
