//! What changed between two specs of one object: the fields, as dotted paths, with the old
//! and the new value.

use serde::Serialize;
use serde_json::{Map, Value};

/// One field that differs; `from` or `to` is absent when the field was not set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Value>,
}

/// How deep into nested objects a change is named: `action.payload` rather than
/// `action.payload.client_payload.version`, so that a plan stays readable.
const NAMED_DEPTH: usize = 2;

/// The fields that differ between `from` and `to`, in field order.
pub fn changes(from: &Value, to: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", from, to, 0, &mut out);
    out
}

fn walk(path: &str, from: &Value, to: &Value, depth: usize, out: &mut Vec<FieldChange>) {
    if from == to {
        return;
    }
    match (from, to) {
        (Value::Object(a), Value::Object(b)) if depth < NAMED_DEPTH => {
            for key in keys(a, b) {
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match (a.get(&key), b.get(&key)) {
                    (Some(x), Some(y)) => walk(&field, x, y, depth + 1, out),
                    (x, y) => out.push(FieldChange {
                        field,
                        from: x.cloned(),
                        to: y.cloned(),
                    }),
                }
            }
        }
        _ => out.push(FieldChange {
            field: path.to_string(),
            from: Some(from.clone()),
            to: Some(to.clone()),
        }),
    }
}

/// The keys of both objects: `a`'s in its order, then those only `b` has.
fn keys(a: &Map<String, Value>, b: &Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = a.keys().cloned().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)).cloned());
    keys
}

/// `value` without its null fields, at every depth of objects: a field set to null and a
/// field left out mean the same to every input type.
pub fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_changes_are_named_two_levels_deep() {
        let from = json!({"name": "a", "enabled": true,
            "action": {"type": "webhook", "payload": {"x": {"y": 1}}}});
        let to = json!({"name": "a", "enabled": false, "description": "new",
            "action": {"type": "webhook", "payload": {"x": {"y": 2}}}});
        let fields: Vec<String> = changes(&from, &to).into_iter().map(|c| c.field).collect();
        // (in the order of the fields in `from`, then those only `to` has)
        assert_eq!(fields, ["action.payload", "enabled", "description"]);
        let added = &changes(&from, &to)[2];
        assert_eq!(
            (added.from.clone(), added.to.clone()),
            (None, Some(json!("new")))
        );
    }

    #[test]
    fn equal_specs_have_no_changes_and_nulls_are_left_out() {
        let spec = json!({"a": {"b": [1, 2]}, "c": null});
        assert!(changes(&spec, &spec).is_empty());
        assert_eq!(without_nulls(spec), json!({"a": {"b": [1, 2]}}));
    }
}
