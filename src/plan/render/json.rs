//! The JSON rendering of a plan (`peftc plan --format json`): a versioned object with one entry
//! per stage in run order. Its field names are a public format: change them only with the version.

use crate::plan::{Plan, PlanStatus};
use serde_json::{json, Value};

/// Version of the JSON layout.
pub const JSON_FORMAT_VERSION: u32 = 1;

/// Renders `status` of `plan` as pretty JSON.
pub fn json(plan: &Plan, status: &PlanStatus) -> String {
    let stages: Vec<Value> = status
        .stages
        .iter()
        .filter_map(|st| {
            let s = plan.get(&st.id)?;
            Some(json!({
                "id": s.id,
                "name": s.name,
                "kind": s.kind,
                "version": s.version,
                "state": st.state,
                "reasons": st.reasons,
                "key": st.key,
                "inputs": s.inputs,
                "files": s.files,
                "config": s.config,
                "figures": s.figures,
            }))
        })
        .collect();
    let doc = json!({ "format": JSON_FORMAT_VERSION, "stages": stages });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
