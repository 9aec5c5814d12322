//! The frozen base weight behind every adaptable linear layer.
//!
//! A dense tensor (f32, f16, bf16) and each quantized format (NF4, int8, k-quants) implement
//! [`FrozenWeight`]. It must never hand a gradient to the weight itself: the base stays frozen,
//! holds no gradient and no optimizer state. It must give the gradient with respect to the input,
//! so that adapters in earlier layers learn.

use crate::runtime::quant::tiled::DequantRows;
use candle_core::{DType, Result, Tensor};
use std::sync::Arc;

/// A frozen `[out, in]` weight used as `y = x W^T`.
pub trait FrozenWeight: Send + Sync + std::fmt::Debug {
    /// `x @ W^T` for `x: [.., in]`, giving `[.., out]`. Differentiable with respect to `x` only.
    fn forward(&self, x: &Tensor) -> Result<Tensor>;
    /// The weight as a dense `[out, in]` tensor of `dtype` on the weight's device (for merging,
    /// DoRA norms, export and tests). Transient: callers must not keep whole models of these.
    fn dequantize(&self, dtype: DType) -> Result<Tensor>;
    /// `(out_features, in_features)`.
    fn dims(&self) -> (usize, usize);
    /// Bytes the stored weight occupies.
    fn storage_bytes(&self) -> usize;
    /// Short name of the storage format: `f32`, `bf16`, `f16`, `nf4`, `int8`, `q8_0`, `q4k`...
    fn format(&self) -> &str;
    /// The stored `[out, in]` tensor when the weight is dense (fused ops multiply by it
    /// directly); `None` for quantized formats.
    fn dense(&self) -> Option<&Tensor> {
        None
    }
    /// The packed rows and the tile bound when the weight dequantizes row tiles on the CPU
    /// (NF4, FP4, int8): the fused LoRA op multiplies by the tiles as they come. `None` for
    /// dense weights and GGML formats.
    fn tiles(&self) -> Option<(&Arc<dyn DequantRows>, usize)> {
        None
    }
}
