//! Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant white space,
//! numbers as serde_json prints them. Hashed documents (manifests) are written this way so
//! that the same content always gives the same bytes.

use serde::Serialize;
use serde_json::{Map, Value};

/// `value` as canonical JSON.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    let v = serde_json::to_value(value).expect("flowpack types serialize to JSON");
    serde_json::to_string(&sorted(v)).expect("a JSON value serializes")
}

fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sorts_nested_keys_without_spaces() {
        let v = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        assert_eq!(
            super::to_string(&v),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }
}
