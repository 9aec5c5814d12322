//! [`Stage`]: one node of the plan: a kind with a semantics version, a canonical config, inputs
//! from other stages by slot, and file inputs by slot. The id and display name identify the stage
//! to people and to the lockfile; they are never part of its content key.

use super::canonical::canonical;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// A stage's identifier, unique within a plan (e.g. `train.sst2[r=8]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StageId(pub String);

impl StageId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StageId {
    fn from(s: &str) -> Self {
        StageId(s.to_owned())
    }
}

impl From<String> for StageId {
    fn from(s: String) -> Self {
        StageId(s)
    }
}

/// One unit of cached work.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// Unique id in the plan; the lockfile and `--only` / `--force` use it.
    pub id: StageId,
    /// The stage kind (`tokenize`, `train`, ...); the executor dispatches on it. Part of the key.
    pub kind: String,
    /// Version of the kind's semantics; bump it when the kind's code changes its results.
    pub version: u32,
    /// Human name for progress and plans (defaults to the id). Not part of the key.
    pub name: String,
    /// The canonical config (object keys sorted at every depth). Part of the key.
    pub config: Value,
    /// Inputs from other stages: slot name -> producing stage. The key holds the producers'
    /// output digests under the slot names.
    pub inputs: BTreeMap<String, StageId>,
    /// Files read by the stage: slot name -> path (relative paths resolve against the run's root).
    /// The key holds their content hashes under the slot names, not the paths.
    pub files: BTreeMap<String, PathBuf>,
    /// Display-only figures from the checker (params, memory, FLOPs). Not part of the key.
    pub figures: BTreeMap<String, String>,
}

impl Stage {
    /// A stage with version 1, no inputs and `config` made canonical.
    pub fn new(id: impl Into<StageId>, kind: impl Into<String>, config: Value) -> Self {
        let id = id.into();
        Stage {
            name: id.0.clone(),
            id,
            kind: kind.into(),
            version: 1,
            config: canonical(config),
            inputs: BTreeMap::new(),
            files: BTreeMap::new(),
            figures: BTreeMap::new(),
        }
    }

    /// Sets the display name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the kind's semantics version.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds an input from stage `from` under `slot`.
    pub fn input(mut self, slot: impl Into<String>, from: impl Into<StageId>) -> Self {
        self.inputs.insert(slot.into(), from.into());
        self
    }

    /// Adds a file (or directory) read by the stage under `slot`.
    pub fn file(mut self, slot: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        self.files.insert(slot.into(), path.into());
        self
    }

    /// Adds a display-only figure.
    pub fn figure(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.figures.insert(name.into(), value.into());
        self
    }
}
