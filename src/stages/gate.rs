//! The `gate` stage: decides an eval's gates from its metrics (and the baseline's, and other
//! evals'), and fails the run with exit code 3 when one does not hold, blocking every export and
//! merge downstream. Prints metric, threshold and baseline side by side. It measures nothing.

use super::eval::EvalOutput;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::{GateConfig, GateExprConfig, GateStageConfig};
use crate::plan::Stage;
use anyhow::{bail, Context};
use serde_json::{json, Value};

/// Runs the `gate` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: GateStageConfig = serde_json::from_value(stage.config.clone())?;
    let read = |slot: &str| read_eval(ctx, slot);
    let own = read("eval")?;
    let (results, failed) = decide(&config.gates, &own, &read)?;
    std::fs::write(
        ctx.out_dir.join("gates.json"),
        serde_json::to_vec_pretty(&results)?,
    )?;
    if let Some(first) = failed.first() {
        let details = json!({
            "metric": first["gate"], "value": first["value"], "threshold": first["threshold"], "baseline": first["baseline"],
        });
        return Ok(StageOutcome::gate_failed(failure_message(&failed), details)
            .metadata(json!({ "gates": results })));
    }
    Ok(StageOutcome::with_output(json!({ "gates": results })))
}

/// The eval output in input `slot`.
pub(super) fn read_eval(ctx: &StageContext, slot: &str) -> anyhow::Result<EvalOutput> {
    let input = ctx
        .input(slot)
        .with_context(|| format!("no input `{slot}`"))?;
    Ok(serde_json::from_value(input.output.clone())?)
}

/// Each gate's row (`gate`, `value`, `threshold`, `baseline`, `passed`) over the eval output
/// `own`, and the rows that failed. `read` gives other evals' outputs by slot.
pub(super) fn decide(
    gates: &[GateConfig],
    own: &EvalOutput,
    read: &dyn Fn(&str) -> anyhow::Result<EvalOutput>,
) -> anyhow::Result<(Vec<Value>, Vec<Value>)> {
    let mut results = Vec::new();
    let mut failed = Vec::new();
    for g in gates {
        let lhs = value(&g.lhs, own, read)?;
        let rhs = value(&g.rhs, own, read)?;
        let pass = compare(lhs, &g.cmp, rhs);
        let baseline = baseline_of(g, own);
        let row = json!({ "gate": g.text, "value": lhs, "threshold": rhs, "baseline": baseline, "passed": pass });
        if !pass {
            failed.push(row.clone());
        }
        results.push(row);
    }
    Ok((results, failed))
}

/// `gate `..` failed: value vs threshold (baseline ..)` for each failed row, joined with `; `.
pub(super) fn failure_message(failed: &[Value]) -> String {
    failed
        .iter()
        .map(|f| {
            format!(
                "gate `{}` failed: {:.4} vs threshold {:.4}{}",
                f["gate"].as_str().unwrap_or(""),
                f["value"].as_f64().unwrap_or(f64::NAN),
                f["threshold"].as_f64().unwrap_or(f64::NAN),
                f["baseline"]
                    .as_f64()
                    .map(|b| format!(" (baseline {b:.4})"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn baseline_of(g: &GateConfig, own: &EvalOutput) -> Option<f64> {
    let metric = match &g.lhs {
        GateExprConfig::Metric { metric } => metric,
        _ => return None,
    };
    own.baseline.as_ref().and_then(|b| b.0.get(metric).copied())
}

fn value(
    e: &GateExprConfig,
    own: &EvalOutput,
    read: &dyn Fn(&str) -> anyhow::Result<EvalOutput>,
) -> anyhow::Result<f64> {
    Ok(match e {
        GateExprConfig::Metric { metric } => *own
            .model
            .0
            .get(metric)
            .with_context(|| format!("the eval did not compute `{metric}`"))?,
        GateExprConfig::Baseline { metric } => {
            let b = own
                .baseline
                .as_ref()
                .context("the eval did not measure the baseline")?;
            *b.0.get(metric)
                .with_context(|| format!("the baseline has no `{metric}`"))?
        }
        GateExprConfig::Run { slot, metric } => {
            let other = read(slot)?;
            *other
                .model
                .0
                .get(metric)
                .with_context(|| format!("`{slot}` did not compute `{metric}`"))?
        }
        GateExprConfig::Literal { value } => *value,
        GateExprConfig::Neg { expr } => -value(expr, own, read)?,
        GateExprConfig::Binary { arith, lhs, rhs } => {
            let (a, b) = (value(lhs, own, read)?, value(rhs, own, read)?);
            match arith.as_str() {
                "+" => a + b,
                "-" => a - b,
                "*" => a * b,
                "/" => a / b,
                other => bail!("unknown operator `{other}`"),
            }
        }
    })
}

fn compare(a: f64, op: &str, b: f64) -> bool {
    match op {
        ">=" => a >= b,
        ">" => a > b,
        "<=" => a <= b,
        "<" => a < b,
        "==" => (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0),
        "!=" => (a - b).abs() > 1e-12 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}
