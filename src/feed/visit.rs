//! The JSON reading that the feed reader (`json.rs`) and the push decoder (`push.rs`) share: the
//! document's text, one decode, the seeds for keys, values and skipped values, the attributes'
//! fault, and a macro for the visits most of their visitors write alike (every scalar one way, null
//! another).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use crate::domain::FeedRow;
use crate::feed::rows::{Fault, RawField, RawValue, Reason};

/// Writes a serde `Visitor`'s visits of booleans, numbers and strings as `self.$scalar()` and of
/// null (unit and none) as `self.$null()`; both are methods `fn<E>(self) -> Result<Self::Value, E>`.
macro_rules! scalar_visits {
    ($scalar:ident, $null:ident) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_i128<E>(self, _: i128) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_u128<E>(self, _: u128) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            self.$scalar()
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            self.$null()
        }

        fn visit_none<E>(self) -> Result<Self::Value, E> {
            self.$null()
        }
    };
}

pub(crate) use scalar_visits;

/// The field name a fault of the attributes carries.
pub(crate) const ATTRIBUTES: &str = "attributes";

/// The UTF-8 byte order mark, skipped once before the document.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The document as text: one leading UTF-8 BOM skipped, the rest valid UTF-8 (checked as a whole, so
/// invalid bytes anywhere refuse the document). The error is a message for `invalid_json`.
pub(crate) fn document_text(data: &[u8]) -> Result<&str, String> {
    let (skipped, body) = match data.strip_prefix(BOM) {
        Some(body) => (BOM.len(), body),
        None => (0, data),
    };
    std::str::from_utf8(body).map_err(|e| {
        format!(
            "invalid UTF-8 at byte {} (the document must be UTF-8)",
            skipped + e.valid_up_to()
        )
    })
}

/// Runs `seed` over the whole document and refuses trailing data; the error is serde_json's message.
pub(crate) fn decode<'de, S: DeserializeSeed<'de>>(
    text: &'de str,
    seed: S,
) -> Result<S::Value, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = seed.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Reads and discards one value of any type, through `deserialize_any` so that serde_json still
/// checks strings (UTF-8, surrogates) and nesting depth.
pub(crate) struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Skip {
    fn done<E>(self) -> Result<(), E> {
        Ok(())
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    scalar_visits!(done, done);

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Skip)?.is_some() {
            map.next_value_seed(Skip)?;
        }
        Ok(())
    }
}

/// Reads an object key, borrowed from the document when it has no escapes.
pub(crate) struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A value where a string is expected, as the row checks see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Found<'de> {
    /// Not there, or JSON null.
    #[default]
    Absent,
    /// A string.
    Str(Cow<'de, str>),
    /// A number, boolean, object or array (never converted).
    WrongType,
}

/// One mapped field of a record while it is read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slot<'de> {
    /// The value read (for a repeated key: the first one; it is never used).
    pub(crate) value: Found<'de>,
    /// The key appeared more than once.
    pub(crate) duplicate: bool,
}

impl Slot<'_> {
    /// The raw field the row checks take.
    pub(crate) fn raw(&self) -> RawField<'_> {
        RawField {
            value: match &self.value {
                Found::Absent => RawValue::Absent,
                Found::Str(s) => RawValue::Str(s),
                Found::WrongType => RawValue::WrongType,
            },
            duplicate_key: self.duplicate,
        }
    }
}

/// Reads a value where a string is expected (containers are consumed and reported as wrong type).
pub(crate) struct ValueSeed;

impl<'de> DeserializeSeed<'de> for ValueSeed {
    type Value = Found<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed {
    type Value = Found<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or null")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_i128<E>(self, _: i128) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_u128<E>(self, _: u128) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Found::WrongType)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Found::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Found::Str(Cow::Owned(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Found::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Found::Absent)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Found::Absent)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq)?;
        Ok(Found::WrongType)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip.visit_map(map)?;
        Ok(Found::WrongType)
    }
}

/// The fault of the attributes, if any: a repeated key wins over a wrong type, as for the fields.
pub(crate) fn attributes_fault(duplicate: bool, wrong_type: bool) -> Option<Fault> {
    let reason = if duplicate {
        Reason::DuplicateKey
    } else if wrong_type {
        Reason::WrongType
    } else {
        return None;
    };
    Some(Fault {
        field: Some(ATTRIBUTES.to_string()),
        reason,
    })
}

/// Combines the seven-field check with the faults found besides it (attributes, unknown keys), which
/// are listed after the fields'; a valid row gets its attributes.
pub(crate) fn finish(
    checked: Result<FeedRow, Vec<Fault>>,
    attributes: BTreeMap<String, String>,
    extra: Vec<Fault>,
) -> Result<FeedRow, Vec<Fault>> {
    match checked {
        Ok(mut row) if extra.is_empty() => {
            row.person.attributes = attributes;
            Ok(row)
        }
        Ok(_) => Err(extra),
        Err(mut faults) => {
            faults.extend(extra);
            Err(faults)
        }
    }
}
