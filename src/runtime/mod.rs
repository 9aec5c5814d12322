//! The runtime: everything that touches tensors, on candle (CPU by default, CUDA or Metal by
//! feature). The planner calls into it; it never reads `.peft` syntax.
//!
//! The seams between its parts are small traits and plain structs:
//! - [`weight::FrozenWeight`]: the frozen base weight of an adaptable linear layer (dense or
//!   quantized).
//! - [`batch::Example`] / [`batch::Batch`]: what data preparation produces and training consumes.
//! - [`model_api::AdaptedModel`]: what training and evaluation need from a model.

pub mod batch;
pub mod dense;
pub mod model_api;
pub mod weight;

pub mod adapters;
pub mod allocator;
pub mod data;
pub mod eval;
pub mod models;
pub mod ops;
pub mod peft_format;
pub mod process_memory;
pub mod quant;
pub mod train;
