//! Scaled dot-product attention with grouped-query (GQA) key/value heads and an additive bias.
//!
//! Differentiable ([`Kernels::Differentiable`]) for training; [`Kernels::Fused`] may use
//! candle's fused softmax, which has no backward, and is for inference only.

use crate::runtime::ops::softmax::softmax;
use candle_core::{Result, Tensor};

/// Which kernels an op may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Composite ops with a backward pass (training and anything that needs gradients).
    #[default]
    Differentiable,
    /// candle's fused kernels where faster; no gradients (generation).
    Fused,
}

/// Repeats `[b, h_kv, s, d]` key/value heads to `[b, h_kv * n_rep, s, d]`.
pub fn repeat_kv(x: &Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x.clone());
    }
    let (b, h, s, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, h, n_rep, s, d))?
        .reshape((b, h * n_rep, s, d))
}

/// `softmax(q k^T * scale + bias) v` for `q: [b, h, s_q, d]`, `k`, `v`: `[b, h_kv, s_k, d]`,
/// `bias`: `[b, 1, s_q, s_k]`. Returns `[b, h, s_q, d]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
    kernels: Kernels,
) -> Result<Tensor> {
    let h = q.dim(1)?;
    let h_kv = k.dim(1)?;
    if h_kv == 0 || h % h_kv != 0 {
        candle_core::bail!("{h} query heads cannot share {h_kv} key/value heads")
    }
    let k = repeat_kv(k, h / h_kv)?;
    let v = repeat_kv(v, h / h_kv)?;
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let scores = scores.broadcast_add(&bias.to_dtype(scores.dtype())?)?;
    let probs = match kernels {
        Kernels::Differentiable => softmax(&scores)?,
        Kernels::Fused => candle_nn::ops::softmax_last_dim(&scores.contiguous()?)?,
    };
    probs.matmul(&v.contiguous()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;
    use crate::runtime::ops::mask::{attention_bias, MaskKind, MaskSpec};
    use candle_core::{DType, Device};

    #[test]
    fn gqa_attention_gradient_and_fused_agree() -> Result<()> {
        let dev = Device::Cpu;
        let k = Tensor::randn(0f64, 1.0, (2, 1, 3, 4), &dev)?;
        let v = Tensor::randn(0f64, 1.0, (2, 1, 3, 4), &dev)?;
        let m = Tensor::new(&[[1u8, 1, 1], [1, 1, 0]], &dev)?;
        let spec = MaskSpec {
            batch: 2,
            q_len: 3,
            k_len: 3,
            offset: 0,
            kind: MaskKind::Causal,
            window: None,
        };
        let bias = attention_bias(Some(&m), spec, DType::F64, &dev)?;
        check_grad(&[2, 2, 3, 4], |q| {
            attention(q, &k, &v, &bias, 0.5, Kernels::Differentiable)
        })?;
        let q = Tensor::randn(0f32, 1.0, (2, 2, 3, 4), &dev)?;
        let (k, v, bias) = (
            k.to_dtype(DType::F32)?,
            v.to_dtype(DType::F32)?,
            bias.to_dtype(DType::F32)?,
        );
        let a = attention(&q, &k, &v, &bias, 0.5, Kernels::Differentiable)?;
        let b = attention(&q, &k, &v, &bias, 0.5, Kernels::Fused)?;
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        Ok(())
    }

    #[test]
    fn gradient_reaches_keys_and_values() -> Result<()> {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f64, 1.0, (1, 4, 2, 4), &dev)?;
        let v = Tensor::randn(0f64, 1.0, (1, 2, 2, 4), &dev)?;
        let spec = MaskSpec {
            batch: 1,
            q_len: 2,
            k_len: 2,
            offset: 0,
            kind: MaskKind::Causal,
            window: None,
        };
        let bias = attention_bias(None, spec, DType::F64, &dev)?;
        check_grad(&[1, 2, 2, 4], |k| {
            attention(&q, k, &v, &bias, 0.5, Kernels::Differentiable)
        })?;
        let k = Tensor::randn(0f64, 1.0, (1, 2, 2, 4), &dev)?;
        check_grad(&[1, 2, 2, 4], |v| {
            attention(&q, &k, v, &bias, 0.5, Kernels::Differentiable)
        })
    }
}
