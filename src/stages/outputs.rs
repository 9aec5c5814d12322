//! The exports of one run as a whole: [`preflight`] refuses, before any stage runs, every export
//! destination peftc could not replace; [`publish_all`] puts each export stage's folder (built in
//! its cache entry, whether it ran now or came from the cache) at its destination, repairing a
//! destination that was deleted or changed, and marks the stage failed when its destination holds
//! something that is not peftc's. It must not write anything itself (see [`super::publish`]).

use super::export::EXPORT_DIR;
use super::publish::{self, PublishError, Published};
use crate::exec::{Cache, FileHasher, RunReport, StageRun};
use crate::plan::configs::{ExportStageConfig, StageKind};
use crate::plan::{Plan, PlanStatus, Stage, StageState};
use std::path::PathBuf;

/// The destination of an export stage.
fn destination(stage: &Stage) -> Option<PathBuf> {
    if stage.kind != StageKind::Export.name() {
        return None;
    }
    serde_json::from_value::<ExportStageConfig>(stage.config.clone())
        .ok()
        .map(|c| PathBuf::from(c.path))
}

/// Checks every export destination of the stages `only` selects (all when empty); returns one
/// error per destination that holds something peftc did not write.
pub fn preflight(plan: &Plan, only: &[String]) -> anyhow::Result<Vec<PublishError>> {
    let selected = crate::exec::scheduler::selection(plan, only)?;
    let mut seen = std::collections::BTreeSet::new();
    let mut errors = Vec::new();
    for (i, stage) in plan.stages().iter().enumerate() {
        let Some(dest) = destination(stage).filter(|_| selected.contains(&i)) else {
            continue;
        };
        if seen.insert(dest.clone()) {
            if let Err(e) = publish::preflight(&dest) {
                errors.push(e);
            }
        }
    }
    Ok(errors)
}

/// Publishes every export stage that succeeded in `report`; returns one line per destination
/// that was written or repaired. A destination that cannot be written fails its stage.
pub fn publish_all(plan: &Plan, report: &mut RunReport, hasher: &FileHasher) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &mut report.stages {
        let Some(dest) = plan.get(&s.id).and_then(destination) else {
            continue;
        };
        let Some(out) = s.out_dir.clone().filter(|_| s.state.succeeded()) else {
            continue;
        };
        let cached = s.state == StageRun::Cached;
        match publish::publish(&out.join(EXPORT_DIR), &dest, hasher) {
            Ok(Published::Unchanged) => {}
            Ok(Published::Written) if cached => lines.push(format!(
                "{}: {} was missing; wrote it again from the cache",
                s.name,
                dest.display()
            )),
            Ok(Published::Written) => {
                lines.push(format!("{}: wrote {}", s.name, dest.display()));
            }
            Ok(Published::Replaced(why)) if cached => lines.push(format!(
                "{}: {} {why}; rewrote the export from the cache",
                s.name,
                dest.display()
            )),
            Ok(Published::Replaced(_)) => {
                lines.push(format!("{}: replaced {}", s.name, dest.display()));
            }
            Err(e) => {
                s.state = StageRun::Failed {
                    error: e.to_string(),
                }
            }
        }
    }
    lines
}

/// For `peftc plan`: one line per cached export stage whose destination no longer holds its
/// cached export (deleted, changed, or holding a file peftc did not write), saying what
/// `peftc run` will do about it. Reads only.
pub fn drift(plan: &Plan, status: &PlanStatus, cache: &Cache) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &status.stages {
        let (Some(stage), Some(key)) = (plan.get(&s.id), s.key.as_ref()) else {
            continue;
        };
        let Some(dest) = destination(stage).filter(|_| s.state == StageState::Cached) else {
            continue;
        };
        let tree = cache.entry_dir(key).join("out").join(EXPORT_DIR);
        match publish::pending(&tree, &dest, cache.hasher()) {
            Ok(None) => {}
            Ok(Some(why)) => lines.push(format!(
                "{}: {} {why}; `peftc run` writes it again from the cache",
                s.id,
                dest.display()
            )),
            Err(e) => lines.push(format!("{}: `peftc run` will refuse it: {e}", s.id)),
        }
    }
    lines
}
