//! A dense frozen weight (f32, f16 or bf16 storage) as a [`FrozenWeight`].
//!
//! Computes in the activation's dtype through [`frozen_matmul`], which returns the input
//! gradient only. Must not give the weight a gradient.

use crate::runtime::ops::frozen_matmul::frozen_matmul;
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Result, Tensor};

/// A dense `[out, in]` frozen weight.
#[derive(Debug, Clone)]
pub struct DenseWeight {
    weight: Tensor,
}

impl DenseWeight {
    /// Wraps a `[out, in]` tensor; it is detached so no gradient can reach it.
    pub fn new(weight: Tensor) -> Self {
        Self {
            weight: weight.detach(),
        }
    }

    /// The stored tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.weight
    }
}

impl FrozenWeight for DenseWeight {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        frozen_matmul(x, &self.weight)
    }

    fn dequantize(&self, dtype: DType) -> Result<Tensor> {
        self.weight.to_dtype(dtype)
    }

    fn dims(&self) -> (usize, usize) {
        let d = self.weight.dims();
        (d[0], d[1])
    }

    fn storage_bytes(&self) -> usize {
        self.weight.elem_count() * self.weight.dtype().size_in_bytes()
    }

    fn format(&self) -> &str {
        self.weight.dtype().as_str()
    }

    fn dense(&self) -> Option<&Tensor> {
        Some(&self.weight)
    }
}
