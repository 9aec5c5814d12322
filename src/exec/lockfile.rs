//! `peftc.lock`: what the last run resolved, like Cargo.lock: external inputs (model ids and
//! revisions), file hashes, and per stage its key record, key and output digest. JSON with
//! sorted maps, so diffs are stable. [`Lockfile::drift`] compares two locks and names every
//! difference. It is a serialised boundary: change fields only with [`LOCK_FORMAT`].

use super::atomic::write_atomic;
use super::error::{ExecError, Result};
use super::report_types::{RunReport, StageRun};
use super::scheduler::resolve;
use crate::plan::{Digest, Plan, StageKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Version of the lockfile layout.
pub const LOCK_FORMAT: u32 = 1;

/// One stage in the lockfile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LockedStage {
    pub kind: String,
    pub key: Digest,
    /// Output digest of the entry the run used or made.
    pub output: Digest,
    /// The full key record, so a later plan can say which field changed.
    pub stage_key: StageKey,
}

/// The contents of `peftc.lock`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lockfile {
    pub format: u32,
    /// Resolved external inputs (`model.revision`, ...).
    pub resolved: BTreeMap<String, Value>,
    /// File inputs as written in the pipeline -> content hash.
    pub files: BTreeMap<String, Digest>,
    /// Stage id -> what it resolved to.
    pub stages: BTreeMap<String, LockedStage>,
}

/// One difference between a previous lock and the current one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "drift", rename_all = "snake_case")]
pub enum Drift {
    FileChanged {
        path: String,
        old: Digest,
        new: Digest,
    },
    FileAdded {
        path: String,
    },
    FileRemoved {
        path: String,
    },
    ResolvedChanged {
        name: String,
        old: Option<Value>,
        new: Option<Value>,
    },
    StageAdded {
        id: String,
    },
    StageRemoved {
        id: String,
    },
    StageKeyChanged {
        id: String,
        old: Digest,
        new: Digest,
    },
    /// Same key, different output: the stage is not deterministic.
    OutputChanged {
        id: String,
        key: Digest,
    },
}

impl Drift {
    /// One line for people.
    pub fn describe(&self) -> String {
        match self {
            Drift::FileChanged { path, old, new } => {
                format!("file {path} changed ({} -> {})", old.short(), new.short())
            }
            Drift::FileAdded { path } => format!("file {path} is new"),
            Drift::FileRemoved { path } => format!("file {path} is no longer read"),
            Drift::ResolvedChanged { name, old, new } => {
                let show =
                    |v: &Option<Value>| v.as_ref().map_or("(none)".to_owned(), Value::to_string);
                format!("{name} resolved to {} (was {})", show(new), show(old))
            }
            Drift::StageAdded { id } => format!("stage {id} is new"),
            Drift::StageRemoved { id } => format!("stage {id} was removed"),
            Drift::StageKeyChanged { id, old, new } => format!(
                "stage {id} key changed ({} -> {})",
                old.short(),
                new.short()
            ),
            Drift::OutputChanged { id, key } => {
                format!(
                    "stage {id} gave a different output for the same key {} (not deterministic)",
                    key.short()
                )
            }
        }
    }
}

impl Default for Lockfile {
    fn default() -> Self {
        Lockfile {
            format: LOCK_FORMAT,
            resolved: BTreeMap::new(),
            files: BTreeMap::new(),
            stages: BTreeMap::new(),
        }
    }
}

impl Lockfile {
    /// The lockfile of a pipeline file: `peftc.lock` next to it.
    pub fn default_path(pipeline: &Path) -> PathBuf {
        pipeline
            .parent()
            .unwrap_or(Path::new("."))
            .join("peftc.lock")
    }

    /// Reads a lockfile; `Ok(None)` when it does not exist.
    pub fn read(path: &Path) -> Result<Option<Lockfile>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ExecError::io("read", path)(e)),
        };
        let lock: Lockfile = serde_json::from_slice(&bytes).map_err(|source| ExecError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        if lock.format > LOCK_FORMAT {
            return Err(ExecError::LockFormat {
                path: path.to_path_buf(),
                found: lock.format,
                supported: LOCK_FORMAT,
            });
        }
        Ok(Some(lock))
    }

    /// The lockfile text (pretty JSON, sorted maps, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes the lockfile atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_atomic(path, self.to_json().as_bytes())
    }

    /// The lock after a run: stages the run resolved are recorded; stages it did not reach keep
    /// their entry from `previous`; stages no longer in the plan are dropped.
    pub fn update(previous: Option<&Lockfile>, plan: &Plan, report: &RunReport) -> Lockfile {
        let mut lock = Lockfile {
            resolved: plan.resolved.clone(),
            ..Lockfile::default()
        };
        for stage in plan.ordered() {
            let id = stage.id.as_str();
            let reached = report.get(id).and_then(|r| {
                let keep = matches!(
                    r.state,
                    StageRun::Cached | StageRun::Ran | StageRun::GateFailed { .. }
                );
                match (keep, &r.key, &r.output_digest, &r.stage_key) {
                    (true, Some(key), Some(output), Some(sk)) => Some(LockedStage {
                        kind: stage.kind.clone(),
                        key: key.clone(),
                        output: output.clone(),
                        stage_key: sk.clone(),
                    }),
                    _ => None,
                }
            });
            let entry = reached.or_else(|| previous.and_then(|p| p.stages.get(id).cloned()));
            if let Some(entry) = entry {
                for (slot, path) in &stage.files {
                    if let Some(d) = entry.stage_key.files.get(slot) {
                        lock.files.insert(path.display().to_string(), d.clone());
                    }
                }
                lock.stages.insert(id.to_owned(), entry);
            }
        }
        lock
    }

    /// Every difference from `self` (the previous lock) to `new`.
    pub fn drift(&self, new: &Lockfile) -> Vec<Drift> {
        let mut out = Vec::new();
        for (path, old) in &self.files {
            match new.files.get(path) {
                Some(d) if d != old => out.push(Drift::FileChanged {
                    path: path.clone(),
                    old: old.clone(),
                    new: d.clone(),
                }),
                Some(_) => {}
                None => out.push(Drift::FileRemoved { path: path.clone() }),
            }
        }
        for path in new.files.keys().filter(|p| !self.files.contains_key(*p)) {
            out.push(Drift::FileAdded { path: path.clone() });
        }
        let names: std::collections::BTreeSet<&String> =
            self.resolved.keys().chain(new.resolved.keys()).collect();
        for name in names {
            let (a, b) = (self.resolved.get(name), new.resolved.get(name));
            if a != b {
                out.push(Drift::ResolvedChanged {
                    name: name.clone(),
                    old: a.cloned(),
                    new: b.cloned(),
                });
            }
        }
        for (id, old) in &self.stages {
            match new.stages.get(id) {
                None => out.push(Drift::StageRemoved { id: id.clone() }),
                Some(s) if s.key != old.key => out.push(Drift::StageKeyChanged {
                    id: id.clone(),
                    old: old.key.clone(),
                    new: s.key.clone(),
                }),
                Some(s) if s.output != old.output => out.push(Drift::OutputChanged {
                    id: id.clone(),
                    key: s.key.clone(),
                }),
                Some(_) => {}
            }
        }
        for id in new
            .stages
            .keys()
            .filter(|id| !self.stages.contains_key(*id))
        {
            out.push(Drift::StageAdded { id: id.clone() });
        }
        out
    }

    /// The stage keys this lock references (for `cache gc`).
    pub fn keys(&self) -> impl Iterator<Item = &Digest> {
        self.stages.values().map(|s| &s.key)
    }

    /// The file hashes the plan would resolve now (without running), for drift checks before a
    /// run: `path as written -> hash`.
    pub fn current_files(
        plan: &Plan,
        root: &Path,
        hasher: &super::FileHasher,
    ) -> Result<BTreeMap<String, Digest>> {
        let mut files = BTreeMap::new();
        for stage in plan.stages() {
            for path in stage.files.values() {
                let abs: PathBuf = resolve(root, path);
                files.insert(path.display().to_string(), hasher.hash(&abs)?);
            }
        }
        Ok(files)
    }
}
