//! Evaluation: loss, perplexity, accuracy, macro-F1 and exact match of a model on examples,
//! as a metrics map. The baseline (the base model alone) is the same call on the model with its
//! adapters disabled ([`evaluate_with_baseline`]). Models are seen only as
//! [`AdaptedModel`](crate::runtime::model_api::AdaptedModel); generation comes in as a callback.
//! Must not train or change weights.

pub mod evaluate;
pub mod metrics;

pub use evaluate::{evaluate, evaluate_with_baseline, EvalConfig, EvalError, EvalReport, Generate};
pub use metrics::{accuracy, exact_match, macro_f1, perplexity, Metric, Metrics};
