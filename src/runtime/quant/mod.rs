//! Quantized frozen base weights (QLoRA and friends), each behind
//! [`FrozenWeight`](crate::runtime::weight::FrozenWeight) so that any model and any adapter run on
//! a quantized base.
//!
//! - [`Nf4Weight`]: NF4 / FP4 exactly as bitsandbytes (blocks of 64 with absmax, two codes per
//!   byte, optional double quantization of the scales); forward and backward dequantize tiles on
//!   the fly ([`tiled`]).
//! - [`Int8Weight`]: int8 with an absmax per output row.
//! - [`GgmlWeight`]: candle's Q8_0 / Q4_K / Q5_K / Q6_K with candle's quantized kernel in the
//!   forward and an input-only backward.
//! - [`QuantSpec`] (what the user declares) -> [`QuantizedWeight`]; [`QuantizingSource`] wraps a
//!   [`TensorSource`](crate::runtime::models::source::TensorSource) and caches the packed form on
//!   disk ([`cache`]); [`merge_delta`] merges a delta into a quantized base; [`GgufWeights`]
//!   reads GGUF tensors as frozen weights without re-quantizing.
//!
//! Invariant: no gradient ever reaches a quantized weight; the gradient with respect to the
//! layer input always flows. Nothing here keeps a dequantized weight beyond one call.

pub mod blockwise4;
pub mod cache;
pub mod codes;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dynamic8;
pub mod error;
pub mod ggml;
pub mod gguf;
pub mod int8;
pub mod kernels;
pub mod merge;
pub mod nf4;
pub mod source;
pub mod spec;
pub mod tiled;

pub use blockwise4::Code4;
pub use dynamic8::DoubleQuantScales;
pub use error::QuantError;
pub use ggml::{GgmlConfig, GgmlFormat, GgmlWeight};
pub use gguf::GgufWeights;
pub use int8::{Int8Rows, Int8Weight};
pub use merge::{merge_delta, MergeTarget};
pub use nf4::{BlockScales, Nf4Weight, Packed4, Packed4Config};
pub use source::{QuantCacheConfig, QuantStats, QuantizingConfig, QuantizingSource};
pub use spec::{ComputeDType, QuantFormat, QuantSpec, QuantizedWeight};
