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
//! The field checks themselves live in [`crate::feed::rows`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::visit::{
    Found, KeySeed, Skip, Slot, attributes_fault, decode, document_text, finish, scalar_visits,
};
use crate::domain::FeedRow;
use crate::feed::rows::{Fault, Field, FileError, RawRow, Reason, RowRules, check_row};

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
    let plan = Plan::new(fields);
    let mut reader = Reader {
        plan: &plan,
        rules,
        records_pointer,
        target: Target::NotFound,
        records: Vec::new(),
        duplicate: None,
    };
    decode(
        text,
        Locate {
            reader: &mut reader,
            tokens: &tokens,
        },
    )
    .map_err(FileError::InvalidJson)?;
    if let Some(key) = reader.duplicate {
        return Err(FileError::InvalidJson(format!(
            "the key {key:?} on the path {records_pointer:?} to the records appears more than once"
        )));
    }
    match reader.target {
        Target::NotFound => Err(FileError::PointerNotFound),
        Target::NotAnArray => Err(FileError::NotAnArray),
        Target::Records => Ok(reader.records),
    }
}

/// Splits a JSON pointer (RFC 6901) into its unescaped reference tokens: `""` is the whole value,
/// otherwise it starts with '/', and '~' may only appear as `~0` ('~') or `~1` ('/').
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!(
            "{pointer:?} is not a JSON pointer: it must start with '/' (e.g. \"/Employee_ID\")"
        ));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(format!(
                                "{pointer:?} is not a JSON pointer: '~' must be followed by 0 or 1"
                            ));
                        }
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Escapes one reference token for a JSON pointer: '~' as `~0`, '/' as `~1`.
pub fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

/// An array index token: "0" or digits without a leading zero (RFC 6901 §4).
fn array_index(token: &str) -> Option<usize> {
    let bytes = token.as_bytes();
    let canonical = bytes.first().is_some_and(u8::is_ascii_digit)
        && bytes.iter().all(u8::is_ascii_digit)
        && (bytes.len() == 1 || bytes.first() != Some(&b'0'));
    if canonical { token.parse().ok() } else { None }
}

// ---------------------------------------------------------------------------------------------
// The field pointers as a tree, walked once per record.

/// The record itself.
const ROOT: usize = 0;

/// Slots 0..7 are the fields in `Field::ALL` order; the attributes follow.
const FIELD_SLOTS: usize = Field::ALL.len();

/// The mapped pointers merged into a tree of reference tokens, so one pass over a record finds them all.
#[derive(Debug)]
struct Plan {
    nodes: Vec<Node>,
    attribute_names: Vec<String>,
    slots: usize,
}

#[derive(Debug, Default)]
struct Node {
    /// Slots whose pointer ends here.
    targets: Vec<usize>,
    /// Slots whose pointer runs through here to a deeper node.
    below: Vec<usize>,
    /// Child nodes by token (as an object key).
    keys: HashMap<String, usize>,
    /// Child nodes whose token is an array index, by index.
    indices: BTreeMap<usize, usize>,
    /// Child nodes whose token is not an array index.
    non_index: Vec<usize>,
}

impl Plan {
    fn new(fields: &JsonFields) -> Self {
        let mut plan = Self {
            nodes: vec![Node::default()],
            attribute_names: Vec::with_capacity(fields.attributes.len()),
            slots: FIELD_SLOTS + fields.attributes.len(),
        };
        for (slot, field) in Field::ALL.into_iter().enumerate() {
            if let Some(pointer) = fields.pointer(field) {
                plan.add(slot, pointer);
            }
        }
        for (offset, (name, pointer)) in fields.attributes.iter().enumerate() {
            plan.attribute_names.push(name.clone());
            plan.add(FIELD_SLOTS + offset, pointer);
        }
        // A child is always created after its parent, so walking backwards sees every child first.
        for id in (0..plan.nodes.len()).rev() {
            let mut below = Vec::new();
            for &child in plan.nodes[id].keys.values() {
                below.extend_from_slice(&plan.nodes[child].targets);
                below.extend_from_slice(&plan.nodes[child].below);
            }
            plan.nodes[id].below = below;
        }
        plan
    }

    /// Adds one pointer; an invalid pointer never resolves, so its slot stays absent.
    fn add(&mut self, slot: usize, pointer: &str) {
        let Ok(tokens) = parse_pointer(pointer) else {
            return;
        };
        let mut id = ROOT;
        for token in tokens {
            id = match self.nodes[id].keys.get(&token) {
                Some(&child) => child,
                None => {
                    let child = self.nodes.len();
                    self.nodes.push(Node::default());
                    let node = &mut self.nodes[id];
                    match array_index(&token) {
                        Some(index) => {
                            node.indices.insert(index, child);
                        }
                        None => node.non_index.push(child),
                    }
                    node.keys.insert(token, child);
                    child
                }
            };
        }
        self.nodes[id].targets.push(slot);
    }

    /// Checks a record once its slots are filled.
    fn check(&self, slots: &[Slot<'_>], rules: &RowRules<'_>) -> Result<FeedRow, Vec<Fault>> {
        let mut raw = RawRow::default();
        for (field, slot) in Field::ALL.into_iter().zip(slots) {
            *raw.get_mut(field) = slot.raw();
        }
        let mut attributes = BTreeMap::new();
        let (mut duplicate, mut wrong_type) = (false, false);
        let attribute_slots = slots.get(FIELD_SLOTS..).unwrap_or_default();
        for (name, slot) in self.attribute_names.iter().zip(attribute_slots) {
            duplicate |= slot.duplicate;
            match &slot.value {
                Found::Absent => {}
                Found::Str(value) => {
                    attributes.insert(name.clone(), value.to_string());
                }
                Found::WrongType => wrong_type = true,
            }
        }
        let extra = attributes_fault(duplicate, wrong_type)
            .into_iter()
            .collect();
        finish(check_row(&raw, rules), attributes, extra)
    }
}

/// Reads the value at one node of the plan into the record's slots. Yields whether it was an object
/// (which matters for the record itself: anything else is `not_an_object`).
struct NodeSeed<'p, 's, 'de> {
    plan: &'p Plan,
    node: usize,
    slots: &'s mut [Slot<'de>],
}

impl<'de> NodeSeed<'_, '_, 'de> {
    fn set(&mut self, ids: &[usize], value: &Found<'de>) {
        for &id in ids {
            if let Some(slot) = self.slots.get_mut(id) {
                slot.value = value.clone();
            }
        }
    }

    /// A string: the pointers ending here have it; those running deeper meet a non-container.
    fn string(mut self, value: Cow<'de, str>) -> bool {
        let node = &self.plan.nodes[self.node];
        self.set(&node.targets, &Found::Str(value));
        self.set(&node.below, &Found::WrongType);
        false
    }

    /// A number or boolean: wrong for every pointer ending here or running through.
    fn other(mut self) -> bool {
        let node = &self.plan.nodes[self.node];
        self.set(&node.targets, &Found::WrongType);
        self.set(&node.below, &Found::WrongType);
        false
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_, 'de> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_, 'de> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_i128<E>(self, _: i128) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_u128<E>(self, _: u128) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(self.other())
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<bool, E> {
        Ok(self.string(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(self.string(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<bool, E> {
        Ok(self.string(Cow::Owned(v)))
    }

    /// Null: absent for every pointer ending here or running through (the slots start absent, and a
    /// node is read at most once per record: a repeated key's second value is skipped).
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        let plan = self.plan;
        let node = &plan.nodes[self.node];
        self.set(&node.targets, &Found::WrongType);
        // An array where a pointer expects an object key.
        for &child in &node.non_index {
            let child = &plan.nodes[child];
            self.set(&child.targets, &Found::WrongType);
            self.set(&child.below, &Found::WrongType);
        }
        let slots = self.slots;
        let mut index: usize = 0;
        loop {
            let more = match node.indices.get(&index) {
                Some(&child) => seq
                    .next_element_seed(NodeSeed {
                        plan,
                        node: child,
                        slots: &mut *slots,
                    })?
                    .is_some(),
                None => seq.next_element_seed(Skip)?.is_some(),
            };
            if !more {
                return Ok(false);
            }
            index = index.saturating_add(1);
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        let plan = self.plan;
        let node = &plan.nodes[self.node];
        self.set(&node.targets, &Found::WrongType);
        let slots = self.slots;
        let mut seen: Vec<usize> = Vec::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match node.keys.get(key.as_ref()) {
                Some(&child) if seen.contains(&child) => {
                    let child = &plan.nodes[child];
                    for &id in child.targets.iter().chain(&child.below) {
                        if let Some(slot) = slots.get_mut(id) {
                            slot.duplicate = true;
                        }
                    }
                    map.next_value_seed(Skip)?;
                }
                Some(&child) => {
                    seen.push(child);
                    map.next_value_seed(NodeSeed {
                        plan,
                        node: child,
                        slots: &mut *slots,
                    })?;
                }
                None => map.next_value_seed(Skip)?,
            }
        }
        Ok(true)
    }
}

/// Reads one record and checks it.
struct RecordSeed<'p, 'r> {
    plan: &'p Plan,
    rules: &'p RowRules<'r>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = Result<FeedRow, Vec<Fault>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        let mut slots: Vec<Slot<'de>> = vec![Slot::default(); self.plan.slots];
        let seed = NodeSeed {
            plan: self.plan,
            node: ROOT,
            slots: &mut slots,
        };
        if !seed.deserialize(deserializer)? {
            return Ok(Err(vec![Fault::for_row(Reason::NotAnObject)]));
        }
        Ok(self.plan.check(&slots, self.rules))
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the records.

/// What the records pointer resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Nothing, or null.
    NotFound,
    /// A string, number or boolean.
    NotAnArray,
    /// An array or object of records.
    Records,
}

/// The state of one read.
struct Reader<'a, 'r> {
    plan: &'a Plan,
    rules: &'a RowRules<'r>,
    records_pointer: &'a str,
    target: Target,
    records: Vec<JsonRecord>,
    /// A token on the path to the records that appeared twice in its object.
    duplicate: Option<String>,
}

impl Reader<'_, '_> {
    fn push(&mut self, index: u64, pointer: String, result: Result<FeedRow, Vec<Fault>>) {
        self.records.push(JsonRecord {
            row: index.saturating_add(1),
            index,
            pointer,
            result,
        });
    }
}

/// Walks the document along the records pointer's remaining tokens.
struct Locate<'x, 'a, 'r> {
    reader: &'x mut Reader<'a, 'r>,
    tokens: &'x [String],
}

impl<'de> DeserializeSeed<'de> for Locate<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Locate<'_, '_, '_> {
    /// A string, number or boolean: not an array if the pointer ends here, else the pointer does
    /// not resolve.
    fn scalar<E>(self) -> Result<(), E> {
        if self.tokens.is_empty() {
            self.reader.target = Target::NotAnArray;
        }
        Ok(())
    }

    /// Null never resolves a pointer, and null records are no records.
    fn null<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl<'de> Visitor<'de> for Locate<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    scalar_visits!(scalar, null);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let reader = self.reader;
        let Some((first, rest)) = self.tokens.split_first() else {
            // The records, as an array.
            reader.target = Target::Records;
            let (plan, rules) = (reader.plan, reader.rules);
            let mut index: u64 = 0;
            while let Some(result) = seq.next_element_seed(RecordSeed { plan, rules })? {
                let pointer = format!("{}/{index}", reader.records_pointer);
                reader.push(index, pointer, result);
                index = index.saturating_add(1);
            }
            return Ok(());
        };
        let wanted = array_index(first);
        let mut index: usize = 0;
        loop {
            let more = if wanted == Some(index) {
                seq.next_element_seed(Locate {
                    reader: &mut *reader,
                    tokens: rest,
                })?
                .is_some()
            } else {
                seq.next_element_seed(Skip)?.is_some()
            };
            if !more {
                return Ok(());
            }
            index = index.saturating_add(1);
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        let Some((first, rest)) = self.tokens.split_first() else {
            // The records, as the values of an object (BambooHR's `employees`), in document order.
            reader.target = Target::Records;
            let (plan, rules) = (reader.plan, reader.rules);
            let mut index: u64 = 0;
            while let Some(key) = map.next_key_seed(KeySeed)? {
                let result = map.next_value_seed(RecordSeed { plan, rules })?;
                let pointer = format!("{}/{}", reader.records_pointer, escape_token(&key));
                reader.push(index, pointer, result);
                index = index.saturating_add(1);
            }
            return Ok(());
        };
        let mut seen = false;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key != first.as_str() {
                map.next_value_seed(Skip)?;
            } else if seen {
                reader.duplicate.get_or_insert_with(|| first.clone());
                map.next_value_seed(Skip)?;
            } else {
                seen = true;
                map.next_value_seed(Locate {
                    reader: &mut *reader,
                    tokens: rest,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{HrStatus, StatusValues};
    use chrono::{DateTime, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    fn workday_statuses() -> StatusValues {
        StatusValues {
            terminated: vec!["Terminated".into()],
            active: vec!["Active".into()],
        }
    }

    /// The Workday RaaS mapping of the vendor notes.
    fn workday() -> JsonFields {
        JsonFields {
            employee_id: "/Employee_ID".into(),
            email: Some("/Primary_Work_Email".into()),
            username: Some("/User_Name".into()),
            upn: None,
            display_name: Some("/Worker".into()),
            effective_date: "/Termination_Date".into(),
            status: "/Worker_Status".into(),
            attributes: BTreeMap::new(),
        }
    }

    fn read_at(
        data: &[u8],
        pointer: &str,
        fields: &JsonFields,
    ) -> Result<Vec<JsonRecord>, FileError> {
        let statuses = workday_statuses();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::Europe::Amsterdam,
            now: now(),
        };
        read_json(data, pointer, fields, &rules)
    }

    fn read(data: &str) -> Result<Vec<JsonRecord>, FileError> {
        read_at(data.as_bytes(), DEFAULT_RECORDS_POINTER, &workday())
    }

    fn read_ok(data: &str) -> Vec<JsonRecord> {
        match read(data) {
            Ok(records) => records,
            Err(e) => panic!("expected records, got {e:?}"),
        }
    }

    fn code(result: Result<Vec<JsonRecord>, FileError>) -> &'static str {
        match result {
            Ok(records) => panic!("expected a file error, got {records:?}"),
            Err(e) => e.code(),
        }
    }

    fn faults(record: &JsonRecord) -> Vec<(Option<&str>, &'static str)> {
        match &record.result {
            Ok(row) => panic!("expected faults, got {row:?}"),
            Err(f) => f
                .iter()
                .map(|f| (f.field.as_deref(), f.reason.as_str()))
                .collect(),
        }
    }

    fn row(record: &JsonRecord) -> &FeedRow {
        match &record.result {
            Ok(row) => row,
            Err(f) => panic!("expected a valid row, got {f:?}"),
        }
    }

    /// One Workday entry: a terminated row with every mapped key plus the given extra members.
    fn entry(extra: &str) -> String {
        format!(
            r#"{{"Report_Entry":[{{"Employee_ID":"21001","Worker_Status":"Terminated","Termination_Date":"2024-05-31"{extra}}}]}}"#
        )
    }

    #[test]
    fn workday_report_entries_are_checked_numbered_and_pointed_at() {
        let doc = r#"{
          "Report_Entry": [
            {
              "Employee_ID": "21001",
              "Worker": "Jane Doe",
              "Primary_Work_Email": "Jane.Doe@Example.com",
              "User_Name": "jdoe",
              "Worker_Status": "Terminated",
              "Hire_Date": "2019-04-01",
              "Termination_Date": "2024-05-31",
              "Business_Process_Steps_group": [ { "Order": "a", "Step_Type": "Initiation" } ]
            },
            {
              "Employee_ID": "21002",
              "Worker_Status": "TERMINATED",
              "Termination_Date": "2024-05-31-07:00"
            },
            { "Employee_ID": "21003", "Worker_Status": "Active", "Termination_Date": "9999-12-31" },
            { "Employee_ID": "21004", "Worker_Status": "Terminated" }
          ]
        }"#;
        let records = read_ok(doc);
        let numbering: Vec<_> = records
            .iter()
            .map(|r| (r.row, r.index, r.pointer.as_str()))
            .collect();
        assert_eq!(
            numbering,
            [
                (1, 0, "/Report_Entry/0"),
                (2, 1, "/Report_Entry/1"),
                (3, 2, "/Report_Entry/2"),
                (4, 3, "/Report_Entry/3"),
            ]
        );

        let jane = row(&records[0]);
        assert_eq!(jane.person.employee_id, "21001");
        assert_eq!(jane.person.email.as_deref(), Some("jane.doe@example.com"));
        assert_eq!(jane.person.username.as_deref(), Some("jdoe"));
        assert_eq!(jane.person.upn, None);
        assert_eq!(jane.person.display_name.as_deref(), Some("Jane Doe"));
        // A bare date starts at midnight in the configured zone (Amsterdam is UTC+2 in summer).
        assert_eq!(
            jane.status,
            HrStatus::Terminated {
                effective_at: utc(2024, 5, 30, 22)
            }
        );
        // Workday's date with offset: the start of that day at that offset.
        assert_eq!(
            row(&records[1]).status,
            HrStatus::Terminated {
                effective_at: utc(2024, 5, 31, 7)
            }
        );
        // An Active row's sentinel date is never read.
        assert_eq!(row(&records[2]).status, HrStatus::Active);
        assert_eq!(faults(&records[3]), [(Some("effective_date"), "missing")]);
    }

    #[test]
    fn bamboohr_object_of_records_is_read_in_document_order() {
        let fields = JsonFields {
            employee_id: "/id".into(),
            email: Some("/workEmail".into()),
            username: None,
            upn: None,
            display_name: None,
            effective_date: "/terminationDate".into(),
            status: "/status".into(),
            attributes: BTreeMap::from([("action".to_string(), "/action".to_string())]),
        };
        let doc = r#"{
          "latest": "2011-06-02T19:26:23+00:00",
          "employees": {
            "5": { "id": "5", "action": "Updated", "status": "Terminated", "terminationDate": "2026-05-15" },
            "3": { "id": "3", "action": "Inserted", "status": "Active", "lastChanged": "2011-06-02T19:26:23+00:00" },
            "a/b~c": { "id": "x y", "status": "Active" },
            "4": "not a record"
          }
        }"#;
        let records = read_at(doc.as_bytes(), "/employees", &fields).unwrap();
        let numbering: Vec<_> = records
            .iter()
            .map(|r| (r.row, r.index, r.pointer.as_str()))
            .collect();
        assert_eq!(
            numbering,
            [
                (1, 0, "/employees/5"),
                (2, 1, "/employees/3"),
                (3, 2, "/employees/a~1b~0c"),
                (4, 3, "/employees/4"),
            ]
        );
        let five = row(&records[0]);
        assert_eq!(five.person.employee_id, "5");
        assert_eq!(
            five.status,
            HrStatus::Terminated {
                effective_at: utc(2026, 5, 14, 22)
            }
        );
        assert_eq!(five.person.attributes["action"], "Updated");
        assert_eq!(row(&records[1]).status, HrStatus::Active);
        assert_eq!(
            faults(&records[2]),
            [(Some("employee_id"), "invalid_value")]
        );
        assert_eq!(faults(&records[3]), [(None, "not_an_object")]);

        // An empty object of records is an empty feed.
        let empty = read_at(br#"{"employees": {}}"#, "/employees", &fields).unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn nested_pointers_reach_into_objects_and_arrays() {
        let fields = JsonFields {
            employee_id: "/Worker/IDs/1".into(),
            email: Some("/Worker/Contact/Email".into()),
            username: Some("/Worker/Contact/Login".into()),
            upn: Some("/a~1b/c~0d".into()),
            display_name: Some("/Worker/Name".into()),
            effective_date: "/Event/Date".into(),
            status: "/Event/Status".into(),
            attributes: BTreeMap::from([
                (
                    "cost_center".to_string(),
                    "/Worker/Org/0/Cost_Center".to_string(),
                ),
                (
                    "missing".to_string(),
                    "/Worker/Org/5/Cost_Center".to_string(),
                ),
            ]),
        };
        let doc = r#"{"Report_Entry":[{
            "Worker": {
              "IDs": ["old", "E-7"],
              "Contact": {"Email": "ann@example.org", "Login": null},
              "Name": "Ann",
              "Org": [{"Cost_Center": "CC-1"}]
            },
            "a/b": {"c~d": "ann@corp.example.org"},
            "Event": {"Status": "Terminated", "Date": "2026-04-01T09:30:00Z"}
        }]}"#;
        let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
        let ann = row(&records[0]);
        assert_eq!(ann.person.employee_id, "E-7");
        assert_eq!(ann.person.email.as_deref(), Some("ann@example.org"));
        assert_eq!(ann.person.username, None);
        assert_eq!(ann.person.upn.as_deref(), Some("ann@corp.example.org"));
        assert_eq!(ann.person.display_name.as_deref(), Some("Ann"));
        assert_eq!(
            ann.person.attributes,
            BTreeMap::from([("cost_center".to_string(), "CC-1".to_string())])
        );
        assert_eq!(
            ann.status,
            HrStatus::Terminated {
                effective_at: Utc.with_ymd_and_hms(2026, 4, 1, 9, 30, 0).unwrap()
            }
        );

        // A missing or null intermediate means absent; a string, number or array where the pointer
        // needs an object (or an object/string where it needs an array) means wrong_type.
        let doc = r#"{"Report_Entry":[
            {"Worker": null, "Event": {"Status": "Active"}},
            {"Event": {"Status": "Active"}},
            {"Worker": "Jane Doe", "Event": {"Status": "Active"}},
            {"Worker": {"IDs": "E-7", "Contact": 5, "Name": ["Ann"]}, "Event": [], "a/b": true}
        ]}"#;
        let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
        assert_eq!(faults(&records[0]), [(Some("employee_id"), "missing")]);
        assert_eq!(faults(&records[1]), [(Some("employee_id"), "missing")]);
        assert_eq!(
            faults(&records[2]),
            [
                (Some("employee_id"), "wrong_type"),
                (Some("email"), "wrong_type"),
                (Some("username"), "wrong_type"),
                (Some("display_name"), "wrong_type"),
                (Some("attributes"), "wrong_type"),
            ]
        );
        assert_eq!(
            faults(&records[3]),
            [
                (Some("employee_id"), "wrong_type"),
                (Some("email"), "wrong_type"),
                (Some("username"), "wrong_type"),
                (Some("upn"), "wrong_type"),
                (Some("display_name"), "wrong_type"),
                (Some("status"), "wrong_type"),
            ]
        );
    }

    #[test]
    fn records_pointer_may_be_nested_or_the_whole_document() {
        let doc = r#"{"data": {"report": [1, {"Report_Entry": [
            {"Employee_ID": "1", "Worker_Status": "Active"}
        ]}]}}"#;
        let records = read_at(doc.as_bytes(), "/data/report/1/Report_Entry", &workday()).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].pointer, "/data/report/1/Report_Entry/0");
        assert_eq!(row(&records[0]).person.employee_id, "1");

        // "" is the document itself: a bare array of records.
        let bare = br#"[{"Employee_ID": "1", "Worker_Status": "Active"}, 7]"#;
        let records = read_at(bare, "", &workday()).unwrap();
        assert_eq!(records[0].pointer, "/0");
        assert_eq!(records[1].pointer, "/1");
        assert_eq!(faults(&records[1]), [(None, "not_an_object")]);
    }

    #[test]
    fn documents_serde_json_refuses_are_invalid_json() {
        let deep_in_unmapped_value = format!(
            r#"{{"Report_Entry":[{{"Employee_ID":"1","Worker_Status":"Active","x":{}{}}}]}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let cases: &[(&str, &[u8])] = &[
            ("not JSON", b"Employee_ID,Worker_Status\n1,Active\n"),
            ("empty", b""),
            ("only whitespace", b" \r\n\t"),
            ("only a BOM", b"\xEF\xBB\xBF"),
            ("truncated", br#"{"Report_Entry":[{"Employee_ID":"1""#),
            ("trailing data", br#"{"Report_Entry":[]} x"#),
            ("a second document", br#"{"Report_Entry":[]}{"Report_Entry":[]}"#),
            ("trailing comma", br#"{"Report_Entry":[],}"#),
            ("single quotes", br#"{'Report_Entry':[]}"#),
            (
                "invalid UTF-8 in a mapped string",
                b"{\"Report_Entry\":[{\"Employee_ID\":\"\xff\",\"Worker_Status\":\"Active\"}]}",
            ),
            (
                "invalid UTF-8 in an unmapped string",
                b"{\"Report_Entry\":[{\"Employee_ID\":\"1\",\"Worker_Status\":\"Active\",\"x\":\"\xc3\x28\"}]}",
            ),
            ("invalid UTF-8 in a key", b"{\"Report_Entry\":[{\"\xfe\":\"1\"}]}"),
            ("UTF-16 export", b"\xFF\xFE{\x00}\x00"),
            ("a second BOM", b"\xEF\xBB\xBF\xEF\xBB\xBF{\"Report_Entry\":[]}"),
            (
                "lone surrogate in a mapped string",
                br#"{"Report_Entry":[{"Employee_ID":"\ud800","Worker_Status":"Active"}]}"#,
            ),
            (
                "lone surrogate in an unmapped string",
                br#"{"Report_Entry":[{"Employee_ID":"1","Worker_Status":"Active","x":"a\ud800b"}]}"#,
            ),
            (
                "lone trailing surrogate outside the records",
                br#"{"note":"\udc00","Report_Entry":[]}"#,
            ),
            ("lone surrogate in a key", br#"{"\ud800":1,"Report_Entry":[]}"#),
            ("nesting 200 deep", deep_in_unmapped_value.as_bytes()),
            ("raw control character in a string", b"{\"Report_Entry\":[\"a\x01\"]}"),
            ("number out of range", br#"{"x":1e400,"Report_Entry":[]}"#),
        ];
        for (what, data) in cases {
            let result = read_at(data, DEFAULT_RECORDS_POINTER, &workday());
            assert!(
                matches!(result, Err(FileError::InvalidJson(_))),
                "{what}: {result:?}"
            );
            // The same verdict as a serde_json value tree, the reference.
            let tree = document_text(data)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
            assert!(tree.is_none(), "{what}: serde_json accepts it");
        }
    }

    #[test]
    fn invalid_json_wins_over_pointer_errors_and_names_the_problem() {
        match read(r#"{"Other": []} trailing"#) {
            Err(FileError::InvalidJson(msg)) => assert!(msg.contains("trailing"), "{msg}"),
            other => panic!("{other:?}"),
        }
        match read_at(b"{\"a\":\"\xff\"}", DEFAULT_RECORDS_POINTER, &workday()) {
            Err(FileError::InvalidJson(msg)) => assert!(msg.contains("byte 6"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            code(read_at(b"[1", "not a pointer", &workday())),
            "invalid_json"
        );
        assert_eq!(
            code(read_at(b"[]", "not a pointer", &workday())),
            "pointer_not_found"
        );
    }

    #[test]
    fn nesting_up_to_127_levels_is_accepted_and_128_refused() {
        // Two levels are the object and the Report_Entry array; the record is the third.
        let doc = |depth: usize| {
            let inner = depth - 3;
            format!(
                r#"{{"Report_Entry":[{{"Employee_ID":"1","Worker_Status":"Active","x":{}{}}}]}}"#,
                "[".repeat(inner),
                "]".repeat(inner)
            )
        };
        let records = read_ok(&doc(127));
        assert_eq!(row(&records[0]).person.employee_id, "1");
        assert_eq!(code(read(&doc(128))), "invalid_json");
        assert!(serde_json::from_str::<serde_json::Value>(&doc(127)).is_ok());
        assert!(serde_json::from_str::<serde_json::Value>(&doc(128)).is_err());
    }

    #[test]
    fn pointer_not_found_when_the_records_are_missing_or_null() {
        for doc in [
            "{}",
            r#"{"Other": []}"#,
            r#"{"report_entry": []}"#,
            r#"[{"Employee_ID": "1", "Worker_Status": "Active"}]"#,
            "[]",
            r#"{"Report_Entry": null}"#,
            "null",
            r#""Report_Entry""#,
            "5",
        ] {
            assert_eq!(code(read(doc)), "pointer_not_found", "{doc}");
        }
        assert_eq!(
            code(read_at(br#"{"a": {"b": []}}"#, "/a/c", &workday())),
            "pointer_not_found"
        );
        assert_eq!(
            code(read_at(br#"{"a": [[]]}"#, "/a/1", &workday())),
            "pointer_not_found"
        );
        assert_eq!(
            code(read_at(br#"{"a": [[]]}"#, "/a/01", &workday())),
            "pointer_not_found"
        );
        // A Workday report read with the BambooHR pointer.
        assert_eq!(
            code(read_at(
                br#"{"Report_Entry": []}"#,
                "/employees",
                &workday()
            )),
            "pointer_not_found"
        );
    }

    #[test]
    fn not_an_array_when_the_records_are_a_scalar() {
        for doc in [
            r#"{"Report_Entry": "x"}"#,
            r#"{"Report_Entry": 5}"#,
            r#"{"Report_Entry": -1.5}"#,
            r#"{"Report_Entry": true}"#,
        ] {
            assert_eq!(code(read(doc)), "not_an_array", "{doc}");
        }
        assert_eq!(code(read_at(b"\"x\"", "", &workday())), "not_an_array");
    }

    #[test]
    fn an_empty_array_is_a_valid_empty_feed() {
        assert!(read_ok(r#"{"Report_Entry": []}"#).is_empty());
        assert!(read_ok(" \n{ \"Report_Entry\" : [ ] }\n").is_empty());
    }

    #[test]
    fn a_repeated_key_on_the_path_to_the_records_refuses_the_document() {
        let doc = r#"{"Report_Entry": [], "Report_Entry": [{"Employee_ID": "1", "Worker_Status": "Active"}]}"#;
        match read(doc) {
            Err(FileError::InvalidJson(msg)) => assert!(msg.contains("Report_Entry"), "{msg}"),
            other => panic!("{other:?}"),
        }
        // A repeated key elsewhere in the document does not matter.
        let doc = r#"{"x": 1, "x": 2, "Report_Entry": []}"#;
        assert!(read_ok(doc).is_empty());
    }

    #[test]
    fn a_bom_before_the_document_is_skipped() {
        let mut data = b"\xEF\xBB\xBF".to_vec();
        data.extend_from_slice(entry("").as_bytes());
        let records = read_at(&data, DEFAULT_RECORDS_POINTER, &workday()).unwrap();
        assert_eq!(row(&records[0]).person.employee_id, "21001");
    }

    #[test]
    fn a_repeated_mapped_key_rejects_the_record_naming_the_field() {
        let doc = r#"{"Report_Entry":[
            {"Employee_ID":"1","Employee_ID":"2","Worker_Status":"Active"},
            {"Employee_ID":"3","Worker_Status":"Active","Primary_Work_Email":5,"Primary_Work_Email":"a@b.org"},
            {"Employee_ID":"4","Worker_Status":"Active"}
        ]}"#;
        let records = read_ok(doc);
        assert_eq!(
            faults(&records[0]),
            [(Some("employee_id"), "duplicate_key")]
        );
        // duplicate_key comes before the type check.
        assert_eq!(faults(&records[1]), [(Some("email"), "duplicate_key")]);
        // The other records are unaffected.
        assert_eq!(row(&records[2]).person.employee_id, "4");

        // Identical values still count as a repeated key.
        let records = read_ok(&entry(r#","Worker":"A","Worker":"A""#));
        assert_eq!(
            faults(&records[0]),
            [(Some("display_name"), "duplicate_key")]
        );
    }

    #[test]
    fn a_repeated_key_on_a_nested_pointer_is_a_duplicate_of_that_field() {
        let mut fields = workday();
        fields.email = Some("/Contact/Email".into());
        fields.username = Some("/Contact/Login".into());
        let doc = r#"{"Report_Entry":[
            {"Employee_ID":"1","Worker_Status":"Active","Contact":{"Email":"a@b.org","Email":"c@d.org"}},
            {"Employee_ID":"2","Worker_Status":"Active","Contact":{"Email":"a@b.org"},"Contact":{}},
            {"Employee_ID":"3","Worker_Status":"Active","Contact":{"Email":"a@b.org","Other":1,"Other":2}}
        ]}"#;
        let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
        assert_eq!(faults(&records[0]), [(Some("email"), "duplicate_key")]);
        assert_eq!(
            faults(&records[1]),
            [
                (Some("email"), "duplicate_key"),
                (Some("username"), "duplicate_key"),
            ]
        );
        assert_eq!(row(&records[2]).person.email.as_deref(), Some("a@b.org"));
    }

    #[test]
    fn a_repeated_unmapped_key_is_ignored() {
        let records = read_ok(&entry(
            r#","Hire_Date":"2019-04-01","Hire_Date":{"x":[1,2]}"#,
        ));
        assert_eq!(row(&records[0]).person.employee_id, "21001");
    }

    #[test]
    fn non_string_values_are_wrong_type_never_converted() {
        let doc = r#"{"Report_Entry":[
            {"Employee_ID":21001,"Worker_Status":"Active"},
            {"Employee_ID":"1","Worker_Status":true},
            {"Employee_ID":"1","Worker_Status":"Active","Worker":{"name":"Ann"}},
            {"Employee_ID":"1","Worker_Status":"Active","User_Name":["ann"]},
            {"Employee_ID":"1","Worker_Status":"Active","Primary_Work_Email":1.5e3},
            {"Employee_ID":"1","Worker_Status":"Terminated","Termination_Date":20240531}
        ]}"#;
        let records = read_ok(doc);
        let got: Vec<_> = records.iter().map(faults).collect();
        assert_eq!(
            got,
            [
                vec![(Some("employee_id"), "wrong_type")],
                vec![(Some("status"), "wrong_type")],
                vec![(Some("display_name"), "wrong_type")],
                vec![(Some("username"), "wrong_type")],
                vec![(Some("email"), "wrong_type")],
                vec![(Some("effective_date"), "wrong_type")],
            ]
        );
    }

    #[test]
    fn unmapped_keys_may_hold_anything() {
        let records = read_ok(&entry(
            r#","Hire_Date":20190401,"x":[{"y":null},true,-0.5e-3,{}],"Worker_Status ":1"#,
        ));
        assert!(records[0].result.is_ok(), "{:?}", records[0].result);
    }

    #[test]
    fn null_and_blank_mean_absent() {
        let doc = r#"{"Report_Entry":[
            {"Employee_ID":"1","Worker_Status":"Active","Primary_Work_Email":null,"Worker":"  "},
            {"Employee_ID":null,"Worker_Status":null},
            {"Employee_ID":"2","Worker_Status":"Terminated","Termination_Date":null}
        ]}"#;
        let records = read_ok(doc);
        let first = row(&records[0]);
        assert_eq!(first.person.email, None);
        assert_eq!(first.person.display_name, None);
        assert_eq!(
            faults(&records[1]),
            [
                (Some("employee_id"), "missing"),
                (Some("status"), "missing")
            ]
        );
        assert_eq!(faults(&records[2]), [(Some("effective_date"), "missing")]);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let records = read_ok(&entry(r#","Worker":"Ren\u00e9e \ud83d\ude00 \"R\"""#));
        assert_eq!(
            row(&records[0]).person.display_name.as_deref(),
            Some("Renée 😀 \"R\"")
        );
        // A key spelled with an escape is the same key.
        let records =
            read_ok(r#"{"Report_Entry":[{"Employee\u005fID":"7","Worker_Status":"Active"}]}"#);
        assert_eq!(row(&records[0]).person.employee_id, "7");
    }

    #[test]
    fn elements_that_are_not_objects_are_rejected_and_still_numbered() {
        let doc = r#"{"Report_Entry":[1,"x",null,true,[{"Employee_ID":"1"}],
            {"Employee_ID":"6","Worker_Status":"Active"}]}"#;
        let records = read_ok(doc);
        assert_eq!(records.len(), 6);
        for record in &records[..5] {
            assert_eq!(faults(record), [(None, "not_an_object")], "{record:?}");
        }
        assert_eq!(records[5].row, 6);
        assert_eq!(records[5].index, 5);
        assert_eq!(records[5].pointer, "/Report_Entry/5");
        assert_eq!(row(&records[5]).person.employee_id, "6");
    }

    #[test]
    fn attributes_are_strings_and_a_non_string_rejects_the_record() {
        let mut fields = workday();
        fields.attributes = BTreeMap::from([
            ("cost_center".to_string(), "/Cost_Center".to_string()),
            ("hire_date".to_string(), "/Hire_Date".to_string()),
            ("manager".to_string(), "/Manager/ID".to_string()),
        ]);
        let doc = r#"{"Report_Entry":[
            {"Employee_ID":"1","Worker_Status":"Active","Cost_Center":" CC 1 ","Hire_Date":null,"Manager":{"ID":"M1"}},
            {"Employee_ID":"2","Worker_Status":"Active","Cost_Center":42},
            {"Employee_ID":"3","Worker_Status":"Active","Manager":{"ID":"M1","ID":"M2"},"Cost_Center":[]},
            {"Employee_ID":"bad id","Worker_Status":"Active","Hire_Date":{"d":"2019-04-01"}}
        ]}"#;
        let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
        assert_eq!(
            row(&records[0]).person.attributes,
            BTreeMap::from([
                ("cost_center".to_string(), " CC 1 ".to_string()),
                ("manager".to_string(), "M1".to_string()),
            ])
        );
        assert_eq!(faults(&records[1]), [(Some("attributes"), "wrong_type")]);
        assert_eq!(faults(&records[2]), [(Some("attributes"), "duplicate_key")]);
        assert_eq!(
            faults(&records[3]),
            [
                (Some("employee_id"), "invalid_value"),
                (Some("attributes"), "wrong_type"),
            ]
        );
    }

    #[test]
    fn several_faults_are_listed_in_field_order() {
        let mut fields = workday();
        fields.upn = Some("/UPN".into());
        fields.attributes = BTreeMap::from([("x".to_string(), "/X".to_string())]);
        // Keys in the reverse of the fault order, to show the order is the rules', not the document's.
        let doc = r#"{"Report_Entry":[{
            "X": false,
            "Worker_Status": "Terminated",
            "Termination_Date": "31/05/2024",
            "Worker": "Ann\u0000",
            "UPN": "not an address",
            "User_Name": "a b",
            "Primary_Work_Email": "a@@b.org",
            "Employee_ID": "'; DROP TABLE removals; --"
        }]}"#;
        let records = read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, &fields).unwrap();
        assert_eq!(
            faults(&records[0]),
            [
                (Some("employee_id"), "invalid_value"),
                (Some("email"), "invalid_value"),
                (Some("username"), "invalid_value"),
                (Some("upn"), "invalid_value"),
                (Some("display_name"), "control_char"),
                (Some("effective_date"), "invalid_date"),
                (Some("attributes"), "wrong_type"),
            ]
        );
    }

    #[test]
    fn pointers_parse_per_rfc_6901() {
        assert_eq!(parse_pointer("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_pointer("/").unwrap(), [""]);
        assert_eq!(parse_pointer("/a~1b/c~0d/0").unwrap(), ["a/b", "c~d", "0"]);
        assert_eq!(parse_pointer("/~01").unwrap(), ["~1"]);
        assert!(parse_pointer("Employee_ID").is_err());
        assert!(parse_pointer("/a~2").is_err());
        assert!(parse_pointer("/a~").is_err());
        assert_eq!(escape_token("a/b~c"), "a~1b~0c");
        assert_eq!(escape_token("plain"), "plain");
        assert_eq!(array_index("0"), Some(0));
        assert_eq!(array_index("12"), Some(12));
        assert_eq!(array_index("01"), None);
        assert_eq!(array_index("-"), None);
        assert_eq!(array_index("+1"), None);
        assert_eq!(array_index(""), None);

        let mut fields = workday();
        assert!(fields.validate().is_ok());
        fields.attributes.insert("cc".into(), "Cost_Center".into());
        let err = fields.validate().unwrap_err();
        assert!(err.starts_with("attributes.cc:"), "{err}");
        fields.attributes.clear();
        fields.status = "Worker_Status".into();
        let err = fields.validate().unwrap_err();
        assert!(err.starts_with("status:"), "{err}");
    }

    #[test]
    fn an_invalid_field_pointer_never_resolves() {
        let mut fields = workday();
        fields.email = Some("Primary_Work_Email".into());
        let records = read_ok_with(&entry(r#","Primary_Work_Email":"a@b.org""#), &fields);
        assert_eq!(row(&records[0]).person.email, None);
    }

    fn read_ok_with(doc: &str, fields: &JsonFields) -> Vec<JsonRecord> {
        read_at(doc.as_bytes(), DEFAULT_RECORDS_POINTER, fields).unwrap()
    }

    #[test]
    fn the_same_pointer_may_feed_several_fields() {
        let mut fields = workday();
        fields.upn = Some("/Primary_Work_Email".into());
        fields.attributes =
            BTreeMap::from([("mail".to_string(), "/Primary_Work_Email".to_string())]);
        let records = read_ok_with(
            &entry(r#","Primary_Work_Email":"Ann@Example.org""#),
            &fields,
        );
        let ann = row(&records[0]);
        assert_eq!(ann.person.email.as_deref(), Some("ann@example.org"));
        assert_eq!(ann.person.upn.as_deref(), Some("Ann@Example.org"));
        assert_eq!(ann.person.attributes["mail"], "Ann@Example.org");
    }
}
