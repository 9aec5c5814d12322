//! Canonical JSON for stage configs (object keys sorted at every depth) and a field-level diff
//! used to say *which* config fields changed. It must not change values (numbers stay as given).

use serde_json::{Map, Value};

/// `value` with the keys of every object sorted, recursively.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, canonical(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// The dotted paths of fields that differ between two configs (`train.lr`, `layers[2]`), sorted.
/// Equal configs give an empty list; a non-object root that differs gives `["."]`.
pub fn config_diff(old: &Value, new: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out.sort();
    out
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let sub = join(path, k);
                match b.get(k) {
                    Some(vb) => diff_into(&sub, va, vb, out),
                    None => out.push(sub),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(join(path, k));
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                diff_into(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (a, b) if a == b => {}
        _ => out.push(if path.is_empty() {
            ".".to_owned()
        } else {
            path.to_owned()
        }),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_sorts_nested_keys() {
        let v = canonical(json!({"b": 1, "a": {"z": 1, "y": [ {"d": 1, "c": 2} ]}}));
        assert_eq!(
            serde_json::to_string(&v).ok(),
            Some(r#"{"a":{"y":[{"c":2,"d":1}],"z":1},"b":1}"#.to_owned())
        );
    }

    #[test]
    fn diff_names_changed_added_and_removed_fields() {
        let old = json!({"lr": 0.1, "lora": {"r": 8, "alpha": 16}, "gone": 1, "l": [1, 2]});
        let new = json!({"lr": 0.2, "lora": {"r": 8, "alpha": 32}, "new": 1, "l": [1, 3]});
        assert_eq!(
            config_diff(&old, &new),
            ["gone", "l[1]", "lora.alpha", "lr", "new"]
        );
        assert!(config_diff(&old, &old).is_empty());
    }
}
