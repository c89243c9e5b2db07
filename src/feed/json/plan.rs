//! The mapped pointers as one tree, walked once per record: each record is read in a single pass
//! that fills the slots of the fields and attributes it maps, skipping everything else.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserializer;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::JsonFields;
use super::pointer::{array_index, parse_pointer};
use crate::domain::FeedRow;
use crate::feed::rows::{Fault, Field, RawRow, Reason, RowRules, check_row};
use crate::feed::visit::{Found, KeySeed, Skip, Slot, attributes_fault, finish};

/// The record itself.
const ROOT: usize = 0;

/// Slots 0..7 are the fields in `Field::ALL` order; the attributes follow.
const FIELD_SLOTS: usize = Field::ALL.len();

/// The mapped pointers merged into a tree of reference tokens, so one pass over a record finds them all.
#[derive(Debug)]
pub(super) struct Plan {
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
    pub(super) fn new(fields: &JsonFields) -> Self {
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
pub(super) struct RecordSeed<'p, 'r> {
    pub(super) plan: &'p Plan,
    pub(super) rules: &'p RowRules<'r>,
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
