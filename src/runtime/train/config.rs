//! What a train stage is told to do: length, batch, optimizer, schedule, clipping, seed,
//! checkpoints. Plain serde data; it must not hold tensors or paths of the run.
//!
//! Defaults follow Hugging Face `TrainingArguments` for the run ([`TrainConfig::default`]) and
//! PyTorch for the optimizers ([`AdamWConfig::default`], [`SgdConfig::default`]).

use serde::{Deserialize, Serialize};

/// How long to train.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainLength {
    /// Whole passes over the data.
    Epochs(u64),
    /// Optimizer steps (the data is repeated as needed, as `max_steps` in Hugging Face).
    Steps(u64),
}

/// AdamW hyper-parameters except the learning rate (PyTorch's `torch.optim.AdamW`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// `betas[0]`; torch default 0.9.
    pub beta1: f64,
    /// `betas[1]`; torch default 0.999.
    pub beta2: f64,
    /// Added to the bias-corrected square root of the second moment; torch default 1e-8.
    pub eps: f64,
    /// Decoupled weight decay (`p *= 1 - lr * wd`); torch default 0.01.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// SGD hyper-parameters except the learning rate (PyTorch's `torch.optim.SGD`).
#[derive(Clone, Copy, Debug, PartialEq, Default, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Momentum factor; 0 disables the buffer.
    pub momentum: f64,
    /// Dampening of the momentum update.
    pub dampening: f64,
    /// L2 penalty added to the gradient (coupled, as torch SGD).
    pub weight_decay: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// The optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// `torch.optim.AdamW`.
    #[serde(rename = "adamw")]
    AdamW(AdamWConfig),
    /// `torch.optim.SGD`.
    Sgd(SgdConfig),
}

impl Default for OptimizerConfig {
    fn default() -> Self {
        // Hugging Face TrainingArguments: adamw with weight_decay 0.
        Self::AdamW(AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        })
    }
}

/// Which trainable parameters take weight decay (without LoRA+; LoRA+ follows PEFT's split).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayRule {
    /// Every parameter (a plain `torch.optim` over all parameters).
    All,
    /// Not biases and norm weights (names containing `bias` or `norm`), as the Hugging Face
    /// Trainer's `get_decay_parameter_names`.
    #[default]
    SkipBiasAndNorm,
}

/// The shape of the learning-rate multiplier after warmup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// 1 after warmup (`get_constant_schedule_with_warmup`).
    Constant,
    /// Linear decay to 0 at the last step (`get_linear_schedule_with_warmup`).
    Linear,
    /// Half-cosine decay to 0 (`get_cosine_schedule_with_warmup`, `num_cycles = 0.5`).
    Cosine,
}

/// Linear warmup from 0.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    /// A number of optimizer steps.
    Steps(u64),
    /// A fraction of the total steps, rounded up (`ceil(total * ratio)`, as Hugging Face).
    Fraction(f64),
}

/// A learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleConfig {
    /// Shape after warmup.
    pub kind: ScheduleKind,
    /// Warmup length.
    pub warmup: Warmup,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Linear,
            warmup: Warmup::Steps(0),
        }
    }
}

/// A training run's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Epochs or optimizer steps.
    pub length: TrainLength,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches per optimizer step (gradient accumulation).
    pub accumulate: usize,
    /// Peak learning rate (group A's when LoRA+ is on).
    pub lr: f64,
    /// Optimizer and its hyper-parameters.
    pub optimizer: OptimizerConfig,
    /// Which parameters take weight decay.
    pub decay: DecayRule,
    /// LoRA+: parameters whose name contains `lora_B` (and 1-D ones, as PEFT) train with
    /// `lr * ratio`.
    pub lora_plus_ratio: Option<f64>,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Clip the global L2 norm of the gradients to this value (`clip_grad_norm_`).
    pub max_grad_norm: Option<f64>,
    /// Seeds the data order and the dropout RNG.
    pub seed: u64,
    /// Shuffle the examples each epoch (seeded); otherwise keep their order.
    pub shuffle: bool,
    /// Write a checkpoint every this many optimizer steps (and always at the end).
    pub checkpoint_every: Option<u64>,
    /// How many checkpoints to keep (the newest; the final one is always kept). 0 keeps all.
    pub keep_checkpoints: usize,
    /// Padding token id for collation.
    pub pad_id: u32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            length: TrainLength::Epochs(3),
            batch_size: 8,
            accumulate: 1,
            lr: 5e-5,
            optimizer: OptimizerConfig::default(),
            decay: DecayRule::default(),
            lora_plus_ratio: None,
            schedule: ScheduleConfig::default(),
            max_grad_norm: Some(1.0),
            seed: 42,
            shuffle: true,
            checkpoint_every: None,
            keep_checkpoints: 2,
            pad_id: 0,
        }
    }
}
