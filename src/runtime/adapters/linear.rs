//! The adaptable linear layer: a frozen base weight plus named adapters.
//!
//! Every linear layer of every architecture is one of these, so any adapter can target any
//! linear module. Minimal form for now: base only.

use crate::runtime::weight::FrozenWeight;
use candle_core::{Result, Tensor};
use std::sync::Arc;

/// A linear layer `y = x W^T + b` whose frozen `W` may carry adapters.
#[derive(Debug, Clone)]
pub struct AdaptableLinear {
    /// Module path in the checkpoint, e.g. `model.layers.0.self_attn.q_proj`.
    pub path: String,
    base: Arc<dyn FrozenWeight>,
    bias: Option<Tensor>,
}

impl AdaptableLinear {
    /// A layer over a frozen weight and an optional frozen bias.
    pub fn new(path: impl Into<String>, base: Arc<dyn FrozenWeight>, bias: Option<Tensor>) -> Self {
        Self {
            path: path.into(),
            base,
            bias,
        }
    }

    /// `x: [.., in]` to `[.., out]`. `train` switches adapter dropout on.
    pub fn forward(&self, x: &Tensor, _train: bool) -> Result<Tensor> {
        let y = self.base.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(&b.to_dtype(y.dtype())?),
            None => Ok(y),
        }
    }

    /// The frozen base weight.
    pub fn base(&self) -> &Arc<dyn FrozenWeight> {
        &self.base
    }
}
