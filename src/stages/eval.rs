//! The `eval` stage: builds the model with the adapters under test (a train's, a weighted mix,
//! or a merged model), measures the declared metrics on a split, and, when a gate reads
//! `baseline`, the same metrics of the base model alone. Writes `metrics.json`. It does not
//! decide gates (the `gate` stage does, so a threshold edit re-runs nothing here).

use super::adapters::load_picks;
use super::loaded::{adapted, load_model, Loaded};
use super::tokenize::{load_data, split_examples};
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::{EvalStageConfig, EvalSubjectConfig};
use crate::plan::Stage;
use crate::runtime::adapters::attach::set_active;
use crate::runtime::eval::{evaluate, EvalConfig, Metric, Metrics};
use crate::runtime::models::generate::{generate, GenerateConfig, Sampling};
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// What an eval stage outputs (and gates read).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EvalOutput {
    pub model: Metrics,
    pub baseline: Option<Metrics>,
    pub examples: usize,
}

/// Runs the `eval` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: EvalStageConfig = serde_json::from_value(stage.config.clone())?;
    let data = load_data(&ctx.input("data").context("no data input")?.dir)?;
    let examples = split_examples(&data, &config.split)
        .with_context(|| format!("the dataset has no split `{}`", config.split))?
        .to_vec();
    if examples.is_empty() {
        bail!("split `{}` is empty: nothing to evaluate", config.split);
    }
    let mut loaded = match &config.subject {
        EvalSubjectConfig::Merged => {
            let merged = ctx.input("merged").context("no merged input")?;
            let base_id = super::model_stage::ModelRecord::from_input(ctx)
                .map(|r| r.id)
                .unwrap_or_default();
            // A merged model has no adapters of its own: its baseline is the base model.
            let mut build = config.build.clone();
            build.quant = None;
            super::loaded::load_folder(ctx, &build, merged.dir.join("model"), base_id)?
        }
        _ => load_model(ctx, &config.build)?,
    };
    // A merged model carries its adapters in its weights: nothing to attach.
    if let EvalSubjectConfig::Adapters { picks, weights } = &config.subject {
        let dirs = |slot: &str| ctx.input(slot).map(|i| i.dir.clone());
        load_picks(&mut loaded, picks, weights.as_deref(), &dirs)?;
    }
    let metrics: Vec<Metric> = config
        .metrics
        .iter()
        .filter_map(|m| parse_metric(m))
        .collect();
    let eval_config = EvalConfig {
        batch_size: config.batch.max(1) as usize,
        metrics,
        pad_id: loaded.tokenizer.pad_id(),
        stop_ids: loaded.tokenizer.eos_id().into_iter().collect(),
    };
    let model_metrics = measure(&loaded, &eval_config, &examples)?;
    ctx.cancel.check()?;
    let baseline = if config.baseline && matches!(config.subject, EvalSubjectConfig::Merged) {
        let mut base = load_model(ctx, &config.build)?;
        base.model
            .as_adaptable_mut()
            .set_residual_hook(std::sync::Arc::new(
                crate::runtime::adapters::residual::NoHook,
            ));
        Some(measure(&base, &eval_config, &examples)?)
    } else if config.baseline {
        set_active(loaded.model.as_adaptable_mut(), &[]);
        let hook: std::sync::Arc<dyn crate::runtime::adapters::residual::ResidualHook> =
            std::sync::Arc::new(crate::runtime::adapters::residual::NoHook);
        loaded.model.as_adaptable_mut().set_residual_hook(hook);
        Some(measure(&loaded, &eval_config, &examples)?)
    } else {
        None
    };
    let out = EvalOutput {
        model: model_metrics,
        baseline,
        examples: examples.len(),
    };
    let value = serde_json::to_value(&out)?;
    std::fs::write(
        ctx.out_dir.join("metrics.json"),
        serde_json::to_vec_pretty(&value)?,
    )?;
    Ok(StageOutcome::with_output(value))
}

fn measure(
    loaded: &Loaded,
    config: &EvalConfig,
    examples: &[crate::runtime::batch::Example],
) -> anyhow::Result<Metrics> {
    let device = loaded.model.device().clone();
    let gen_config = GenerateConfig {
        max_new_tokens: 48,
        sampling: Sampling::Greedy,
        eos_token_ids: config.stop_ids.clone(),
        pad_token_id: config.pad_id,
    };
    let decoder = loaded.model.decoder();
    let gen = |prompt: &[u32]| -> candle_core::Result<Vec<u32>> {
        match decoder {
            Some(d) => Ok(generate(d, &[prompt.to_vec()], &gen_config, &device)?
                .into_iter()
                .next()
                .unwrap_or_default()),
            None => candle_core::bail!("exact_match needs a causal model"),
        }
    };
    let wants_gen = config.metrics.contains(&Metric::ExactMatch);
    Ok(evaluate(
        adapted(loaded.model.as_ref()),
        examples,
        config,
        None,
        if wants_gen { Some(&gen) } else { None },
    )?)
}

/// A metric by its `.peft` name.
pub fn parse_metric(name: &str) -> Option<Metric> {
    [
        Metric::Loss,
        Metric::Perplexity,
        Metric::Accuracy,
        Metric::F1,
        Metric::ExactMatch,
    ]
    .into_iter()
    .find(|m| m.key() == name)
}
