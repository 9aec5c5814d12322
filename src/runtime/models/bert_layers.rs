//! Building blocks of the BERT encoder: a differentiable layer norm, checked tensor and linear
//! loading from a [`TensorSource`], dropout.
//!
//! Only differentiable ops: never candle's fused `layer_norm`, which cuts the gradient graph
//! (the layer norm is the runtime's own fused op with a backward pass).

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::models::source::{LoadError, TensorSource};
use candle_core::{DType, Result, Tensor};

/// A differentiable layer norm over the last dim with learned scale and shift.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub(crate) fn load(
        src: &dyn TensorSource,
        path: &str,
        d: usize,
        dtype: DType,
        eps: f64,
    ) -> std::result::Result<Self, LoadError> {
        // Old checkpoints name them gamma / beta.
        let (w, b) = if src.contains(&format!("{path}.weight")) {
            (format!("{path}.weight"), format!("{path}.bias"))
        } else {
            (format!("{path}.gamma"), format!("{path}.beta"))
        };
        Ok(Self {
            weight: dense(src, &w, &[d], dtype)?,
            bias: dense(src, &b, &[d], dtype)?,
            eps,
        })
    }

    /// `(x - mean) / sqrt(var + eps) * w + b`: the fused kernel with its own backward on the CPU
    /// (one kept output instead of the six intermediates of the composite form), the composite
    /// form elsewhere ([`crate::runtime::ops::norm::layer_norm`]).
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::runtime::ops::norm::layer_norm(x, &self.weight, Some(&self.bias), self.eps)
    }
}

/// Reads a dense tensor and checks its shape.
pub(crate) fn dense(
    src: &dyn TensorSource,
    name: &str,
    shape: &[usize],
    dtype: DType,
) -> std::result::Result<Tensor, LoadError> {
    let found = src.shape(name)?;
    if found != shape {
        return Err(LoadError::ShapeMismatch {
            name: name.to_string(),
            file: "model weights".into(),
            expected: shape.to_vec(),
            found,
        });
    }
    src.tensor(name, dtype)
}

/// Reads a linear layer `<path>.weight` `[out, in]` (+ `<path>.bias` `[out]`).
pub(crate) fn linear(
    src: &dyn TensorSource,
    path: &str,
    out: usize,
    inp: usize,
    dtype: DType,
) -> std::result::Result<AdaptableLinear, LoadError> {
    let wname = format!("{path}.weight");
    let found = src.shape(&wname)?;
    if found != [out, inp] {
        return Err(LoadError::ShapeMismatch {
            name: wname,
            file: "model weights".into(),
            expected: vec![out, inp],
            found,
        });
    }
    let weight = src.linear(&wname, dtype)?;
    let bname = format!("{path}.bias");
    let bias = if src.contains(&bname) {
        Some(dense(src, &bname, &[out], dtype)?)
    } else {
        None
    };
    Ok(AdaptableLinear::new(path, weight, bias))
}

pub(crate) fn dropout(x: &Tensor, p: f64, train: bool) -> Result<Tensor> {
    if train && p > 0.0 {
        crate::runtime::ops::dropout::dropout(x, p as f32)
    } else {
        Ok(x.clone())
    }
}
