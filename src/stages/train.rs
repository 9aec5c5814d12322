//! The `train` stage: builds the base model, attaches fresh adapters, trains them on a split of
//! the tokenized data and saves them in PEFT's format (`adapters/<i>/`), with the per-step
//! metrics (`metrics.jsonl`) and a summary. Checkpoints live in the stage's checkpoint folder,
//! which survives a failed or cancelled run, so training resumes where it stopped.

use super::adapters::{attach, save_all};
use super::loaded::load_model;
use super::tokenize::{load_data, split_examples};
use crate::exec::{ProgressHandle, StageContext, StageOutcome};
use crate::plan::configs::{AdapterConfig, TrainStageConfig};
use crate::plan::Stage;
use crate::runtime::train::{
    train, AdamWConfig, OptimizerConfig, Progress, Resume, ScheduleConfig, ScheduleKind, SgdConfig,
    TrainConfig, TrainLength, TrainRun, Warmup,
};
use anyhow::Context;

/// Runs the `train` stage.
pub fn run(stage: &Stage, ctx: &StageContext) -> anyhow::Result<StageOutcome> {
    let config: TrainStageConfig = serde_json::from_value(stage.config.clone())?;
    // The peak resident memory of this stage (what `peftc run` reports next to the estimate);
    // without a reset, the process's peak so far.
    crate::runtime::allocator::trim();
    crate::runtime::process_memory::reset_peak();
    let data_dir = &ctx.input("data").context("no data input")?.dir;
    let data = load_data(data_dir)?;
    let examples = split_examples(&data, &config.split)
        .with_context(|| format!("the dataset has no split `{}`", config.split))?
        .to_vec();
    let mut loaded = load_model(ctx, &config.build)?;
    let attached = attach(&mut loaded, &config.adapters, config.seed)?;
    let train_config = train_config(&config, loaded.tokenizer.pad_id());
    let mut progress = StageProgress {
        handle: ctx.progress.clone(),
    };
    let summary = train(
        super::loaded::adapted(loaded.model.as_ref()),
        &examples,
        &train_config,
        TrainRun {
            out_dir: Some(&ctx.checkpoint_dir),
            resume: Resume::IfPresent,
            collate: None,
            progress: &mut progress,
            cancel: ctx.cancel.as_atomic(),
        },
    )?;
    if let Some(peak) = crate::runtime::process_memory::peak_resident_bytes() {
        crate::runtime::process_memory::record_peak(
            stage.id.as_str(),
            peak,
            summary.longest_batch as u64,
        );
    }
    save_all(&mut loaded, &attached, &ctx.out_dir)?;
    let log = ctx.checkpoint_dir.join("metrics.jsonl");
    if log.is_file() {
        std::fs::copy(&log, ctx.out_dir.join("metrics.jsonl"))?;
    }
    let summary_json = serde_json::to_value(&summary)?;
    std::fs::write(
        ctx.out_dir.join("summary.json"),
        serde_json::to_vec_pretty(&summary_json)?,
    )?;
    Ok(StageOutcome::with_output(serde_json::json!({
        "steps": summary.steps,
        "final_loss": summary.final_loss,
        "trainable_params": summary.trainable_params,
        // The resolved training config, for lineage.
        "config": stage.config,
    }))
    .metadata(summary_json))
}

/// The trainer's config for a stage config.
pub fn train_config(c: &TrainStageConfig, pad_id: u32) -> TrainConfig {
    // As in Hugging Face's Trainer, `max_steps` overrides `epochs`: the data repeats as needed.
    let length = match c.max_steps {
        Some(m) => TrainLength::Steps(m.max(1)),
        None => TrainLength::Epochs(u64::from(c.epochs.max(1))),
    };
    let optimizer = if c.optimizer == "sgd" {
        OptimizerConfig::Sgd(SgdConfig {
            momentum: c.momentum,
            dampening: 0.0,
            weight_decay: c.weight_decay,
            nesterov: false,
        })
    } else {
        OptimizerConfig::AdamW(AdamWConfig {
            beta1: c.beta1,
            beta2: c.beta2,
            eps: c.eps,
            weight_decay: c.weight_decay,
        })
    };
    let kind = match c.schedule.as_str() {
        "linear" => ScheduleKind::Linear,
        "cosine" => ScheduleKind::Cosine,
        _ => ScheduleKind::Constant,
    };
    let warmup = match (c.warmup_steps, c.warmup_fraction) {
        (Some(s), _) => Warmup::Steps(s),
        (None, Some(f)) => Warmup::Fraction(f),
        (None, None) => Warmup::Steps(0),
    };
    let lora_plus_ratio = c.adapters.iter().find_map(|a| match a {
        AdapterConfig::Lora { lr_ratio, .. } => *lr_ratio,
        AdapterConfig::Bottleneck { .. } => None,
    });
    TrainConfig {
        length,
        batch_size: c.batch.max(1) as usize,
        accumulate: c.accumulate.max(1) as usize,
        lr: c.lr,
        optimizer,
        lora_plus_ratio,
        schedule: ScheduleConfig { kind, warmup },
        max_grad_norm: c.grad_clip,
        seed: c.seed,
        shuffle: true,
        checkpoint_every: c.checkpoint_every,
        keep_checkpoints: 2,
        pad_id,
        ..TrainConfig::default()
    }
}

/// Training progress shown as the stage's inner bar.
struct StageProgress {
    handle: ProgressHandle,
}

impl Progress for StageProgress {
    fn on_step(&mut self, step: u64, total: u64, loss: f64, tokens_per_s: f64) {
        self.handle.set(
            step,
            total,
            format!("loss {loss:.4}  {tokens_per_s:.0} tok/s"),
        );
    }
    fn on_resume(&mut self, step: u64, total: u64, checkpoint: &std::path::Path) {
        self.handle.note(format!(
            "resuming from the checkpoint after step {step} of {total} ({})",
            checkpoint.display()
        ));
    }
}
