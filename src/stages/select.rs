//! The `select` stage: chooses one point of a swept train (`lr = sweep [..]`). Every point's
//! evals are decided against their gates; among the points where all gates hold, the best by
//! the rank metric (the first eval's first metric, or the final training loss when nothing
//! evaluates the train) is chosen, and its trained adapters become this stage's output, so
//! merges, exports and other evals read the chosen point like a train. When no point passes,
//! the stage fails as a gate does (exit code 3, exports blocked). It trains and measures nothing.

use super::gate::{decide, failure_message, read_eval};
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::SelectStageConfig;
use crate::plan::Stage;
use anyhow::Context;
use serde_json::{json, Value};

/// Runs the `select` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: SelectStageConfig = serde_json::from_value(stage.config.clone())?;
    let read = |slot: &str| read_eval(ctx, slot);
    let mut table = Vec::new();
    let mut best: Option<(usize, f64)> = None;
    // Each point's first eval: it ranks the points and the chosen one's metrics are passed on.
    let mut firsts = Vec::with_capacity(config.points.len());
    for (i, label) in config.points.iter().enumerate() {
        let train = ctx
            .input(&format!("point.{i}"))
            .with_context(|| format!("no input `point.{i}`"))?;
        let mut gates = Vec::new();
        let mut failed = Vec::new();
        let mut first = None;
        for (k, eval) in config.evals.iter().enumerate() {
            let own = read(&format!("eval.{k}.{i}"))?;
            let (rows, bad) = decide(&eval.gates, &own, &read)?;
            gates.extend(rows);
            failed.extend(bad);
            if k == 0 {
                first = Some(own);
            }
        }
        let score = match &config.rank.metric {
            Some(m) => first.as_ref().and_then(|o| o.model.0.get(m).copied()),
            None => train.output["final_loss"].as_f64(),
        }
        .with_context(|| format!("point `{label}` has no value to rank by"))?;
        let passed = failed.is_empty();
        if passed {
            let better = match best {
                None => true,
                Some((_, b)) if config.rank.higher_is_better => score > b,
                Some((_, b)) => score < b,
            };
            if better {
                best = Some((i, score));
            }
        }
        table.push(json!({
            "point": label,
            "score": score,
            "passed": passed,
            "gates": gates,
            "failed": if passed { Value::Null } else { Value::String(failure_message(&failed)) },
        }));
        firsts.push(first);
    }
    let rank_name = config
        .rank
        .metric
        .as_deref()
        .unwrap_or("final training loss");
    std::fs::write(
        ctx.out_dir.join("selection.json"),
        serde_json::to_vec_pretty(&json!({ "rank": rank_name, "points": table }))?,
    )?;
    let Some((chosen, score)) = best else {
        let message = table
            .iter()
            .map(|r| {
                format!(
                    "{}: {}",
                    r["point"].as_str().unwrap_or(""),
                    r["failed"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let details = json!({ "points": table });
        return Ok(StageOutcome::gate_failed(
            format!("no point of the sweep passed its gates ({message})"),
            details.clone(),
        )
        .metadata(details));
    };
    let train = ctx
        .input(&format!("point.{chosen}"))
        .with_context(|| format!("no input `point.{chosen}`"))?;
    super::export::copy_tree(&train.dir, &ctx.out_dir)?;
    let chosen_gates = table[chosen]["gates"].clone();
    let mut output = train.output.clone();
    // The chosen point's first eval, so gates elsewhere can read `EVAL.metric` from here.
    let measured = firsts.swap_remove(chosen);
    if let Some(o) = output.as_object_mut() {
        if let Some(m) = measured {
            o.insert("model".into(), serde_json::to_value(&m.model)?);
            o.insert("baseline".into(), serde_json::to_value(&m.baseline)?);
            o.insert("examples".into(), json!(m.examples));
        }
        o.insert("selected".into(), json!(config.points[chosen]));
        o.insert("rank".into(), json!({ "by": rank_name, "value": score }));
        o.insert("points".into(), json!(table));
        o.insert("gates".into(), chosen_gates);
    }
    Ok(StageOutcome::with_output(output))
}
