//! Runs a model over examples in eval mode (no dropout) and computes the asked metrics.
//!
//! Causal LM: loss is the mean over every counted token of the set (not a mean of batch means),
//! perplexity its exponential, accuracy the share of counted tokens whose argmax is the label,
//! exact match compares a generated answer with the labelled completion. Classification: loss is
//! the mean cross-entropy over examples, accuracy and macro-F1 over argmax predictions.

use crate::runtime::batch::{Example, IGNORE_INDEX};
use crate::runtime::eval::metrics::{accuracy, exact_match, macro_f1, perplexity, Metric, Metrics};
use crate::runtime::model_api::{AdaptedModel, TaskKind};
use crate::runtime::train::collate::{Collate, PadCollator};
use crate::runtime::train::loss::{causal_lm_loss, classification_loss};
use crate::runtime::train::memory::{MemoryProbe, MemoryReport};
use candle_core::{DType, D};
use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Generation callback: prompt ids in, generated ids out (the continuation only).
pub type Generate<'a> = &'a dyn Fn(&[u32]) -> candle_core::Result<Vec<u32>>;

/// What to compute.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Examples per forward pass.
    pub batch_size: usize,
    /// The metrics wanted.
    pub metrics: Vec<Metric>,
    /// Padding token id for collation.
    pub pad_id: u32,
    /// Token ids that end an answer (EOS, end of turn): a generation is cut at the first one,
    /// and trailing ones are removed from references, before exact match.
    pub stop_ids: Vec<u32>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            metrics: vec![Metric::Loss],
            pad_id: 0,
            stop_ids: Vec::new(),
        }
    }
}

/// The metrics of the adapted model and of the base model on the same data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The model with its adapters.
    pub model: Metrics,
    /// The base model alone (`baseline.*` in gates).
    pub baseline: Metrics,
    /// Peak memory of the whole evaluation (both models).
    pub memory: MemoryReport,
}

/// What went wrong while evaluating.
#[derive(Debug, Error, Diagnostic)]
pub enum EvalError {
    /// A config field is unusable.
    #[error("eval config: `{field}` {reason}")]
    #[diagnostic(code(peftc::eval::invalid_config))]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Nothing to evaluate on.
    #[error("no evaluation examples")]
    #[diagnostic(code(peftc::eval::no_examples))]
    NoExamples,
    /// The metric does not fit the model's head.
    #[error("metric `{metric}` does not apply to a {task} model")]
    #[diagnostic(code(peftc::eval::metric_not_applicable))]
    NotApplicable {
        /// The metric key.
        metric: &'static str,
        /// `causal LM` or `classification`.
        task: &'static str,
    },
    /// Exact match needs a generation callback.
    #[error("metric `exact_match` needs a generation callback")]
    #[diagnostic(code(peftc::eval::needs_generate))]
    NeedsGenerate,
    /// An example lacks the labels its metric needs.
    #[error("example {index} has no {what} labels")]
    #[diagnostic(code(peftc::eval::missing_labels))]
    MissingLabels {
        /// Example index.
        index: usize,
        /// `causal` or `class`.
        what: &'static str,
    },
    /// A tensor operation or the generation callback failed.
    #[error("{phase}: {source}")]
    #[diagnostic(code(peftc::eval::tensor))]
    Tensor {
        /// `forward`, `loss`, `collate`, `generate`...
        phase: &'static str,
        /// The candle error.
        #[source]
        source: candle_core::Error,
    },
}

fn ctx(phase: &'static str) -> impl FnOnce(candle_core::Error) -> EvalError {
    move |source| EvalError::Tensor { phase, source }
}

/// Evaluates `model` on `examples`. `collate`: `None` pads with `config.pad_id`. `generate` is
/// needed only for [`Metric::ExactMatch`]. Runs without a gradient graph
/// ([`crate::runtime::ops::no_grad`]).
pub fn evaluate(
    model: &dyn AdaptedModel,
    examples: &[Example],
    config: &EvalConfig,
    collate: Option<&dyn Collate>,
    generate: Option<Generate<'_>>,
) -> Result<Metrics, EvalError> {
    crate::runtime::ops::no_grad::no_grad(|| {
        evaluate_tracked(model, examples, config, collate, generate)
    })
}

fn evaluate_tracked(
    model: &dyn AdaptedModel,
    examples: &[Example],
    config: &EvalConfig,
    collate: Option<&dyn Collate>,
    generate: Option<Generate<'_>>,
) -> Result<Metrics, EvalError> {
    let _span = tracing::info_span!("eval", examples = examples.len()).entered();
    if config.batch_size == 0 {
        return Err(EvalError::InvalidConfig {
            field: "batch_size",
            reason: "must be at least 1".into(),
        });
    }
    if examples.is_empty() {
        return Err(EvalError::NoExamples);
    }
    let task = model.task();
    let task_name = match task {
        TaskKind::CausalLm => "causal LM",
        TaskKind::Classify { .. } => "classification",
    };
    for &m in &config.metrics {
        let ok = !matches!(
            (m, task),
            (
                Metric::Perplexity | Metric::ExactMatch,
                TaskKind::Classify { .. }
            ) | (Metric::F1, TaskKind::CausalLm)
        );
        if !ok {
            return Err(EvalError::NotApplicable {
                metric: m.key(),
                task: task_name,
            });
        }
    }
    let pad = PadCollator {
        pad_id: config.pad_id,
    };
    let collator: &dyn Collate = collate.unwrap_or(&pad);
    let wants = |m: Metric| config.metrics.contains(&m);
    let needs_forward = config
        .metrics
        .iter()
        .any(|m| !matches!(m, Metric::ExactMatch));

    let mut loss_sum = 0f64;
    let mut loss_count = 0usize;
    let mut preds: Vec<u32> = Vec::new();
    let mut truth: Vec<u32> = Vec::new();
    if needs_forward {
        for (chunk_i, chunk) in examples.chunks(config.batch_size).enumerate() {
            let first = chunk_i * config.batch_size;
            let refs: Vec<&Example> = chunk.iter().collect();
            let batch = collator
                .collate(&refs, model.device())
                .map_err(ctx("collate"))?;
            let logits = model
                .forward(&batch.input_ids, &batch.attention_mask, false)
                .map_err(ctx("forward"))?
                .detach();
            match task {
                TaskKind::CausalLm => {
                    let labels = batch.labels.as_ref().ok_or(EvalError::MissingLabels {
                        index: first,
                        what: "causal",
                    })?;
                    let ls = causal_lm_loss(&logits, labels).map_err(ctx("loss"))?;
                    loss_sum += f64::from(ls.sum.to_scalar::<f32>().map_err(ctx("loss"))?);
                    loss_count += ls.count;
                    if wants(Metric::Accuracy) {
                        let (_, s, _) = logits.dims3().map_err(ctx("accuracy"))?;
                        if s >= 2 {
                            let am: Vec<Vec<u32>> = logits
                                .narrow(1, 0, s - 1)
                                .and_then(|l| l.argmax(D::Minus1))
                                .and_then(|a| a.to_vec2())
                                .map_err(ctx("accuracy"))?;
                            let lb: Vec<Vec<i64>> = labels
                                .narrow(1, 1, s - 1)
                                .and_then(|l| l.to_dtype(DType::I64))
                                .and_then(|l| l.to_vec2())
                                .map_err(ctx("accuracy"))?;
                            for (pr, lr) in am.iter().zip(&lb) {
                                for (&p, &l) in pr.iter().zip(lr) {
                                    if l != IGNORE_INDEX {
                                        preds.push(p);
                                        truth.push(l as u32);
                                    }
                                }
                            }
                        }
                    }
                }
                TaskKind::Classify { .. } => {
                    let labels = batch
                        .class_labels
                        .as_ref()
                        .ok_or(EvalError::MissingLabels {
                            index: first,
                            what: "class",
                        })?;
                    let ls = classification_loss(&logits, labels).map_err(ctx("loss"))?;
                    loss_sum += f64::from(ls.sum.to_scalar::<f32>().map_err(ctx("loss"))?);
                    loss_count += ls.count;
                    let am: Vec<u32> = logits
                        .argmax(D::Minus1)
                        .and_then(|a| a.to_vec1())
                        .map_err(ctx("accuracy"))?;
                    let lb: Vec<u32> = labels
                        .to_dtype(DType::U32)
                        .and_then(|l| l.to_vec1())
                        .map_err(ctx("accuracy"))?;
                    preds.extend(am);
                    truth.extend(lb);
                }
            }
        }
    }
    let mean_loss = loss_sum / loss_count.max(1) as f64;
    let mut out = Metrics::default();
    for &m in &config.metrics {
        let v = match m {
            Metric::Loss => mean_loss,
            Metric::Perplexity => perplexity(mean_loss),
            Metric::Accuracy => accuracy(&preds, &truth),
            Metric::F1 => macro_f1(&preds, &truth),
            Metric::ExactMatch => {
                let generate = generate.ok_or(EvalError::NeedsGenerate)?;
                exact_match_of(examples, &config.stop_ids, generate)?
            }
        };
        out.set(m, v);
    }
    Ok(out)
}

/// Splits a causal example into its prompt (tokens before the first labelled one) and its
/// reference answer (the labelled tokens).
pub fn prompt_and_answer(example: &Example) -> Option<(&[u32], Vec<u32>)> {
    let start = example.labels.iter().position(|&l| l != IGNORE_INDEX)?;
    let prompt = example.input_ids.get(..start)?;
    let answer = example
        .input_ids
        .iter()
        .zip(&example.labels)
        .skip(start)
        .filter(|(_, &l)| l != IGNORE_INDEX)
        .map(|(&t, _)| t)
        .collect();
    Some((prompt, answer))
}

fn exact_match_of(
    examples: &[Example],
    stop_ids: &[u32],
    generate: Generate<'_>,
) -> Result<f64, EvalError> {
    let mut pairs = Vec::with_capacity(examples.len());
    for (index, e) in examples.iter().enumerate() {
        let (prompt, mut answer) = prompt_and_answer(e).ok_or(EvalError::MissingLabels {
            index,
            what: "causal",
        })?;
        while answer.last().is_some_and(|t| stop_ids.contains(t)) {
            answer.pop();
        }
        let mut generated = generate(prompt).map_err(ctx("generate"))?;
        if let Some(cut) = generated.iter().position(|t| stop_ids.contains(t)) {
            generated.truncate(cut);
        }
        pairs.push((generated, answer));
    }
    Ok(exact_match(&pairs))
}

/// Evaluates the adapted model and the base model (the same model with adapters disabled,
/// provided by the model part) on the same examples.
pub fn evaluate_with_baseline(
    model: &dyn AdaptedModel,
    base: &dyn AdaptedModel,
    examples: &[Example],
    config: &EvalConfig,
    collate: Option<&dyn Collate>,
    generate: Option<(Generate<'_>, Generate<'_>)>,
) -> Result<EvalReport, EvalError> {
    let probe = MemoryProbe::start();
    let (g_model, g_base) = match generate {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let model_m = evaluate(model, examples, config, collate, g_model)?;
    let base_m = {
        let _s = tracing::info_span!("baseline").entered();
        evaluate(base, examples, config, collate, g_base)?
    };
    Ok(EvalReport {
        model: model_m,
        baseline: base_m,
        memory: probe.report(),
    })
}
