//! What a simulated stage does to each record: JSON fields renamed,
//! removed and added, the key rewritten, headers dropped.

use serde_json::Value;

/// What the stage does to every record.
#[derive(Debug, Clone, Default)]
pub struct Transform {
    /// Top-level JSON fields renamed (from, to); `to` may be a path like
    /// `order/id` to nest the value.
    pub rename: Vec<(String, String)>,
    /// Top-level JSON fields removed.
    pub remove: Vec<String>,
    /// Fields added (enrichment).
    pub add: Vec<(String, Value)>,
    /// Drop every header.
    pub drop_headers: bool,
    pub key: KeyRewrite,
    /// Drop records that carry a `slaprobe-id` header: how a real sink keeps
    /// canaries out (unless the `leak` fault is on).
    pub filter_canaries: bool,
}

#[derive(Debug, Clone, Default)]
pub enum KeyRewrite {
    #[default]
    Keep,
    Drop,
    /// The key becomes the (string) value of this top-level field of the
    /// transformed record.
    Field(String),
}

/// A record on its way out.
#[derive(Debug, Clone)]
pub(super) struct Out {
    pub(super) partition: i32,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Transform {
    /// A consumed record of `in_partition` transformed, bound for the
    /// output partition with the same number (modulo `output_partitions`).
    pub(super) fn apply(
        &self,
        in_partition: i32,
        output_partitions: i32,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        headers: Vec<(String, Option<Vec<u8>>)>,
    ) -> Out {
        let t = self;
        let mut json = value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<Value>(v).ok())
            .filter(Value::is_object);
        if let Some(Value::Object(map)) = &mut json {
            for (from, to) in &t.rename {
                if let Some(v) = map.remove(from) {
                    insert_path(map, to, v);
                }
            }
            for field in &t.remove {
                map.remove(field);
            }
            for (k, v) in &t.add {
                map.insert(k.clone(), v.clone());
            }
        }
        let key = match &t.key {
            KeyRewrite::Keep => key,
            KeyRewrite::Drop => None,
            KeyRewrite::Field(f) => json
                .as_ref()
                .and_then(|j| j.get(f))
                .and_then(Value::as_str)
                .map(|s| s.as_bytes().to_vec()),
        };
        let value = match json {
            Some(j) => serde_json::to_vec(&j).ok(),
            None => value,
        };
        Out {
            partition: in_partition % output_partitions.max(1),
            key,
            value,
            headers: if t.drop_headers { Vec::new() } else { headers },
        }
    }
}

/// Inserts `value` at `path` (`a/b/c`), creating objects on the way.
fn insert_path(map: &mut serde_json::Map<String, Value>, path: &str, value: Value) {
    match path.split_once('/') {
        None => {
            map.insert(path.to_string(), value);
        }
        Some((head, rest)) => {
            let child = map
                .entry(head.to_string())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if !child.is_object() {
                *child = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(m) = child {
                insert_path(m, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_rename_paths() {
        let mut m = serde_json::Map::new();
        insert_path(&mut m, "order/id", Value::from("x"));
        insert_path(&mut m, "flat", Value::from(1));
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"order": {"id": "x"}, "flat": 1})
        );
    }
}
