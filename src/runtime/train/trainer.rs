//! The training loop: data order, micro-batches, loss scaling, backward, accumulation,
//! clipping, optimizer step, schedule, logging, progress, checkpoints, cancellation, resume.
//!
//! Loss scaling under accumulation follows the Hugging Face Trainer: a causal LM step divides the
//! summed token losses of every micro-batch by the tokens counted in the whole window
//! (`num_items_in_batch`), a classification step divides each micro-batch's mean by the number
//! of micro-batches in the window. It must not know an architecture: the model is an
//! [`AdaptedModel`].

use crate::runtime::batch::{Batch, Example, IGNORE_INDEX};
use crate::runtime::model_api::{AdaptedModel, TaskKind};
use crate::runtime::ops::dropout;
use crate::runtime::train::checkpoint::{self, TrainerState, STATE_FORMAT};
use crate::runtime::train::clip::clip_grad_norm;
use crate::runtime::train::collate::{Collate, PadCollator};
use crate::runtime::train::config::{TrainConfig, TrainLength, Warmup};
use crate::runtime::train::error::{TensorContext, TrainError};
use crate::runtime::train::linear_cross_entropy;
use crate::runtime::train::log::{MetricsLog, StepRecord};
use crate::runtime::train::loss::{causal_lm_loss, classification_loss};
use crate::runtime::train::memory::MemoryProbe;
use crate::runtime::train::optim::{param_groups, Optimizer};
use crate::runtime::train::order::{epoch_order, Cursor, StepPlan};
use crate::runtime::train::progress::Progress;
use crate::runtime::train::schedule::Schedule;
use crate::runtime::train::summary::TrainSummary;
use candle_core::{Tensor, Var};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// What a micro-batch's forward pass gives the loss.
enum Output {
    /// The model's logits.
    Logits(Tensor),
    /// Final hidden states and the frozen output layer's weight (causal LMs on the CPU).
    Hidden(Tensor, Tensor),
}
use std::time::Instant;

/// Whether to continue from a checkpoint in the output folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Start from the model's current weights; checkpoints and the log already in the output
    /// folder are removed.
    Never,
    /// Continue from the newest complete checkpoint if there is one.
    IfPresent,
}

/// Where and how a run reports, saves and stops.
pub struct TrainRun<'a> {
    /// Folder for `checkpoints/` and `metrics.jsonl`; `None` writes nothing.
    pub out_dir: Option<&'a Path>,
    /// Resume policy.
    pub resume: Resume,
    /// Collator; `None` pads with `config.pad_id` ([`PadCollator`]).
    pub collate: Option<&'a dyn Collate>,
    /// Progress sink.
    pub progress: &'a mut dyn Progress,
    /// Set to stop at the next safe point (after an optimizer step) with a checkpoint.
    pub cancel: &'a AtomicBool,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> TrainError {
    TrainError::InvalidConfig {
        field,
        reason: reason.into(),
    }
}

fn validate(c: &TrainConfig) -> Result<(), TrainError> {
    if c.batch_size == 0 {
        return Err(invalid("batch_size", "must be at least 1"));
    }
    if c.accumulate == 0 {
        return Err(invalid("accumulate", "must be at least 1"));
    }
    if !(c.lr.is_finite() && c.lr >= 0.0) {
        return Err(invalid(
            "lr",
            format!("must be a finite non-negative number, got {}", c.lr),
        ));
    }
    match c.length {
        TrainLength::Epochs(0) | TrainLength::Steps(0) => {
            return Err(invalid("length", "must be at least one epoch or step"))
        }
        _ => {}
    }
    if let Warmup::Fraction(f) = c.schedule.warmup {
        if !(0.0..=1.0).contains(&f) {
            return Err(invalid(
                "schedule.warmup",
                format!("fraction {f} is not within 0..1"),
            ));
        }
    }
    if let Some(r) = c.lora_plus_ratio {
        if !(r.is_finite() && r > 0.0) {
            return Err(invalid(
                "lora_plus_ratio",
                format!("must be positive, got {r}"),
            ));
        }
    }
    if let Some(m) = c.max_grad_norm {
        if !(m.is_finite() && m > 0.0) {
            return Err(invalid(
                "max_grad_norm",
                format!("must be positive, got {m}"),
            ));
        }
    }
    if c.checkpoint_every == Some(0) {
        return Err(invalid("checkpoint_every", "must be at least 1"));
    }
    Ok(())
}

/// The config fields that change the numbers (checkpoint cadence does not).
fn numeric_part(c: &TrainConfig) -> TrainConfig {
    TrainConfig {
        checkpoint_every: None,
        keep_checkpoints: 0,
        ..c.clone()
    }
}

/// Tokens that take a loss in a causal batch (labels `[1:]` not `-100`).
fn counted_tokens(batch: &Batch) -> candle_core::Result<usize> {
    let Some(labels) = &batch.labels else {
        return Ok(0);
    };
    let (_, s) = labels.dims2()?;
    if s < 2 {
        return Ok(0);
    }
    let v: Vec<Vec<i64>> = labels.narrow(1, 1, s - 1)?.to_vec2()?;
    Ok(v.iter().flatten().filter(|&&t| t != IGNORE_INDEX).count())
}

struct Loop<'a> {
    model: &'a dyn AdaptedModel,
    config: &'a TrainConfig,
    trainable: Vec<(String, Var)>,
    optimizer: Optimizer,
    plan: StepPlan,
    ckpt_root: Option<PathBuf>,
    data_hash: String,
}

impl Loop<'_> {
    fn state(&self, step: u64, cursor: Cursor, tokens_seen: u64) -> TrainerState {
        let opt = self.optimizer.state();
        TrainerState {
            format: STATE_FORMAT,
            step,
            total_steps: self.plan.total_steps,
            schedule_position: step,
            cursor,
            data_order: epoch_order(
                self.config.seed,
                cursor.epoch,
                self.plan.examples,
                self.config.shuffle,
            ),
            rng: dropout::state(),
            optimizer_steps: opt.steps,
            tokens_seen,
            data_hash: self.data_hash.clone(),
            config: self.config.clone(),
        }
    }

    fn save(
        &self,
        step: u64,
        cursor: Cursor,
        tokens_seen: u64,
    ) -> Result<Option<PathBuf>, TrainError> {
        let Some(root) = &self.ckpt_root else {
            return Ok(None);
        };
        let state = self.state(step, cursor, tokens_seen);
        let dir = checkpoint::save(root, &self.trainable, &self.optimizer.state(), &state)?;
        checkpoint::prune(root, self.config.keep_checkpoints)?;
        Ok(Some(dir))
    }

    /// Loads the newest checkpoint: (step, cursor, tokens seen, its folder).
    fn resume(&mut self) -> Result<Option<(u64, Cursor, u64, PathBuf)>, TrainError> {
        let Some(root) = &self.ckpt_root else {
            return Ok(None);
        };
        let Some(ck) = checkpoint::latest(root, self.model.device())? else {
            return Ok(None);
        };
        let bad = |reason: String| TrainError::Checkpoint {
            path: ck.dir.clone(),
            reason,
        };
        if numeric_part(&ck.state.config) != numeric_part(self.config) {
            return Err(bad("it was written by a run with a different config".into()));
        }
        if ck.state.data_hash != self.data_hash {
            return Err(bad("it was trained on other examples".into()));
        }
        if ck.state.total_steps != self.plan.total_steps {
            return Err(bad(format!(
                "it plans {} steps, this run {} (the data changed?)",
                ck.state.total_steps, self.plan.total_steps
            )));
        }
        let order = epoch_order(
            self.config.seed,
            ck.state.cursor.epoch,
            self.plan.examples,
            self.config.shuffle,
        );
        if order != ck.state.data_order {
            return Err(bad("its data order differs from this run's".into()));
        }
        for (name, var) in &self.trainable {
            let t = ck
                .weights
                .get(name)
                .ok_or_else(|| bad(format!("no weight `{name}`")))?;
            if t.dims() != var.dims() {
                return Err(bad(format!(
                    "`{name}` has shape {:?}, the model {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(var.dtype()).phase("resume")?)
                .phase("resume")?;
        }
        self.optimizer.load_state(&ck.optimizer).map_err(bad)?;
        dropout::restore(&ck.state.rng).map_err(bad)?;
        Ok(Some((
            ck.state.step,
            ck.state.cursor,
            ck.state.tokens_seen,
            ck.dir,
        )))
    }
}

/// Trains `model`'s trainable parameters on `examples` as `config` says; the parameters are
/// updated in place. Returns the summary, or [`TrainError::Cancelled`] when `run.cancel` was set
/// (after writing a checkpoint).
pub fn train(
    model: &dyn AdaptedModel,
    examples: &[Example],
    config: &TrainConfig,
    run: TrainRun<'_>,
) -> Result<TrainSummary, TrainError> {
    validate(config)?;
    if examples.is_empty() {
        return Err(TrainError::NoExamples);
    }
    let probe = MemoryProbe::start();
    let started = Instant::now();
    let trainable = model.trainable();
    if trainable.is_empty() {
        return Err(TrainError::NothingToTrain);
    }
    let trainable_params = trainable.iter().map(|(_, v)| v.elem_count()).sum();
    let groups = param_groups(
        trainable.clone(),
        &config.optimizer,
        config.lora_plus_ratio,
        config.decay,
    );
    let plan = StepPlan::new(
        examples.len(),
        config.batch_size,
        config.accumulate,
        config.length,
    );
    let schedule = Schedule::new(&config.schedule, plan.total_steps);
    let span = tracing::info_span!(
        "train",
        total_steps = plan.total_steps,
        examples = examples.len()
    );
    let _enter = span.enter();

    let mut lp = Loop {
        model,
        config,
        trainable,
        optimizer: Optimizer::new(config.optimizer, groups),
        plan,
        ckpt_root: run.out_dir.map(|d| d.join("checkpoints")),
        data_hash: checkpoint::data_hash(examples),
    };
    let pad = PadCollator {
        pad_id: config.pad_id,
    };
    let collator: &dyn Collate = run.collate.unwrap_or(&pad);

    dropout::seed(config.seed);
    let mut step = 0u64;
    let mut cursor = Cursor {
        epoch: 0,
        position: 0,
    };
    let mut tokens_seen = 0u64;
    let mut resumed_from = None;
    match run.resume {
        Resume::IfPresent => {
            let _s = tracing::info_span!("resume").entered();
            if let Some((s, c, t, dir)) = lp.resume()? {
                run.progress.on_resume(s, lp.plan.total_steps, &dir);
                step = s;
                cursor = c;
                tokens_seen = t;
                resumed_from = Some(s);
            }
        }
        Resume::Never => {
            if let Some(root) = &lp.ckpt_root {
                checkpoint::clear(root)?;
            }
        }
    }
    let log_path = run.out_dir.map(|d| d.join("metrics.jsonl"));
    let mut log = match &log_path {
        Some(p) => Some(MetricsLog::open(p, step)?),
        None => None,
    };

    let progress = run.progress;
    let task = model.task();
    let device = model.device().clone();
    let mut order_epoch = cursor.epoch;
    let mut order = epoch_order(config.seed, order_epoch, plan.examples, config.shuffle);
    let mut first_backward = true;
    let mut last_saved: Option<(u64, PathBuf)> = None;
    let mut last_loss = None;
    let mut loss_total = 0.0;
    let mut steps_here = 0u64;
    let mut tokens_here = 0u64;
    let mut longest_batch = 0usize;

    while step < plan.total_steps {
        if run.cancel.load(Ordering::SeqCst) {
            let ck = match &last_saved {
                Some((s, p)) if *s == step => Some(p.clone()),
                _ => lp.save(step, cursor, tokens_seen)?,
            };
            progress.on_finish();
            return Err(TrainError::Cancelled {
                step,
                checkpoint: ck,
            });
        }
        let step_span = tracing::debug_span!("step", step = step + 1);
        let _st = step_span.enter();
        let t0 = Instant::now();
        let (ranges, next) = plan.next_step(cursor);
        if next.epoch != order_epoch {
            order_epoch = next.epoch;
            order = epoch_order(config.seed, order_epoch, plan.examples, config.shuffle);
        }
        let lr = config.lr * schedule.factor(step);

        let batches = {
            let _s = tracing::debug_span!("collate").entered();
            let mut batches = Vec::with_capacity(ranges.len());
            for r in &ranges {
                let exs: Vec<&Example> = order
                    .get(r.clone())
                    .unwrap_or(&[])
                    .iter()
                    .filter_map(|&i| examples.get(i))
                    .collect();
                let batch = collator.collate(&exs, &device).phase("collate")?;
                longest_batch = longest_batch.max(batch.input_ids.dim(1).phase("collate")?);
                batches.push((r.clone(), batch));
            }
            batches
        };
        let micro = batches.len();
        let window_tokens = match task {
            TaskKind::CausalLm => {
                let mut n = 0;
                for (_, b) in &batches {
                    n += counted_tokens(b).phase("loss")?;
                }
                n
            }
            TaskKind::Classify { .. } => 0,
        };

        let mut grads: HashMap<String, Tensor> = HashMap::new();
        let mut step_loss = 0.0;
        let mut step_tokens = 0u64;
        for (range, batch) in &batches {
            step_tokens += batch.tokens as u64;
            // A causal LM with a plain frozen output layer on the CPU in f32 takes its loss from
            // the hidden states (no whole logits); anything else from the logits.
            let out = {
                let _s = tracing::debug_span!("forward").entered();
                let hidden = match task {
                    TaskKind::CausalLm => model
                        .hidden_and_output(&batch.input_ids, &batch.attention_mask, true)
                        .phase("forward")?,
                    TaskKind::Classify { .. } => None,
                };
                match hidden {
                    Some((h, w)) => Output::Hidden(h, w),
                    None => Output::Logits(
                        model
                            .forward(&batch.input_ids, &batch.attention_mask, true)
                            .phase("forward")?,
                    ),
                }
            };
            let missing = |what| TrainError::MissingLabels {
                what,
                first: range.start,
                last: range.end.saturating_sub(1),
            };
            let scaled = match task {
                TaskKind::CausalLm => {
                    let labels = batch.labels.as_ref().ok_or_else(|| missing("causal"))?;
                    let ls = match &out {
                        Output::Logits(logits) => causal_lm_loss(logits, labels),
                        Output::Hidden(hidden, w) => {
                            linear_cross_entropy::causal_lm_loss_from_hidden(hidden, w, labels)
                        }
                    }
                    .phase("loss")?;
                    ls.sum
                        .affine(1.0 / window_tokens.max(1) as f64, 0.0)
                        .phase("loss")?
                }
                TaskKind::Classify { .. } => {
                    let labels = batch
                        .class_labels
                        .as_ref()
                        .ok_or_else(|| missing("class"))?;
                    let logits = match &out {
                        Output::Logits(logits) => logits.clone(),
                        Output::Hidden(hidden, w) => w
                            .t()
                            .and_then(|wt| hidden.broadcast_matmul(&wt))
                            .phase("loss")?,
                    };
                    let ls = classification_loss(&logits, labels).phase("loss")?;
                    ls.mean()
                        .and_then(|m| m.affine(1.0 / micro as f64, 0.0))
                        .phase("loss")?
                }
            };
            step_loss += f64::from(scaled.to_scalar::<f32>().phase("loss")?);
            let store = {
                let _s = tracing::debug_span!("backward").entered();
                scaled.backward().phase("backward")?
            };
            for (name, var) in &lp.trainable {
                match store.get(var.as_tensor()) {
                    Some(g) => {
                        let sum = match grads.remove(name) {
                            Some(acc) => (acc + g).phase("backward")?,
                            None => g.clone(),
                        };
                        grads.insert(name.clone(), sum);
                    }
                    None if first_backward => {
                        return Err(TrainError::NoGradient {
                            param: name.clone(),
                        })
                    }
                    None => {}
                }
            }
            first_backward = false;
        }
        if !step_loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: step + 1,
                loss: step_loss,
            });
        }
        let grad_norm = match config.max_grad_norm {
            Some(max) => Some(f64::from(clip_grad_norm(&mut grads, max).phase("clip")?)),
            None => None,
        };
        {
            let _s = tracing::debug_span!("optimizer").entered();
            lp.optimizer.step(&grads, lr).phase("optimizer")?;
        }
        drop(grads);
        step += 1;
        cursor = next;
        tokens_seen += step_tokens;
        tokens_here += step_tokens;
        steps_here += 1;
        last_loss = Some(step_loss);
        loss_total += step_loss;
        let step_s = t0.elapsed().as_secs_f64();
        let tokens_per_s = step_tokens as f64 / step_s.max(1e-9);
        if let Some(log) = &mut log {
            log.write(&StepRecord {
                step,
                epoch: cursor.epoch as f64 + cursor.position as f64 / plan.examples as f64,
                loss: step_loss,
                lr,
                grad_norm,
                tokens: step_tokens,
                tokens_per_s,
                step_s,
            })?;
        }
        progress.on_step(step, plan.total_steps, step_loss, tokens_per_s);
        let due = config
            .checkpoint_every
            .is_some_and(|n| step.is_multiple_of(n))
            || step == plan.total_steps;
        if due {
            if let Some(p) = lp.save(step, cursor, tokens_seen)? {
                last_saved = Some((step, p));
            }
        }
    }
    progress.on_finish();
    let checkpoint = match last_saved {
        Some((s, p)) if s == step => Some(p),
        _ => lp.save(step, cursor, tokens_seen)?,
    };
    let secs = started.elapsed().as_secs_f64();
    Ok(TrainSummary {
        steps: step,
        epochs: cursor.epoch as f64 + cursor.position as f64 / plan.examples as f64,
        final_loss: last_loss,
        mean_loss: (steps_here > 0).then(|| loss_total / steps_here as f64),
        trainable_params,
        tokens_seen,
        train_seconds: secs,
        tokens_per_s: tokens_here as f64 / secs.max(1e-9),
        resumed_from,
        checkpoint,
        metrics_log: log_path,
        memory: probe.report(),
        longest_batch,
    })
}
