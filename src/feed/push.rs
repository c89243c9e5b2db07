//! Decodes the body of a push (POST /v1/terminations) into numbered records, each a checked `FeedRow`
//! or the faults that reject it.
//!
//! The body is decoded as a JSON feed document is (see [`crate::feed::json`]): UTF-8 only, one leading
//! BOM skipped, accepted exactly when serde_json would accept it, repeated keys seen. It is one record
//! (an object) or a non-empty array of records. Record keys are the seven field names and `attributes`
//! (case-sensitive); any other key is an `unknown_field` fault naming it, so a typo is never dropped.
//! Push statuses are always `terminated` / `active`, whatever the feed configures.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::visit::{
    ATTRIBUTES, Found, KeySeed, Skip, Slot, ValueSeed, attributes_fault, decode, document_text,
    finish, scalar_visits,
};
use crate::domain::{FeedRow, StatusValues};
use crate::feed::rows::{Fault, Field, RawRow, Reason, RowRules, check_row};

/// One record of a push body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRecord {
    /// 0-based position in the body array (a single-object body is index 0).
    pub index: u64,
    /// `index + 1`.
    pub row: u64,
    /// The checked row, or every fault that rejects it.
    pub result: Result<FeedRow, Vec<Fault>>,
}

/// Why a whole push body was refused (HTTP 400): none of its records are looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushError {
    /// The body is not a valid JSON document; holds the parser's message.
    InvalidJson(String),
    /// The body is valid JSON but neither an object nor an array.
    NotObjectOrArray,
    /// The body is an empty array.
    EmptyBatch,
}

impl PushError {
    /// The stable snake_case code of the 400 reply.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::NotObjectOrArray => "not_object_or_array",
            Self::EmptyBatch => "empty_batch",
        }
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidJson(msg) => write!(f, "the body is not valid JSON: {msg}"),
            Self::NotObjectOrArray => {
                f.write_str("the body must be one record (an object) or an array of records")
            }
            Self::EmptyBatch => f.write_str("the body is an empty array: there is nothing to do"),
        }
    }
}

impl std::error::Error for PushError {}

/// The status values of the push API: `terminated` and `active` (ASCII case-insensitive), independent
/// of the feed's configured values.
pub fn push_statuses() -> StatusValues {
    StatusValues {
        terminated: vec!["terminated".to_string()],
        active: vec!["active".to_string()],
    }
}

/// Decodes a push body. `rules` gives the zone for bare dates and the instant the date window is
/// measured from; its status values are replaced by [`push_statuses`]. Every record is returned in
/// body order, good or rejected: the caller commits the batch only when none is rejected.
pub fn decode_push(body: &[u8], rules: &RowRules<'_>) -> Result<Vec<PushRecord>, PushError> {
    let text = document_text(body).map_err(PushError::InvalidJson)?;
    let statuses = push_statuses();
    let rules = RowRules {
        statuses: &statuses,
        timezone: rules.timezone,
        now: rules.now,
    };
    match decode(text, Body { rules: &rules }).map_err(PushError::InvalidJson)? {
        None => Err(PushError::NotObjectOrArray),
        Some(records) if records.is_empty() => Err(PushError::EmptyBatch),
        Some(records) => Ok(records),
    }
}

/// The whole body: `None` when it is neither an object nor an array.
struct Body<'a, 'r> {
    rules: &'a RowRules<'r>,
}

impl<'de> DeserializeSeed<'de> for Body<'_, '_> {
    type Value = Option<Vec<PushRecord>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Body<'_, '_> {
    /// Anything but a record or an array of records: no records to read.
    fn no_records<E>(self) -> Result<Option<Vec<PushRecord>>, E> {
        Ok(None)
    }
}

impl<'de> Visitor<'de> for Body<'_, '_> {
    type Value = Option<Vec<PushRecord>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record or an array of records")
    }

    scalar_visits!(no_records, no_records);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut records = Vec::new();
        let mut index: u64 = 0;
        while let Some(result) = seq.next_element_seed(RecordSeed { rules: self.rules })? {
            records.push(PushRecord {
                index,
                row: index.saturating_add(1),
                result,
            });
            index = index.saturating_add(1);
        }
        Ok(Some(records))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let result = read_record(map, self.rules)?;
        Ok(Some(vec![PushRecord {
            index: 0,
            row: 1,
            result,
        }]))
    }
}

/// One element of a body array.
struct RecordSeed<'a, 'r> {
    rules: &'a RowRules<'r>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_> {
    type Value = Result<FeedRow, Vec<Fault>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl RecordSeed<'_, '_> {
    fn not_an_object(&self) -> Result<FeedRow, Vec<Fault>> {
        Err(vec![Fault::for_row(Reason::NotAnObject)])
    }
}

impl RecordSeed<'_, '_> {
    fn not_a_record<E>(self) -> Result<Result<FeedRow, Vec<Fault>>, E> {
        Ok(self.not_an_object())
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_> {
    type Value = Result<FeedRow, Vec<Fault>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a record")
    }

    scalar_visits!(not_a_record, not_a_record);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(self.not_an_object())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        read_record(map, self.rules)
    }
}

/// Reads one record object and checks it: the seven fields, then the attributes, then unknown keys in
/// the order they first appear (a repeated unknown key is named once).
fn read_record<'de, A: MapAccess<'de>>(
    mut map: A,
    rules: &RowRules<'_>,
) -> Result<Result<FeedRow, Vec<Fault>>, A::Error> {
    let mut fields: [Slot<'de>; Field::ALL.len()] = Default::default();
    let mut seen = [false; Field::ALL.len()];
    let mut attributes = Attributes::default();
    let mut unknown: Vec<String> = Vec::new();
    let mut unknown_seen: HashSet<Cow<'de, str>> = HashSet::new();

    while let Some(key) = map.next_key_seed(KeySeed)? {
        let known = Field::ALL.iter().position(|f| f.as_str() == key);
        if let Some((slot, seen)) = known.and_then(|i| fields.get_mut(i).zip(seen.get_mut(i))) {
            if *seen {
                slot.duplicate = true;
                map.next_value_seed(Skip)?;
            } else {
                *seen = true;
                slot.value = map.next_value_seed(ValueSeed)?;
            }
        } else if key == ATTRIBUTES {
            if attributes.seen {
                attributes.duplicate = true;
                map.next_value_seed(Skip)?;
            } else {
                attributes.seen = true;
                map.next_value_seed(AttributesSeed {
                    attributes: &mut attributes,
                })?;
            }
        } else {
            if !unknown_seen.contains(&key) {
                unknown.push(key.to_string());
                unknown_seen.insert(key);
            }
            map.next_value_seed(Skip)?;
        }
    }

    let mut raw = RawRow::default();
    for (field, slot) in Field::ALL.into_iter().zip(&fields) {
        *raw.get_mut(field) = slot.raw();
    }
    let mut extra: Vec<Fault> = attributes_fault(attributes.duplicate, attributes.wrong_type)
        .into_iter()
        .collect();
    extra.extend(unknown.into_iter().map(|key| Fault {
        field: Some(key),
        reason: Reason::UnknownField,
    }));
    Ok(finish(check_row(&raw, rules), attributes.values, extra))
}

/// The `attributes` member of a record as it is read.
#[derive(Debug, Default)]
struct Attributes {
    /// The key `attributes` has been seen.
    seen: bool,
    /// `attributes` appeared twice, or a key inside it did.
    duplicate: bool,
    /// `attributes` is not an object or null, or one of its values is not a string.
    wrong_type: bool,
    /// The string values.
    values: BTreeMap<String, String>,
}

/// Reads the value of `attributes`: null (no attributes) or an object whose values are strings.
struct AttributesSeed<'a> {
    attributes: &'a mut Attributes,
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl AttributesSeed<'_> {
    fn wrong_type<E>(self) -> Result<(), E> {
        self.attributes.wrong_type = true;
        Ok(())
    }

    /// `"attributes": null` is no attributes, as null is absent for every field.
    fn absent<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of strings")
    }

    scalar_visits!(wrong_type, absent);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        Skip.visit_seq(seq)?;
        self.wrong_type()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let attributes = self.attributes;
        // Keys of non-string values are remembered too, so a repeat is seen whatever the values.
        let mut keys: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value = map.next_value_seed(ValueSeed)?;
            if keys.contains(&key) {
                attributes.duplicate = true;
                continue;
            }
            match value {
                Found::Str(value) => {
                    attributes
                        .values
                        .insert(key.to_string(), value.into_owned());
                }
                // Inside the object a value must be a string: null is not one.
                Found::Absent | Found::WrongType => attributes.wrong_type = true,
            }
            keys.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::HrStatus;
    use chrono::{DateTime, TimeZone, Utc};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 31, 12, 0, 0).unwrap()
    }

    /// Feed statuses that differ from the push API's, to show they are not used.
    fn feed_statuses() -> StatusValues {
        StatusValues {
            terminated: vec!["Withdrawn".into()],
            active: vec!["Employed".into()],
        }
    }

    fn decode(body: &[u8]) -> Result<Vec<PushRecord>, PushError> {
        let statuses = feed_statuses();
        let rules = RowRules {
            statuses: &statuses,
            timezone: chrono_tz::Europe::Amsterdam,
            now: now(),
        };
        decode_push(body, &rules)
    }

    fn decode_ok(body: &str) -> Vec<PushRecord> {
        match decode(body.as_bytes()) {
            Ok(records) => records,
            Err(e) => panic!("expected records, got {e:?}"),
        }
    }

    fn faults(record: &PushRecord) -> Vec<(Option<&str>, &'static str)> {
        match &record.result {
            Ok(row) => panic!("expected faults, got {row:?}"),
            Err(f) => f
                .iter()
                .map(|f| (f.field.as_deref(), f.reason.as_str()))
                .collect(),
        }
    }

    fn row(record: &PushRecord) -> &FeedRow {
        match &record.result {
            Ok(row) => row,
            Err(f) => panic!("expected a valid row, got {f:?}"),
        }
    }

    fn one(record_members: &str) -> PushRecord {
        let mut records = decode_ok(&format!("{{{record_members}}}"));
        assert_eq!(records.len(), 1);
        records.remove(0)
    }

    const GOOD: &str =
        r#""employee_id":"E1","status":"terminated","effective_date":"2026-04-01T09:00:00Z""#;

    #[test]
    fn a_single_object_is_index_0_row_1() {
        let records = decode_ok(
            r#"{"employee_id":"E1005","email":"Ann.Smith@Example.org","username":"ASmith",
                "upn":"ASmith@Corp.Example.org","display_name":"  Ann Smith ",
                "effective_date":"2026-04-01","status":"Terminated"}"#,
        );
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].index, records[0].row), (0, 1));
        let ann = row(&records[0]);
        assert_eq!(ann.person.employee_id, "E1005");
        assert_eq!(ann.person.email.as_deref(), Some("ann.smith@example.org"));
        assert_eq!(ann.person.username.as_deref(), Some("ASmith"));
        assert_eq!(ann.person.upn.as_deref(), Some("ASmith@Corp.Example.org"));
        assert_eq!(ann.person.display_name.as_deref(), Some("Ann Smith"));
        assert!(ann.person.attributes.is_empty());
        assert_eq!(
            ann.status,
            HrStatus::Terminated {
                effective_at: Utc.with_ymd_and_hms(2026, 3, 31, 22, 0, 0).unwrap()
            }
        );
    }

    #[test]
    fn an_array_is_numbered_from_index_0_and_row_1() {
        let records = decode_ok(
            r#"[
              {"employee_id":"E1","status":"active"},
              {"employee_id":"E2","status":"terminated"},
              7,
              {"employee_id":"E4","status":"ACTIVE","effective_date":"9999-12-31"}
            ]"#,
        );
        let numbering: Vec<_> = records.iter().map(|r| (r.index, r.row)).collect();
        assert_eq!(numbering, [(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(row(&records[0]).status, HrStatus::Active);
        assert_eq!(faults(&records[1]), [(Some("effective_date"), "missing")]);
        assert_eq!(faults(&records[2]), [(None, "not_an_object")]);
        // An Active row's stale date is never read.
        assert_eq!(row(&records[3]).status, HrStatus::Active);
    }

    #[test]
    fn elements_that_are_not_objects_are_rejected() {
        let records = decode_ok(r#"[null, "E1", true, [], [{"employee_id":"E1"}], 1.5]"#);
        assert_eq!(records.len(), 6);
        for record in &records {
            assert_eq!(faults(record), [(None, "not_an_object")], "{record:?}");
        }
    }

    #[test]
    fn an_empty_array_is_an_empty_batch() {
        assert_eq!(decode(b"[]"), Err(PushError::EmptyBatch));
        assert_eq!(decode(b" [ ] \n"), Err(PushError::EmptyBatch));
        assert_eq!(PushError::EmptyBatch.code(), "empty_batch");
    }

    #[test]
    fn a_scalar_body_is_not_an_object_or_array() {
        for body in ["5", "-1.5", "\"E1\"", "null", "true"] {
            assert_eq!(
                decode(body.as_bytes()),
                Err(PushError::NotObjectOrArray),
                "{body}"
            );
        }
        assert_eq!(PushError::NotObjectOrArray.code(), "not_object_or_array");
    }

    #[test]
    fn bodies_serde_json_refuses_are_invalid_json() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let cases: &[&[u8]] = &[
            b"",
            b"  ",
            b"{",
            br#"{"employee_id":"E1""#,
            br#"{"employee_id":"E1"} x"#,
            b"{}{}",
            b"[] []",
            b"employee_id=E1&status=terminated",
            b"{\"employee_id\":\"\xff\",\"status\":\"active\"}",
            b"{\"x\":\"\xc3\x28\",\"employee_id\":\"E1\",\"status\":\"active\"}",
            br#"{"employee_id":"\ud800","status":"active"}"#,
            br#"{"x":"\udc00","employee_id":"E1","status":"active"}"#,
            deep.as_bytes(),
            b"\xEF\xBB\xBF\xEF\xBB\xBF{}",
            b"\xFF\xFE[\x00]\x00",
        ];
        for body in cases {
            let result = decode(body);
            assert!(
                matches!(result, Err(PushError::InvalidJson(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(result.unwrap_err().code(), "invalid_json");
        }
    }

    #[test]
    fn a_bom_before_the_body_is_skipped() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(format!("{{{GOOD}}}").as_bytes());
        let records = decode(&body).unwrap();
        assert_eq!(row(&records[0]).person.employee_id, "E1");
    }

    #[test]
    fn an_unknown_key_is_named_in_its_fault() {
        let record = one(&format!(r#"{GOOD},"emial":"ann@example.org""#));
        assert_eq!(faults(&record), [(Some("emial"), "unknown_field")]);

        // Keys are case-sensitive; a repeated unknown key is named once.
        let record = one(r#""Employee_ID":"E1","status":"active","x":1,"x":{}"#);
        assert_eq!(
            faults(&record),
            [
                (Some("employee_id"), "missing"),
                (Some("Employee_ID"), "unknown_field"),
                (Some("x"), "unknown_field"),
            ]
        );
    }

    #[test]
    fn attributes_of_strings_are_stored_in_the_person() {
        let record = one(&format!(
            r#"{GOOD},"attributes":{{"cost_center":"CC-1","manager":" M 1 ","empty":""}}"#
        ));
        assert_eq!(
            row(&record).person.attributes,
            BTreeMap::from([
                ("cost_center".to_string(), "CC-1".to_string()),
                ("empty".to_string(), String::new()),
                ("manager".to_string(), " M 1 ".to_string()),
            ])
        );
        let record = one(&format!(r#"{GOOD},"attributes":null"#));
        assert!(row(&record).person.attributes.is_empty());
        let record = one(&format!(r#"{GOOD},"attributes":{{}}"#));
        assert!(row(&record).person.attributes.is_empty());
    }

    #[test]
    fn attributes_that_are_not_an_object_of_strings_are_wrong_type() {
        for attributes in [
            r#"{"cost_center":42}"#,
            r#"{"a":"x","b":true}"#,
            r#"{"a":null}"#,
            r#"{"a":["x"]}"#,
            r#"{"a":{"b":"c"}}"#,
            r#""cost_center=CC-1""#,
            r#"["CC-1"]"#,
            "7",
        ] {
            let record = one(&format!(r#"{GOOD},"attributes":{attributes}"#));
            assert_eq!(
                faults(&record),
                [(Some("attributes"), "wrong_type")],
                "{attributes}"
            );
        }
    }

    #[test]
    fn a_repeated_key_is_a_duplicate_of_its_field() {
        let record = one(&format!(r#"{GOOD},"email":"a@b.org","email":"a@b.org""#));
        assert_eq!(faults(&record), [(Some("email"), "duplicate_key")]);
        let record = one(r#""employee_id":"E1","employee_id":7,"status":"active""#);
        assert_eq!(faults(&record), [(Some("employee_id"), "duplicate_key")]);
        let record = one(&format!(r#"{GOOD},"attributes":{{}},"attributes":{{}}"#));
        assert_eq!(faults(&record), [(Some("attributes"), "duplicate_key")]);
        let record = one(&format!(r#"{GOOD},"attributes":{{"a":1,"a":"x"}}"#));
        assert_eq!(faults(&record), [(Some("attributes"), "duplicate_key")]);
    }

    #[test]
    fn faults_follow_field_order_then_attributes_then_unknown_keys_in_document_order() {
        let record = one(
            r#""zzz":1,"attributes":{"a":1},"status":"Withdrawn","aaa":2,
               "display_name":"Ann\u0007","upn":"x","username":"a b",
               "email":5,"employee_id":"'; DROP TABLE removals; --","zzz":3"#,
        );
        assert_eq!(
            faults(&record),
            [
                (Some("employee_id"), "invalid_value"),
                (Some("email"), "wrong_type"),
                (Some("username"), "invalid_value"),
                (Some("upn"), "invalid_value"),
                (Some("display_name"), "control_char"),
                (Some("status"), "unknown_status"),
                (Some("attributes"), "wrong_type"),
                (Some("zzz"), "unknown_field"),
                (Some("aaa"), "unknown_field"),
            ]
        );
    }

    #[test]
    fn push_statuses_are_terminated_and_active_whatever_the_feed_says() {
        let record = one(r#""employee_id":"E1","status":"Employed""#);
        assert_eq!(faults(&record), [(Some("status"), "unknown_status")]);
        let record = one(r#""employee_id":"E1","status":" Active ""#);
        assert_eq!(row(&record).status, HrStatus::Active);
        let record =
            one(r#""employee_id":"E1","status":"TERMINATED","effective_date":"2026-04-01-07:00""#);
        assert_eq!(
            row(&record).status,
            HrStatus::Terminated {
                effective_at: Utc.with_ymd_and_hms(2026, 4, 1, 7, 0, 0).unwrap()
            }
        );
        assert_eq!(push_statuses(), StatusValues::default());
    }

    #[test]
    fn null_means_absent() {
        let record = one(&format!(r#"{GOOD},"email":null,"display_name":null"#));
        assert_eq!(row(&record).person.email, None);
        let record = one(r#""employee_id":null,"status":null"#);
        assert_eq!(
            faults(&record),
            [
                (Some("employee_id"), "missing"),
                (Some("status"), "missing")
            ]
        );
    }

    #[test]
    fn errors_display_a_message() {
        assert!(
            PushError::InvalidJson("EOF".into())
                .to_string()
                .contains("not valid JSON: EOF")
        );
        assert!(PushError::NotObjectOrArray.to_string().contains("array"));
        assert!(PushError::EmptyBatch.to_string().contains("empty"));
        match decode(b"{} x") {
            Err(PushError::InvalidJson(msg)) => assert!(msg.contains("trailing"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }
}
