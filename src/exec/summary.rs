//! The end-of-run text for `peftc run`: a summary line, then every failure with its log file,
//! every failed gate with its metric, threshold and baseline side by side, and what was skipped
//! because of them. Gate details follow the convention
//! `{"metric": name, "value": x, "threshold": y, "baseline": z}` (each optional).

use super::report_types::{RunReport, StageRun};
use serde_json::Value;
use std::fmt::Write;

/// Renders the end-of-run text of `report`.
pub fn run_summary(report: &RunReport) -> String {
    let mut out = String::new();
    for s in &report.stages {
        match &s.state {
            StageRun::Failed { error } => {
                let log = s
                    .log_path
                    .as_ref()
                    .map(|p| format!(" (log: {})", p.display()))
                    .unwrap_or_default();
                let _ = writeln!(out, "error: stage {} failed: {error}{log}", s.name);
            }
            StageRun::GateFailed { message, .. } => {
                let _ = writeln!(out, "gate failed: {}: {message}", s.name);
                if let Some(d) = s.gate.as_ref().map(|g| &g.details) {
                    let cell = |k: &str| match d.get(k) {
                        Some(Value::String(t)) => t.clone(),
                        Some(Value::Null) | None => "-".to_owned(),
                        Some(v) => v.to_string(),
                    };
                    let _ = writeln!(
                        out,
                        "    {:<16} {:>12} {:>12} {:>12}",
                        "metric", "value", "threshold", "baseline"
                    );
                    let _ = writeln!(
                        out,
                        "    {:<16} {:>12} {:>12} {:>12}",
                        cell("metric"),
                        cell("value"),
                        cell("threshold"),
                        cell("baseline")
                    );
                }
            }
            StageRun::Skipped { because } => {
                let _ = writeln!(out, "skipped: {} (input {because} did not succeed)", s.name);
            }
            _ => {}
        }
    }
    let _ = writeln!(out, "{}", report.summary());
    out
}
