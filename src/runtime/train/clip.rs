//! Gradient clipping by global L2 norm, as `torch.nn.utils.clip_grad_norm_` (norm type 2,
//! `clip_coef = max_norm / (total_norm + 1e-6)`, clamped to 1, applied to every gradient).

use candle_core::{Result, Tensor};
use std::collections::HashMap;

/// The global L2 norm of all gradients (f32 per-tensor norms combined, as torch).
pub fn global_norm(grads: &HashMap<String, Tensor>) -> Result<f32> {
    let mut sum = 0f32;
    // Sorted for a fixed summation order.
    let mut names: Vec<&String> = grads.keys().collect();
    names.sort();
    for name in names {
        if let Some(g) = grads.get(name) {
            let n = g
                .to_dtype(candle_core::DType::F32)?
                .sqr()?
                .sum_all()?
                .sqrt()?
                .to_scalar::<f32>()?;
            sum += n * n;
        }
    }
    Ok(sum.sqrt())
}

/// Scales the gradients in place so their global norm is at most `max_norm`; returns the norm
/// before clipping.
pub fn clip_grad_norm(grads: &mut HashMap<String, Tensor>, max_norm: f64) -> Result<f32> {
    let total = global_norm(grads)?;
    let coef = (max_norm as f32 / (total + 1e-6)).min(1.0);
    for g in grads.values_mut() {
        let c = Tensor::new(coef, g.device())?.to_dtype(g.dtype())?;
        *g = g.broadcast_mul(&c)?;
    }
    Ok(total)
}
