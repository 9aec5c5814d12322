//! [`Manifest`]: the record written into every cache entry (files and their blake3, the output
//! digest, the stage kind and key, creation time, free metadata), and the output digest rule.
//! It is a serialised boundary: change fields only with [`MANIFEST_FORMAT`].

use crate::plan::{Digest, StageKey};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// One output file of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub blake3: Digest,
    pub size: u64,
}

/// A failed gate: the stage ran, its verdict blocks dependants. Part of the output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateFailure {
    /// One line for people, e.g. `accuracy 0.71 < 0.80 (baseline 0.69)`.
    pub message: String,
    /// Structured detail (metric, threshold, baseline).
    pub details: Value,
}

/// The manifest of one cache entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The entry's content key (its folder name).
    pub key: Digest,
    /// The key record that hashes to `key`.
    pub stage_key: StageKey,
    /// Kind of the stage that made it.
    pub kind: String,
    /// Display name of the stage that made it (informational).
    pub stage_name: String,
    /// Files under `out/`, by relative path with `/` separators.
    pub files: BTreeMap<String, FileRecord>,
    /// The stage's small JSON result (metrics, ...); part of the output digest.
    pub output: Value,
    /// Set when the stage is a gate that failed; part of the output digest.
    pub gate: Option<GateFailure>,
    /// Digest of files + output + gate: what dependants' keys hold.
    pub output_digest: Digest,
    /// Free information not part of the output digest (timings, notes).
    pub metadata: Value,
    /// Seconds since the Unix epoch when the entry was written.
    pub created_unix: u64,
}

/// The output digest of an entry with these files, output and gate verdict.
pub fn output_digest(
    files: &BTreeMap<String, FileRecord>,
    output: &Value,
    gate: Option<&GateFailure>,
) -> Digest {
    let hashes: BTreeMap<&String, &Digest> = files.iter().map(|(k, v)| (k, &v.blake3)).collect();
    let doc =
        json!({ "files": hashes, "output": crate::plan::canonical(output.clone()), "gate": gate });
    Digest::of_bytes(serde_json::to_string(&doc).unwrap_or_default().as_bytes())
}
