//! Finding the records: the document is walked along the records pointer, everything off the path
//! skipped, and each record on arrival read with the plan.

use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::JsonRecord;
use super::plan::{Plan, RecordSeed};
use super::pointer::{array_index, escape_token};
use crate::domain::FeedRow;
use crate::feed::rows::{Fault, FileError, RowRules};
use crate::feed::visit::{KeySeed, Skip, decode, scalar_visits};

/// Reads the records at `tokens` (the parsed `records_pointer`) from the document `text`, checking
/// each with `plan`.
pub(super) fn read_records(
    text: &str,
    records_pointer: &str,
    tokens: &[String],
    plan: &Plan,
    rules: &RowRules<'_>,
) -> Result<Vec<JsonRecord>, FileError> {
    let mut reader = Reader {
        plan,
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
            tokens,
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
