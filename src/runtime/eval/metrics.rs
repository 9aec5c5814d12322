//! Metric formulas on plain numbers (no tensors): accuracy, macro-F1 (as scikit-learn's
//! `f1_score(average="macro")` over the labels present in either list), perplexity, exact match;
//! and [`Metrics`], the name-to-value map a stage reports.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A metric an eval stage can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean loss (token-weighted for causal LM, example mean for classification).
    Loss,
    /// `exp(loss)` of a causal LM.
    Perplexity,
    /// Share of correct predictions (classes, or next tokens for a causal LM).
    Accuracy,
    /// Macro-averaged F1 over classes.
    F1,
    /// Share of generated answers equal to the reference.
    ExactMatch,
}

impl Metric {
    /// The key in [`Metrics`]: `loss`, `perplexity`, `accuracy`, `f1`, `exact_match`.
    pub fn key(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Perplexity => "perplexity",
            Metric::Accuracy => "accuracy",
            Metric::F1 => "f1",
            Metric::ExactMatch => "exact_match",
        }
    }
}

/// Metric name to value (sorted by name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    /// The value of `metric`, if computed.
    pub fn get(&self, metric: Metric) -> Option<f64> {
        self.0.get(metric.key()).copied()
    }

    /// Sets `metric`.
    pub fn set(&mut self, metric: Metric, value: f64) {
        self.0.insert(metric.key().to_string(), value);
    }
}

/// Share of positions where `pred == truth` (0 for empty input).
pub fn accuracy(pred: &[u32], truth: &[u32]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let hits = pred.iter().zip(truth).filter(|(p, t)| p == t).count();
    hits as f64 / truth.len() as f64
}

/// Macro-F1: the mean over every label present in `pred` or `truth` of
/// `2 TP / (2 TP + FP + FN)` (0 for empty input).
pub fn macro_f1(pred: &[u32], truth: &[u32]) -> f64 {
    let labels: BTreeSet<u32> = pred.iter().chain(truth).copied().collect();
    if labels.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for &l in &labels {
        let (mut tp, mut fp, mut fun) = (0usize, 0usize, 0usize);
        for (&p, &t) in pred.iter().zip(truth) {
            match (p == l, t == l) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fun += 1,
                (false, false) => {}
            }
        }
        let den = 2 * tp + fp + fun;
        if den > 0 {
            total += 2.0 * tp as f64 / den as f64;
        }
    }
    total / labels.len() as f64
}

/// `exp(mean token loss)`.
pub fn perplexity(mean_loss: f64) -> f64 {
    mean_loss.exp()
}

/// Share of `(generated, reference)` pairs that are equal (0 for none).
pub fn exact_match(pairs: &[(Vec<u32>, Vec<u32>)]) -> f64 {
    if pairs.is_empty() {
        return 0.0;
    }
    pairs.iter().filter(|(g, r)| g == r).count() as f64 / pairs.len() as f64
}
