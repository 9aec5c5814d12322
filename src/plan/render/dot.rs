//! The Graphviz rendering of a plan (`peftc plan --dot`): one node per stage coloured by state,
//! one edge per input labelled with its slot.

use crate::plan::{Plan, PlanStatus, StageState};
use std::fmt::Write;

/// Renders `status` of `plan` as a `digraph`.
pub fn dot(plan: &Plan, status: &PlanStatus) -> String {
    let mut out = String::from(
        "digraph plan {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\"];\n",
    );
    for st in &status.stages {
        let Some(s) = plan.get(&st.id) else { continue };
        let (word, colour) = match st.state {
            StageState::Cached => ("cached", "#d9f2d9"),
            StageState::ToRun => ("to run", "#ffe0b3"),
            StageState::Waiting => ("waiting", "#fff5cc"),
            StageState::NotSelected => ("not selected", "#eeeeee"),
        };
        let label = format!("{}\\n{}\\n{word}", esc(&s.name), esc(&s.kind));
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{label}\", fillcolor=\"{colour}\"];",
            esc(&s.id.0)
        );
    }
    for s in plan.ordered() {
        for (slot, from) in &s.inputs {
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{}\"];",
                esc(&from.0),
                esc(&s.id.0),
                esc(slot)
            );
        }
    }
    out.push_str("}\n");
    out
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
