//! Training on candle autograd: the loop, optimizers, schedules, losses, checkpoints, progress,
//! memory and the per-step metrics log.
//!
//! Only the parameters a model lists in [`AdaptedModel::trainable`](crate::runtime::model_api::AdaptedModel::trainable)
//! are trained; the frozen base never holds a gradient or optimizer state. This module sees
//! models only through that trait and data only as [`Example`](crate::runtime::batch::Example)s,
//! so it must not depend on an architecture or on `.peft` syntax.
//!
//! Entry point: [`train`]. The numbers follow PyTorch and Hugging Face exactly (AdamW, SGD,
//! `get_*_schedule_with_warmup`, `clip_grad_norm_`, the Trainer's loss scaling under gradient
//! accumulation), so a run can be compared with a PEFT run step by step.

pub mod checkpoint;
pub mod clip;
pub mod collate;
pub mod config;
pub mod cross_entropy;
pub mod error;
pub mod linear_cross_entropy;
pub mod log;
pub mod loss;
pub mod memory;
pub mod optim;
pub mod order;
pub mod progress;
pub mod schedule;
pub mod summary;
pub mod trainer;

pub use collate::{collate, Collate, PadCollator};
pub use config::{
    AdamWConfig, DecayRule, OptimizerConfig, ScheduleConfig, ScheduleKind, SgdConfig, TrainConfig,
    TrainLength, Warmup,
};
pub use error::TrainError;
pub use progress::{progress_for_stderr, BarProgress, LineProgress, NoProgress, Progress};
pub use summary::TrainSummary;
pub use trainer::{train, Resume, TrainRun};
