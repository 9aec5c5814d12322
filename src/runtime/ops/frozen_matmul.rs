//! `y = x W^T` for a frozen `[out, in]` weight, with a backward pass that returns only the input
//! gradient.
//!
//! candle's own matmul backward always computes `x^T @ grad` for the weight, even for a constant
//! tensor: a full GEMM and a full weight-sized gradient per frozen layer per step. This op skips
//! both (measured in `candle-feasibility.md`: backward 214 ms -> 105 ms on a 4-layer d=2048 LoRA
//! stack). CPU forward only; other devices fall back to a detached matmul (see [`frozen_matmul`]).
//! Must never return a gradient for the weight.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// The custom op; use it through [`frozen_matmul`].
#[derive(Debug, Clone, Copy)]
pub struct FrozenMatmul;

impl CustomOp2 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if !l1.is_contiguous() {
            candle_core::bail!("frozen-matmul: input must be contiguous")
        }
        let (&k, _) = l1
            .dims()
            .split_last()
            .ok_or_else(|| candle_core::Error::Msg("frozen-matmul: scalar input".into()))?;
        let wd = l2.dims();
        if wd.len() != 2 || wd[1] != k {
            candle_core::bail!("frozen-matmul: weight {wd:?} does not take inputs of width {k}")
        }
        let n = wd[0];
        let m = l1.shape().elem_count().checked_div(k).unwrap_or(0);
        let lhs = Layout::contiguous_with_offset((m, k), l1.start_offset());
        let out = s1.matmul(s2, (1, m, n, k), &lhs, &l2.transpose(0, 1)?)?;
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = n;
        }
        Ok((out, Shape::from(dims)))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let mut dims = g.dims().to_vec();
        let n = *dims.last().unwrap_or(&1);
        let dx = g.reshape(((), n))?.matmul(w)?;
        if let Some(last) = dims.last_mut() {
            *last = w.dim(1)?;
        }
        Ok((Some(dx.reshape(dims)?), None))
    }
}

/// `x @ w^T` for `x: [.., in]`, `w: [out, in]` frozen. Differentiable with respect to `x` only.
/// `w` is converted to `x`'s dtype first.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let w = w.to_dtype(x.dtype())?;
    if x.device().is_cpu() {
        x.contiguous()?.apply_op2(&w, FrozenMatmul)
    } else {
        x.broadcast_matmul(&w.detach().t()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;
    use candle_core::{Device, Var};

    #[test]
    fn forward_equals_matmul_and_gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f64, 1.0, (5, 4), &dev)?;
        let x = Tensor::randn(0f64, 1.0, (2, 3, 4), &dev)?;
        let a = frozen_matmul(&x, &w)?;
        let b = x.broadcast_matmul(&w.t()?)?;
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        check_grad(&[2, 3, 4], |x| frozen_matmul(x, &w))
    }

    #[test]
    fn no_gradient_reaches_the_weight_even_when_it_is_a_var() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::randn(0f32, 1.0, (5, 4), &dev)?;
        let x = Var::randn(0f32, 1.0, (3, 4), &dev)?;
        let y = frozen_matmul(x.as_tensor(), w.as_tensor())?;
        let grads = y.sum_all()?.backward()?;
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(w.as_tensor()).is_none());
        Ok(())
    }
}
