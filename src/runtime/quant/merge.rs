//! Merging a LoRA (or any) delta into a frozen, possibly quantized, base weight:
//! dequantize, add, then keep the sum dense or quantize it again, as the user declares.
//!
//! Merging into a quantized base changes the numbers (the re-quantization error lands on the
//! merged weight): the planner evaluates again after a merge (DOMAIN.md). Must not touch adapters.

use super::error::QuantError;
use super::spec::QuantSpec;
use crate::runtime::dense::DenseWeight;
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Tensor};
use std::sync::Arc;

/// What the merged weight is stored as.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeTarget {
    /// Dense in this dtype (f32, bf16 or f16).
    Dense(DType),
    /// Quantized again with this spec.
    Requantize(QuantSpec),
}

/// `W' = dequantize(base) + delta`, stored as `target`. `delta` is `[out, in]` (for LoRA:
/// `scale * B @ A`); it is moved to the base's device and computed in f32.
pub fn merge_delta(
    name: &str,
    base: &dyn FrozenWeight,
    delta: &Tensor,
    target: &MergeTarget,
) -> Result<Arc<dyn FrozenWeight>, QuantError> {
    let (out, inp) = base.dims();
    if delta.dims() != [out, inp] {
        return Err(QuantError::MergeShape {
            name: name.to_string(),
            expected: vec![out, inp],
            found: delta.dims().to_vec(),
        });
    }
    let err = QuantError::candle(name);
    let w = base
        .dequantize(DType::F32)
        .map_err(QuantError::candle(name))?;
    let d = delta
        .detach()
        .to_device(w.device())
        .and_then(|d| d.to_dtype(DType::F32))
        .map_err(QuantError::candle(name))?;
    let merged = (w + d).map_err(err)?;
    Ok(match target {
        MergeTarget::Dense(dt) => Arc::new(DenseWeight::new(
            merged.to_dtype(*dt).map_err(QuantError::candle(name))?,
        )),
        MergeTarget::Requantize(spec) => Arc::new(spec.quantize(name, &merged)?),
    })
}
