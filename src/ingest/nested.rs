//! A JSON value read to a bounded depth: how untrusted JSON is read without letting its nesting
//! decide how deep the parser recurses.
//!
//! In: a `serde_json` deserializer positioned on a value. Out: the value, or `None` when its
//! arrays and objects nest deeper than allowed; the deeper part is skipped by serde_json, which
//! skips without recursion. Never fails on its own; the deserializer's errors (bad JSON) pass
//! through.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Reads one JSON value whose arrays and objects nest at most `.0` levels. A deeper value is
/// skipped (serde_json skips without recursion) and read as `None`, so no input can take the
/// stack deeper than the limit.
pub struct Nested(pub usize);

impl<'de> DeserializeSeed<'de> for Nested {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Nested {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Some(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(inner) = self.0.checked_sub(1) else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Nested(inner))? {
            match item {
                Some(item) => items.push(item),
                None => {
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(None);
                }
            }
        }
        Ok(Some(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let Some(inner) = self.0.checked_sub(1) else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match map.next_value_seed(Nested(inner))? {
                Some(value) => {
                    object.insert(key, value);
                }
                None => {
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                    return Ok(None);
                }
            }
        }
        Ok(Some(Value::Object(object)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str, depth: usize) -> Option<Value> {
        let mut de = serde_json::Deserializer::from_str(json);
        let value = Nested(depth).deserialize(&mut de).unwrap();
        de.end().unwrap();
        value
    }

    #[test]
    fn reads_to_its_depth_and_skips_what_is_deeper() {
        assert_eq!(read("7", 0), Some(Value::from(7)));
        assert_eq!(read("[]", 0), None);
        assert_eq!(
            read(r#"{"a": [1, {"b": null}]}"#, 3),
            Some(serde_json::json!({"a": [1, {"b": null}]}))
        );
        assert_eq!(read(r#"{"a": [1, {"b": null}]}"#, 2), None);
        let deep = format!("[{}{}, 1]", "[".repeat(200_000), "]".repeat(200_000));
        assert_eq!(read(&deep, 8), None);
    }
}
