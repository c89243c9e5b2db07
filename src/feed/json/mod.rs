//! Reads a JSON feed document (a Workday RaaS report, a BambooHR changed-employees answer) into
//! numbered records, each a checked `FeedRow` or the faults that reject it.
//!
//! The document is streamed through serde_json once, without building a `serde_json::Value`: a value
//! tree keeps only the last of two equal keys, and the intake rules reject a record whose mapped key is
//! repeated. Every value, mapped or not, goes through serde_json's `deserialize_any`, so the document
//! is accepted exactly when `serde_json::from_slice::<Value>` would accept it (after a leading BOM):
//! strings are UTF-8 checked and lone surrogate escapes refused even in ignored values, and the
//! nesting limit (127 levels) holds everywhere. (serde's `IgnoredAny` would skip both checks.)
//! Only the mapped values of the current record are kept; everything else is skipped as it is read.
//! The field checks themselves live in [`crate::feed::rows`]; the serde pieces shared with the push
//! decoder in `feed/visit.rs`; here, `pointer.rs` parses JSON pointers, `plan.rs` holds the mapped
//! pointers as one tree read once per record, and `locate.rs` walks to the records.

mod locate;
mod plan;
mod pointer;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::domain::FeedRow;
use crate::feed::rows::{Fault, Field, FileError, RowRules};
use crate::feed::visit::{Skip, decode, document_text};
use plan::Plan;
pub use pointer::{escape_token, parse_pointer};

/// Where a Workday RaaS report keeps its records.
pub const DEFAULT_RECORDS_POINTER: &str = "/Report_Entry";

/// Where each person field is in a record: a JSON pointer (RFC 6901) relative to the record, e.g.
/// `"/Employee_ID"` or `"/Worker/Email"`; `None` means the field is not mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonFields {
    /// Pointer to the employee id (required).
    pub employee_id: String,
    /// Pointer to the email.
    pub email: Option<String>,
    /// Pointer to the username.
    pub username: Option<String>,
    /// Pointer to the UPN.
    pub upn: Option<String>,
    /// Pointer to the display name.
    pub display_name: Option<String>,
    /// Pointer to the termination's effective date (required).
    pub effective_date: String,
    /// Pointer to the HR status (required).
    pub status: String,
    /// Attribute name -> pointer. Values must be strings (absent or null: not set; anything else
    /// rejects the record with a `wrong_type` fault for the field `attributes`).
    pub attributes: BTreeMap<String, String>,
}

impl JsonFields {
    /// The pointer mapped to `field`, if any.
    pub fn pointer(&self, field: Field) -> Option<&str> {
        match field {
            Field::EmployeeId => Some(self.employee_id.as_str()),
            Field::Email => self.email.as_deref(),
            Field::Username => self.username.as_deref(),
            Field::Upn => self.upn.as_deref(),
            Field::DisplayName => self.display_name.as_deref(),
            Field::EffectiveDate => Some(self.effective_date.as_str()),
            Field::Status => Some(self.status.as_str()),
        }
    }

    /// Checks that every pointer is a valid JSON pointer; the error names the first bad one. For
    /// configuration checks: [`read_json`] treats an invalid pointer as one that never resolves.
    pub fn validate(&self) -> Result<(), String> {
        for field in Field::ALL {
            if let Some(pointer) = self.pointer(field) {
                parse_pointer(pointer).map_err(|e| format!("{}: {e}", field.as_str()))?;
            }
        }
        for (name, pointer) in &self.attributes {
            parse_pointer(pointer).map_err(|e| format!("attributes.{name}: {e}"))?;
        }
        Ok(())
    }
}

/// One record of a JSON feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonRecord {
    /// 1-based position among the records; rejects are keyed on it.
    pub row: u64,
    /// 0-based position among the records.
    pub index: u64,
    /// JSON pointer to the record in the document, e.g. `/Report_Entry/0` or `/employees/3`.
    pub pointer: String,
    /// The checked row, or every fault that rejects it.
    pub result: Result<FeedRow, Vec<Fault>>,
}

/// Reads a whole JSON feed document. `records_pointer` locates the records (usually
/// [`DEFAULT_RECORDS_POINTER`]): an array (Workday) or an object whose values are the records
/// (BambooHR's `employees`, numbered in document order). A refused document yields a [`FileError`]
/// and no rows; otherwise every record is returned in document order, good or rejected.
///
/// File errors: `invalid_json` for anything serde_json refuses (not JSON, empty, truncated, trailing
/// data, invalid UTF-8, a lone surrogate escape, nesting deeper than 127) and for a key on the path to
/// the records that appears twice (which of the two is meant is unknowable); `pointer_not_found` when
/// the pointer does not resolve or resolves to null; `not_an_array` when it resolves to a string,
/// number or boolean.
pub fn read_json(
    data: &[u8],
    records_pointer: &str,
    fields: &JsonFields,
    rules: &RowRules<'_>,
) -> Result<Vec<JsonRecord>, FileError> {
    let text = document_text(data).map_err(FileError::InvalidJson)?;
    let Ok(tokens) = parse_pointer(records_pointer) else {
        decode(text, Skip).map_err(FileError::InvalidJson)?;
        return Err(FileError::PointerNotFound);
    };
    locate::read_records(text, records_pointer, &tokens, &Plan::new(fields), rules)
}
