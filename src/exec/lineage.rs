//! `peftc.lineage.json` next to an export: a JSON object that several stages contribute to
//! (base model and revision, file hashes, canonical config, metrics, gate results, source).
//! [`merge_lineage`] deep-merges a patch into the file atomically; it never drops keys it was
//! not given. [`file_record`] is the entry every hashed file gets (name, blake3 of the bytes,
//! size), so a reader can check any file against the record.

use super::atomic::write_atomic;
use super::error::{ExecError, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The lineage file name.
pub const LINEAGE_FILE: &str = "peftc.lineage.json";

/// Deep-merges `patch` into the JSON object at `path` (created if absent): objects merge key by
/// key, anything else in `patch` replaces. Writes sorted, pretty JSON; returns the result.
pub fn merge_lineage(path: &Path, patch: &Value) -> Result<Value> {
    let mut doc = match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| ExecError::Parse {
            path: path.to_path_buf(),
            source,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Object(Map::new()),
        Err(e) => return Err(ExecError::io("read", path)(e)),
    };
    merge(&mut doc, patch);
    let doc = crate::plan::canonical(doc);
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    write_atomic(path, text.as_bytes())?;
    Ok(doc)
}

/// `{ "path": shown, "blake3": .., "bytes": .. }` for the file at `path`.
pub fn file_record(path: &Path, shown: &str) -> Result<Value> {
    let digest = super::hasher::hash_contents(path)?;
    let bytes = std::fs::metadata(path)
        .map_err(ExecError::io("stat", path))?
        .len();
    Ok(serde_json::json!({
        "path": shown,
        "blake3": digest.to_string(),
        "bytes": bytes,
    }))
}

/// Merges `patch` into `base` in place.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}
