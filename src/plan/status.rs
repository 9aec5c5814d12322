//! [`PlanStatus`]: per stage, whether it is cached, will run, or waits on a rebuilt input, and
//! the [`Reason`]s why. Computed by `exec` (which knows the cache and the previous lockfile);
//! rendered by [`crate::plan::render`]. Pure data plus the key-diff that names reasons.

use super::canonical::config_diff;
use super::digest::Digest;
use super::key::StageKey;
use super::stage::StageId;
use serde::Serialize;
use std::path::PathBuf;

/// What a run would do with a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageState {
    /// Its key is in the cache: nothing to do.
    Cached,
    /// It will run.
    ToRun,
    /// An input will be rebuilt; it runs only if that input's output changes (early cutoff).
    Waiting,
    /// Not selected by `--only`.
    NotSelected,
}

/// Why a stage is not simply cached.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// No previous run recorded this stage.
    New,
    /// The same key ran before but its cache entry is gone (removed, gc'd or corrupt).
    NotInCache,
    /// The cache entry for the key failed verification; it is rebuilt.
    CorruptEntry { detail: String },
    /// The kind or its semantics version changed.
    KindChanged { from: String, to: String },
    /// These config fields changed (dotted paths).
    ConfigChanged { fields: Vec<String> },
    /// The output of the input in `slot` (from stage `stage`) changed.
    InputChanged { slot: String, stage: StageId },
    /// The input in `slot` will be rebuilt first.
    InputPending { slot: String, stage: StageId },
    /// The file in `slot` changed.
    FileChanged { slot: String, path: PathBuf },
    /// Input slots were added or removed.
    InputsChanged,
    /// `--force` names it.
    Forced,
}

/// One stage's status.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageStatus {
    pub id: StageId,
    pub state: StageState,
    pub reasons: Vec<Reason>,
    /// The content key when all inputs are known.
    pub key: Option<Digest>,
}

/// The status of every stage, in the plan's topological order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanStatus {
    pub stages: Vec<StageStatus>,
}

impl PlanStatus {
    /// The status of stage `id`.
    pub fn get(&self, id: &str) -> Option<&StageStatus> {
        self.stages.iter().find(|s| s.id.as_str() == id)
    }
}

impl Reason {
    /// The reasons a stage whose previous key was `old` now has key `new`. `input_stage` maps an
    /// input slot to its producer, `file_path` a file slot to its path (for messages).
    pub fn from_key_diff(
        old: &StageKey,
        new: &StageKey,
        input_stage: impl Fn(&str) -> StageId,
        file_path: impl Fn(&str) -> PathBuf,
    ) -> Vec<Reason> {
        let mut out = Vec::new();
        if old.kind != new.kind || old.version != new.version || old.schema != new.schema {
            out.push(Reason::KindChanged {
                from: format!("{} v{}", old.kind, old.version),
                to: format!("{} v{}", new.kind, new.version),
            });
        }
        let fields = config_diff(&old.config, &new.config);
        if !fields.is_empty() {
            out.push(Reason::ConfigChanged { fields });
        }
        if old.inputs.keys().ne(new.inputs.keys()) || old.files.keys().ne(new.files.keys()) {
            out.push(Reason::InputsChanged);
        }
        for (slot, digest) in &new.inputs {
            if old.inputs.get(slot).is_some_and(|d| d != digest) {
                out.push(Reason::InputChanged {
                    slot: slot.clone(),
                    stage: input_stage(slot),
                });
            }
        }
        for (slot, digest) in &new.files {
            if old.files.get(slot).is_some_and(|d| d != digest) {
                out.push(Reason::FileChanged {
                    slot: slot.clone(),
                    path: file_path(slot),
                });
            }
        }
        out
    }

    /// One line of prose, as in `peftc plan`.
    pub fn describe(&self) -> String {
        match self {
            Reason::New => "new".to_owned(),
            Reason::NotInCache => "not in the cache".to_owned(),
            Reason::CorruptEntry { detail } => format!("its cache entry is corrupt ({detail})"),
            Reason::KindChanged { from, to } => format!("stage kind changed ({from} -> {to})"),
            Reason::ConfigChanged { fields } => format!("config changed: {}", fields.join(", ")),
            Reason::InputChanged { slot, stage } => format!("input `{slot}` ({stage}) changed"),
            Reason::InputPending { slot, stage } => {
                format!("input `{slot}` ({stage}) is rebuilt first")
            }
            Reason::FileChanged { slot, path } => {
                format!("file `{slot}` ({}) changed", path.display())
            }
            Reason::InputsChanged => "inputs added or removed".to_owned(),
            Reason::Forced => "forced".to_owned(),
        }
    }
}
