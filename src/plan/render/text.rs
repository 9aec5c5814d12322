//! The text rendering of a plan: one line per stage in run order with its state, then its
//! reasons and figures indented below.

use crate::plan::{Plan, PlanStatus, StageState};
use std::fmt::Write;

/// Renders `status` of `plan` as text, e.g.
/// ```text
/// tokenize      tokenize  cached
/// train         train     to run: config changed: lr
/// ```
pub fn text(plan: &Plan, status: &PlanStatus) -> String {
    let mut out = String::new();
    let rows: Vec<_> = status
        .stages
        .iter()
        .filter_map(|st| plan.get(&st.id).map(|s| (s, st)))
        .collect();
    let wname = rows
        .iter()
        .map(|(s, _)| s.name.chars().count())
        .max()
        .unwrap_or(0);
    let wkind = rows
        .iter()
        .map(|(s, _)| s.kind.chars().count())
        .max()
        .unwrap_or(0);
    let (mut cached, mut to_run, mut waiting) = (0, 0, 0);
    for (stage, st) in &rows {
        let state = match st.state {
            StageState::Cached => {
                cached += 1;
                "cached"
            }
            StageState::ToRun => {
                to_run += 1;
                "to run"
            }
            StageState::Waiting => {
                waiting += 1;
                "runs if an input changes"
            }
            StageState::NotSelected => "not selected",
        };
        let key = st
            .key
            .as_ref()
            .map(|k| format!("  [{}]", k.short()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:wname$}  {:wkind$}  {state}{key}",
            stage.name, stage.kind
        );
        for r in &st.reasons {
            let _ = writeln!(out, "    because {}", r.describe());
        }
        for (k, v) in &stage.figures {
            let _ = writeln!(out, "    {k}: {v}");
        }
    }
    let _ = writeln!(
        out,
        "{} stages: {cached} cached, {to_run} to run, {waiting} depending on rebuilt inputs",
        rows.len()
    );
    out
}
