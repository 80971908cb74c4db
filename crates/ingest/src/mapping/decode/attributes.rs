//! OTLP-style attribute lists inside the trie walk: an array of
//! `{"key": K, "value": AnyValue}` elements under a pointer step that names
//! keys, each element's value routed to the child named K (see the parent
//! module's docs).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{KeySeed, NodeSeed, Skip, Slots, Trie, Val};

/// One element of an attribute list, `{"key": K, "value": V}` (OTLP's
/// `KeyValue`; either order): V fills the child of `node` named K. Other
/// elements are skipped.
pub(super) struct KeyValueSeed<'t, 's, 'de> {
    pub(super) trie: &'t Trie,
    pub(super) node: usize,
    pub(super) slots: &'s mut Slots<'de>,
}

impl<'de> DeserializeSeed<'de> for KeyValueSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyValueSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute")
    }
    skip_all_but_maps!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let KeyValueSeed { trie, node, slots } = self;
        // `None`: no "key" yet; `Some(None)`: a key no pointer names.
        let mut target: Option<Option<usize>> = None;
        let mut pending: Option<&'de RawValue> = None;
        while let Some(field) = map.next_key_seed(FieldSeed)? {
            match field {
                Field::Key => target = Some(map.next_value_seed(KeySeed { trie, node })?),
                Field::Value => match target {
                    Some(Some(c)) => map.next_value_seed(AnyValueSeed(NodeSeed {
                        trie,
                        node: c,
                        slots: &mut *slots,
                    }))?,
                    Some(None) => {
                        map.next_value_seed(Skip)?;
                    }
                    None => pending = Some(map.next_value::<&'de RawValue>()?),
                },
                Field::Other => {
                    map.next_value_seed(Skip)?;
                }
            }
        }
        if let (Some(Some(c)), Some(raw)) = (target, pending) {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            AnyValueSeed(NodeSeed {
                trie,
                node: c,
                slots,
            })
            .deserialize(&mut de)
            .map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

enum Field {
    Key,
    Value,
    Other,
}

struct FieldSeed;

impl<'de> DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(match v {
            "key" => Field::Key,
            "value" => Field::Value,
            _ => Field::Other,
        })
    }
}

/// An attribute's value: OTLP's `AnyValue` object (`{"stringValue":"GET"}`,
/// `{"intValue":"200"}` — int64 is a string in OTLP/JSON —, `doubleValue`,
/// `boolValue`) unwrapped to its scalar; a bare scalar as it is; arrays,
/// key-value lists and bytes are not scalars.
struct AnyValueSeed<'t, 's, 'de>(NodeSeed<'t, 's, 'de>);

impl<'de> DeserializeSeed<'de> for AnyValueSeed<'_, '_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValueSeed<'_, '_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an attribute value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.visit_bool(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.visit_i64(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.visit_u64(v)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.visit_f64(v)
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<(), E> {
        self.0.visit_borrowed_str(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.visit_str(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.visit_unit()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let NodeSeed { trie, node, slots } = self.0;
        NodeSeed::put(slots, trie.nodes[node].slot, Val::Complex);
        while seq.next_element_seed(Skip)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let NodeSeed { trie, node, slots } = self.0;
        while let Some(k) = map.next_key_seed(AnyKindSeed)? {
            if k {
                map.next_value_seed(NodeSeed {
                    trie,
                    node,
                    slots: &mut *slots,
                })?;
            } else {
                NodeSeed::put(slots, trie.nodes[node].slot, Val::Complex);
                map.next_value_seed(Skip)?;
            }
        }
        Ok(())
    }
}

/// Whether an `AnyValue` key holds a scalar.
struct AnyKindSeed;

impl<'de> DeserializeSeed<'de> for AnyKindSeed {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for AnyKindSeed {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AnyValue key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(matches!(
            v,
            "stringValue" | "intValue" | "doubleValue" | "boolValue"
        ))
    }
}
