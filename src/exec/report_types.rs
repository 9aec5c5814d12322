//! [`RunReport`]: what a run did to each stage ([`StageRun`]), in plan order, and the run's exit
//! code. Pure data; the scheduler fills it and the lockfile and CLI read it.

use super::manifest::GateFailure;
use crate::plan::{Digest, Stage, StageId, StageKey};
use serde::Serialize;
use serde_json::Value;
use std::path::PathBuf;

/// The final state of a stage in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StageRun {
    /// Its result came from the cache (including early cutoff).
    Cached,
    /// It executed and its result was stored.
    Ran,
    /// It failed: the executor returned an error (or the engine could not prepare it).
    Failed { error: String },
    /// It is a gate and its verdict is "fail"; `cached` when the verdict came from the cache.
    GateFailed { message: String, cached: bool },
    /// It did not run because input stage `because` did not succeed.
    Skipped { because: StageId },
    /// Ctrl-C: stopped while running, or never started.
    Cancelled,
    /// Not selected by `--only`.
    NotSelected,
}

impl StageRun {
    /// Whether dependants may use this stage's output.
    pub fn succeeded(&self) -> bool {
        matches!(self, StageRun::Cached | StageRun::Ran)
    }
}

/// One stage's line in the run report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    pub id: StageId,
    pub name: String,
    pub kind: String,
    pub state: StageRun,
    /// The key, when its inputs were available.
    pub key: Option<Digest>,
    /// The key record, when computed.
    pub stage_key: Option<StageKey>,
    /// The output digest, for `Cached`, `Ran` and `GateFailed`.
    pub output_digest: Option<Digest>,
    /// The stage's JSON result (metrics), `Null` when none.
    pub output: Value,
    /// The failed gate's message and details (metric, threshold, baseline), for `GateFailed`.
    pub gate: Option<GateFailure>,
    /// The cache entry's `out/` folder, for `Cached`, `Ran` and `GateFailed`.
    pub out_dir: Option<PathBuf>,
    /// The per-stage log file when it executed.
    pub log_path: Option<PathBuf>,
    /// Set when a corrupt cache entry for its key was found and removed.
    pub corrupt_removed: Option<String>,
    /// Seconds spent executing (0 for cached).
    pub seconds: f64,
}

impl StageReport {
    /// A report for `stage` in `state` with nothing else known yet.
    pub fn blank(stage: &Stage, state: StageRun) -> StageReport {
        StageReport {
            id: stage.id.clone(),
            name: stage.name.clone(),
            kind: stage.kind.clone(),
            state,
            key: None,
            stage_key: None,
            output_digest: None,
            output: Value::Null,
            gate: None,
            out_dir: None,
            log_path: None,
            corrupt_removed: None,
            seconds: 0.0,
        }
    }
}

/// Everything one run did, stages in the plan's topological order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunReport {
    pub stages: Vec<StageReport>,
}

impl RunReport {
    /// The report of stage `id`.
    pub fn get(&self, id: &str) -> Option<&StageReport> {
        self.stages.iter().find(|s| s.id.as_str() == id)
    }

    /// Ids of the stages that executed this run.
    pub fn executed(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    StageRun::Ran | StageRun::GateFailed { cached: false, .. }
                )
            })
            .map(|s| s.id.as_str())
            .collect()
    }

    /// 0 all good; 1 a stage failed; 3 a gate failed (and nothing failed); 130 cancelled.
    pub fn exit_code(&self) -> u8 {
        let any = |f: fn(&StageRun) -> bool| self.stages.iter().any(|s| f(&s.state));
        if any(|s| matches!(s, StageRun::Cancelled)) {
            130
        } else if any(|s| matches!(s, StageRun::Failed { .. })) {
            1
        } else if any(|s| matches!(s, StageRun::GateFailed { .. })) {
            3
        } else {
            0
        }
    }

    /// A short summary line: `5 stages: 2 ran, 3 cached`.
    pub fn summary(&self) -> String {
        let count =
            |f: &dyn Fn(&StageRun) -> bool| self.stages.iter().filter(|s| f(&s.state)).count();
        let mut parts = vec![
            format!("{} ran", count(&|s| matches!(s, StageRun::Ran))),
            format!("{} cached", count(&|s| matches!(s, StageRun::Cached))),
        ];
        for (word, n) in [
            ("failed", count(&|s| matches!(s, StageRun::Failed { .. }))),
            (
                "gate failed",
                count(&|s| matches!(s, StageRun::GateFailed { .. })),
            ),
            ("skipped", count(&|s| matches!(s, StageRun::Skipped { .. }))),
            ("cancelled", count(&|s| matches!(s, StageRun::Cancelled))),
        ] {
            if n > 0 {
                parts.push(format!("{n} {word}"));
            }
        }
        format!("{} stages: {}", self.stages.len(), parts.join(", "))
    }
}
