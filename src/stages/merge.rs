//! The `merge` stage: adds trained LoRA deltas (a stack, or a weighted mix) into the base weights
//! and saves a normal Hugging Face model folder (`model/`) with a trained classification head
//! and its labels when the model has one. Bottleneck adapters cannot be merged and are refused.
//! It must not evaluate (the planner schedules an eval after it, which loads `model/`).

use super::adapters::load_picks;
use super::loaded::load_model;
use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::MergeStageConfig;
use crate::plan::Stage;
use crate::runtime::adapters::attach::merge_adapter;
use crate::runtime::peft_format::merged::{save_merged_with_head, MergedHead};
use anyhow::Context;

/// Runs the `merge` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: MergeStageConfig = serde_json::from_value(stage.config.clone())?;
    let mut loaded = load_model(ctx, &config.build)?;
    let folder = loaded
        .folder
        .clone()
        .context("merging needs a Hugging Face model folder as the base (not a GGUF file)")?;
    let dirs = |slot: &str| ctx.input(slot).map(|i| i.dir.clone());
    let mixed = config
        .weights
        .iter()
        .any(|w| (*w - 1.0).abs() > f64::EPSILON);
    let names = load_picks(
        &mut loaded,
        &config.picks,
        mixed.then_some(config.weights.as_slice()),
        &dirs,
    )?;
    for name in &names {
        merge_adapter(loaded.model.as_adaptable_mut(), name)?;
    }
    let head = config.build.labels.as_ref().map(|labels| MergedHead {
        architecture: classification_class(&loaded.arch),
        labels: labels.clone(),
    });
    save_merged_with_head(
        loaded.model.as_adaptable(),
        &folder,
        &ctx.out_dir.join("model"),
        head.as_ref(),
    )?;
    Ok(StageOutcome::with_output(
        serde_json::json!({ "merged": names.len() }),
    ))
}

/// transformers' sequence-classification class of an architecture (`bert` ->
/// `BertForSequenceClassification`).
fn classification_class(arch: &str) -> String {
    let mut name = arch.to_string();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    format!("{name}ForSequenceClassification")
}
