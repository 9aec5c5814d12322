//! Differentiable RMSNorm (llama family) and LayerNorm (gpt2, bert).
//!
//! On CPU both run candle's fused kernels wrapped with our own backward ([`RmsNormWithGrad`],
//! [`LayerNormWithGrad`]); elsewhere the composite forms. Must never call candle's bare fused
//! `candle_nn::ops::{rms_norm, layer_norm}` on the training path (no backward: a graph cut).
//! Statistics are computed in f32 (or f64) as in transformers, then cast back.

use crate::runtime::ops::fused::{LayerNormWithGrad, RmsNormWithGrad};
use candle_core::{DType, Result, Tensor, D};

fn compute_dtype(x: &Tensor) -> DType {
    match x.dtype() {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension (HF `LlamaRMSNorm`),
/// differentiable: the fused kernel with a backward pass on CPU ([`RmsNormWithGrad`]), the
/// composite form elsewhere.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() {
        let w = weight.to_dtype(x.dtype())?.contiguous()?;
        x.contiguous()?.apply_op2(&w, RmsNormWithGrad { eps })
    } else {
        rms_norm_composite(x, weight, eps)
    }
}

/// RMSNorm from primitives, statistics in f32 (f64 for f64 inputs).
pub fn rms_norm_composite(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = x.to_dtype(compute_dtype(x))?;
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = xf.broadcast_div(&(ms + eps)?.sqrt()?)?.to_dtype(dt)?;
    normed.broadcast_mul(&weight.to_dtype(dt)?)
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` over the last dimension (biased variance, as
/// `torch.nn.LayerNorm`), differentiable: fused with a backward pass on CPU
/// ([`LayerNormWithGrad`]), composite elsewhere.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() {
        let w = weight.to_dtype(x.dtype())?.contiguous()?;
        let b = match bias {
            Some(b) => b.to_dtype(x.dtype())?.contiguous()?,
            None => w.zeros_like()?,
        };
        x.contiguous()?.apply_op3(&w, &b, LayerNormWithGrad { eps })
    } else {
        layer_norm_composite(x, weight, bias, eps)
    }
}

/// LayerNorm from primitives, statistics in f32 (f64 for f64 inputs).
pub fn layer_norm_composite(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = x.to_dtype(compute_dtype(x))?;
    let mean = xf.mean_keepdim(D::Minus1)?;
    let centered = xf.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .to_dtype(dt)?;
    let y = normed.broadcast_mul(&weight.to_dtype(dt)?)?;
    match bias {
        Some(b) => y.broadcast_add(&b.to_dtype(dt)?),
        None => Ok(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;
    use candle_core::Device;

    #[test]
    fn rms_norm_matches_reference_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f64, 2.0, 3.0, 4.0]], &dev)?;
        let w = Tensor::new(&[1.0f64, 1.0, 2.0, 0.5], &dev)?;
        let y = rms_norm(&x, &w, 0.0)?.to_vec2::<f64>()?;
        // rms = sqrt(30/4) = 2.7386128
        assert!((y[0][0] - 1.0 / 2.738_612_8).abs() < 1e-6);
        assert!((y[0][2] - 6.0 / 2.738_612_8).abs() < 1e-6);
        let w = Tensor::randn(0f64, 1.0, 7, &dev)?;
        check_grad(&[2, 3, 7], |x| rms_norm(x, &w, 1e-6))?;
        check_grad(&[2, 3, 7], |x| rms_norm_composite(x, &w, 1e-6))
    }

    #[test]
    fn layer_norm_matches_reference_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1.0f64, 2.0, 3.0, 6.0]], &dev)?;
        let w = Tensor::new(&[1.0f64; 4], &dev)?;
        let b = Tensor::new(&[0.5f64; 4], &dev)?;
        let y = layer_norm(&x, &w, Some(&b), 0.0)?.to_vec2::<f64>()?;
        // mean 3, var (4+1+0+9)/4 = 3.5
        assert!((y[0][0] - (0.5 - 2.0 / 3.5f64.sqrt())).abs() < 1e-9);
        let w = Tensor::randn(0f64, 1.0, 5, &dev)?;
        let b = Tensor::randn(0f64, 1.0, 5, &dev)?;
        check_grad(&[3, 5], |x| layer_norm(x, &w, Some(&b), 1e-5))?;
        check_grad(&[3, 5], |x| layer_norm_composite(x, &w, Some(&b), 1e-5))
    }
}
