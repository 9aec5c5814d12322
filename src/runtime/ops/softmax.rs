//! Numerically stable, differentiable softmax over the last dimension.
//!
//! On CPU a fused kernel with its own backward ([`SoftmaxWithGrad`]); elsewhere built from
//! primitives (max, sub, exp, sum, div) so the backward pass exists. Must not call
//! `candle_nn::ops::softmax_last_dim` (fused, no backward).

use crate::runtime::ops::fused::SoftmaxWithGrad;
use candle_core::{Result, Tensor, D};

/// `softmax(x)` along the last dimension, differentiable: the fused kernel with a backward
/// pass on CPU ([`SoftmaxWithGrad`]), the composite form elsewhere.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() {
        x.contiguous()?.apply_op1(SoftmaxWithGrad)
    } else {
        softmax_composite(x)
    }
}

/// `exp(x - max) / sum(exp(x - max))` along the last dimension, from primitives.
pub fn softmax_composite(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&s)
}

/// `log_softmax(x)` along the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&lse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;

    #[test]
    fn softmax_rows_sum_to_one_and_match_reference() -> Result<()> {
        let x = Tensor::new(
            &[[1.0f64, 2.0, 3.0], [0.0, 0.0, 1000.0]],
            &candle_core::Device::Cpu,
        )?;
        let y = softmax(&x)?.to_vec2::<f64>()?;
        // numpy: exp([1,2,3]) / sum -> [0.09003057, 0.24472847, 0.66524096]
        assert!((y[0][0] - 0.090_030_57).abs() < 1e-8);
        assert!((y[0][2] - 0.665_240_96).abs() < 1e-8);
        assert!((y[1][2] - 1.0).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn softmax_gradient_matches_finite_differences() -> Result<()> {
        check_grad(&[2, 3, 5], softmax)?;
        check_grad(&[2, 3, 5], softmax_composite)?;
        check_grad(&[4, 6], log_softmax)
    }
}
