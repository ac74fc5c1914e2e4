//! A serde `Deserializer` over the position-carrying YAML node tree.
//!
//! It exists so the raw config structs can use plain `#[derive(Deserialize)]`
//! with `deny_unknown_fields` while every shape error (unknown key, wrong
//! type, missing key) still comes out with the dotted key path and the line
//! and column of the offending key or value. Scalar typing follows the YAML
//! 1.2 core schema, but only when a visitor asks for "anything": a field that
//! wants a string gets the scalar's text whatever it looks like, so
//! `topic: 123` and `linger.ms: 5` just work.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use super::{is_null, join_index, join_key, Entry, Error, Node, Pos, Value};

/// A deserialization error; the location is attached by the innermost node
/// deserializer that sees it fail.
#[derive(Debug)]
pub struct DeError {
    msg: String,
    at: Option<(Pos, String)>,
}

impl DeError {
    /// The error at the node it was found at.
    pub fn located(self) -> Error {
        let (pos, key) = self.at.unwrap_or_default();
        Error::new(pos, key, self.msg)
    }

    fn locate(mut self, pos: Pos, path: &str, is_map: bool) -> Self {
        if self.at.is_some() {
            return self;
        }
        // serde reports a missing field from the mapping that lacks it; name
        // the missing key in the path, keep the mapping's position.
        if is_map {
            if let Some(field) = self
                .msg
                .strip_prefix("missing field `")
                .and_then(|r| r.strip_suffix('`'))
            {
                let key = join_key(path, field);
                self.msg = "required key is missing".to_string();
                self.at = Some((pos, key));
                return self;
            }
        }
        self.at = Some((pos, path.to_string()));
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            msg: msg.to_string(),
            at: None,
        }
    }
}

pub fn from_node<T: DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: String::new(),
    })
}

/// A plain scalar's core-schema type.
enum Resolved {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str,
}

fn resolve(s: &str) -> Resolved {
    if is_null(s) {
        return Resolved::Null;
    }
    match s {
        "true" | "True" | "TRUE" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(hex) = s.strip_prefix("0x") {
        if let Ok(v) = u64::from_str_radix(hex, 16) {
            return Resolved::UInt(v);
        }
        return Resolved::Str;
    }
    if let Some(oct) = s.strip_prefix("0o") {
        if let Ok(v) = u64::from_str_radix(oct, 8) {
            return Resolved::UInt(v);
        }
        return Resolved::Str;
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(v) = s.parse::<i64>() {
            return Resolved::Int(v);
        }
        if let Ok(v) = digits.parse::<u64>() {
            if !s.starts_with('-') {
                return Resolved::UInt(v);
            }
        }
        return Resolved::Str;
    }
    // Core-schema float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let looks_float = !digits.is_empty()
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.as_bytes()[0] != b'e'
        && digits.as_bytes()[0] != b'E';
    if looks_float {
        if let Ok(v) = s.parse::<f64>() {
            return Resolved::Float(v);
        }
    }
    Resolved::Str
}

fn unexpected(node: &Node) -> Unexpected<'_> {
    match &node.value {
        Value::Scalar(s) => Unexpected::Str(&s.text),
        Value::Seq(_) => Unexpected::Seq,
        Value::Map(_) => Unexpected::Map,
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    fn locate<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        let is_map = matches!(self.node.value, Value::Map(_)) || self.node.is_null();
        r.map_err(|e| e.locate(self.node.pos, &self.path, is_map))
    }
}

static NO_ENTRIES: [Entry; 0] = [];
static NO_ITEMS: [Node; 0] = [];

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar(s) if s.plain => match resolve(&s.text) {
                Resolved::Null => visitor.visit_unit(),
                Resolved::Bool(b) => visitor.visit_bool(b),
                Resolved::Int(i) => visitor.visit_i64(i),
                Resolved::UInt(u) => visitor.visit_u64(u),
                Resolved::Float(f) => visitor.visit_f64(f),
                Resolved::Str => visitor.visit_str(&s.text),
            },
            Value::Scalar(s) => visitor.visit_str(&s.text),
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                path: &self.path,
                index: 0,
            }),
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                current: None,
                path: &self.path,
            }),
        };
        self.locate(r)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar(s) => visitor.visit_str(&s.text),
            Value::Map(_) => Err(de::Error::custom(
                "invalid type: mapping, expected a string (a value starting with `{` is a YAML \
                 mapping: quote templates, e.g. '{{id}}')",
            )),
            Value::Seq(_) => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            let r = visitor.visit_none();
            return self.locate(r);
        }
        let (pos, path, is_map) = (
            self.node.pos,
            self.path.clone(),
            matches!(self.node.value, Value::Map(_)),
        );
        visitor
            .visit_some(self)
            .map_err(|e| e.locate(pos, &path, is_map))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                path: &self.path,
                index: 0,
            }),
            // `probes:` with nothing after it is an empty list.
            _ if self.node.is_null() => visitor.visit_seq(SeqDe {
                items: NO_ITEMS.iter(),
                path: &self.path,
                index: 0,
            }),
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Map(entries) => visitor.visit_map(MapDe {
                entries: entries.iter(),
                current: None,
                path: &self.path,
            }),
            // `librdkafka:` with nothing after it is an empty mapping.
            _ if self.node.is_null() => visitor.visit_map(MapDe {
                entries: NO_ENTRIES.iter(),
                current: None,
                path: &self.path,
            }),
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Scalar(s) => visitor.visit_enum(UnitVariant { name: &s.text }),
            _ => Err(de::Error::invalid_type(unexpected(self.node), &visitor)),
        };
        self.locate(r)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64
        bytes byte_buf unit unit_struct
    }
}

struct SeqDe<'a, 'p> {
    items: std::slice::Iter<'a, Node>,
    path: &'p str,
    index: usize,
}

impl<'de> SeqAccess<'de> for SeqDe<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let path = join_index(self.path, self.index);
        self.index += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'p> {
    entries: std::slice::Iter<'a, Entry>,
    current: Option<&'a Entry>,
    path: &'p str,
}

impl<'de> MapAccess<'de> for MapDe<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        seed.deserialize(KeyDe { key: &entry.key })
            .map(Some)
            .map_err(|e| e.locate(entry.key_pos, &join_key(self.path, &entry.key), false))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.current.take() else {
            return Err(de::Error::custom("mapping value requested before its key"));
        };
        seed.deserialize(NodeDe {
            node: &entry.value,
            path: join_key(self.path, &entry.key),
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Mapping keys are always strings here.
struct KeyDe<'a> {
    key: &'a str,
}

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.key)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// An enum given as a scalar: only unit variants (`type: heartbeat`).
struct UnitVariant<'a> {
    name: &'a str,
}

impl<'de> EnumAccess<'de> for UnitVariant<'_> {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let de: de::value::StrDeserializer<'_, DeError> = self.name.into_deserializer();
        let v = seed.deserialize(de)?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a newtype variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a tuple variant",
        ))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::invalid_type(
            Unexpected::UnitVariant,
            &"a struct variant",
        ))
    }
}

#[cfg(test)]
mod tests {
    //! The deserializer on its own: scalar typing by what the field wants,
    //! and every error located at the key or value at fault.
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;
    use crate::parse;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Probe {
        name: String,
        #[serde(default)]
        partitions: Option<u32>,
        #[serde(default)]
        outputs: Vec<Output>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Output {
        topic: String,
        expect: Expect,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Expect {
        ExactlyOnce,
        None,
    }

    fn located<T: serde::de::DeserializeOwned + std::fmt::Debug>(yaml: &str) -> Error {
        from_node::<T>(&parse(yaml).expect("parses"))
            .expect_err("an error")
            .located()
    }

    /// A field that wants a string takes the scalar's text, whatever it
    /// looks like; a field that wants a number gets one.
    #[test]
    fn scalars_are_typed_by_what_the_field_wants() {
        let p: Probe = from_node(&parse("name: 123\npartitions: 0x10\n").expect("parses"))
            .expect("deserializes");
        assert_eq!(p.name, "123");
        assert_eq!(p.partitions, Some(16));
        // `~` and `null` are no value for an optional field.
        let p: Probe =
            from_node(&parse("name: 'x'\npartitions: ~\n").expect("parses")).expect("deserializes");
        assert_eq!(p.partitions, None);
    }

    /// Untyped values follow the YAML 1.2 core schema, quoted ones stay
    /// strings.
    #[test]
    fn untyped_values_follow_the_core_schema() {
        let m: BTreeMap<String, serde_json::Value> = from_node(
            &parse("a: true\nb: -7\nc: 1.5e3\nd: .inf\ne: 'true'\nf: 0o17\ng: null\n")
                .expect("parses"),
        )
        .expect("deserializes");
        assert_eq!(m["a"], serde_json::json!(true));
        assert_eq!(m["b"], serde_json::json!(-7));
        assert_eq!(m["c"], serde_json::json!(1500.0));
        assert!(m["d"].is_null(), "infinity is no JSON number: {:?}", m["d"]);
        assert_eq!(m["e"], serde_json::json!("true"));
        assert_eq!(m["f"], serde_json::json!(15));
        assert!(m["g"].is_null());
    }

    #[test]
    fn a_missing_key_is_named_in_the_path_at_its_mapping() {
        let e = located::<Probe>("name: p\noutputs:\n  - { topic: t }\n");
        assert_eq!(
            (e.pos.line, e.pos.column, e.key.as_str(), e.message.as_str()),
            (3, 5, "outputs[0].expect", "required key is missing")
        );
    }

    #[test]
    fn a_bad_value_deep_down_points_at_itself() {
        let e = located::<Probe>("name: p\noutputs:\n  - topic: t\n    expect: twice\n");
        assert_eq!((e.pos.line, e.pos.column), (4, 13));
        assert_eq!(e.key, "outputs[0].expect");
        assert!(e.message.contains("twice"), "{}", e.message);
        let e = located::<Probe>("name: [a, b]\n");
        assert_eq!((e.pos.line, e.key.as_str()), (1, "name"));
    }

    #[test]
    fn a_mapping_where_a_string_is_wanted_says_to_quote_templates() {
        let e = located::<Probe>("name: { id: x }\n");
        assert!(e.message.contains("quote templates"), "{}", e.message);
    }
}
