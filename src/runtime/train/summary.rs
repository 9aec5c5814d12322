//! What a train stage reports when it ends (serialised into the stage's output).

use crate::runtime::train::memory::MemoryReport;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The outcome of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainSummary {
    /// Optimizer steps completed (the total, when it finished).
    pub steps: u64,
    /// Fractional epochs completed.
    pub epochs: f64,
    /// Loss of the last step run in this process.
    pub final_loss: Option<f64>,
    /// Mean loss over the steps run in this process.
    pub mean_loss: Option<f64>,
    /// Trainable parameters (elements).
    pub trainable_params: usize,
    /// Real tokens seen over the whole run (resumed runs included).
    pub tokens_seen: u64,
    /// Seconds spent in this process.
    pub train_seconds: f64,
    /// Tokens per second in this process.
    pub tokens_per_s: f64,
    /// The step the run resumed from, if it did.
    pub resumed_from: Option<u64>,
    /// The last checkpoint written (the final one).
    pub checkpoint: Option<PathBuf>,
    /// The metrics log.
    pub metrics_log: Option<PathBuf>,
    /// Peak memory of the stage.
    pub memory: MemoryReport,
    /// Length of the longest micro-batch this run trained on (padded sequence length): the
    /// length at which the memory peak happened, for comparing with the estimate.
    #[serde(default)]
    pub longest_batch: usize,
}
