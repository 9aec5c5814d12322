//! Fused softmax and RMSNorm with a backward pass.
//!
//! The forward runs candle's optimised fused CPU kernels (which alone have no backward and
//! would cut the graph); the backward is written out here from the closed forms:
//! - softmax: `dx = y * (g - sum(g * y))` over the last dimension;
//! - RMSNorm `y = x r w`, `r = 1/sqrt(mean(x^2) + eps)`, `n = x r`:
//!   `dx = r * (g w - n * mean(g w n))`, `dw = sum_rows(g n)`;
//! - LayerNorm `y = n w + b`, `n = (x - mean) r`, `r = 1/sqrt(var + eps)`:
//!   `dx = r * (g w - mean(g w) - n * mean(g w n))`, `dw = sum_rows(g n)`, `db = sum_rows(g)`;
//! - rotary embedding (rotate-half): a rotation, so `dx` is the rotation by `-sin`.
//!
//! CPU only (the callers fall back to the composite forms elsewhere). Each op has a
//! finite-difference gradient test.

use super::contiguous_slice;
use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, DType, Device, Layout, Result, Shape, Tensor, WithDType, D,
};

/// Copies a contiguous CPU storage region into a tensor (so candle's kernels can run on it).
fn to_tensor(s: &CpuStorage, l: &Layout) -> Result<Tensor> {
    fn typed<T: WithDType>(v: &[T], l: &Layout) -> Result<Tensor> {
        Tensor::from_slice(contiguous_slice(v, l, "fused op")?, l.shape(), &Device::Cpu)
    }
    match s {
        CpuStorage::F32(v) => typed(v, l),
        CpuStorage::F64(v) => typed(v, l),
        CpuStorage::BF16(v) => typed(v, l),
        CpuStorage::F16(v) => typed(v, l),
        other => candle_core::bail!(
            "fused op: unsupported dtype {:?}",
            candle_core::backend::BackendStorage::dtype(other)
        ),
    }
}

/// Moves a CPU tensor's data into a storage.
fn to_storage(t: &Tensor) -> Result<(CpuStorage, Shape)> {
    let flat = t.flatten_all()?;
    let storage = match t.dtype() {
        DType::F32 => f32::to_cpu_storage_owned(flat.to_vec1()?),
        DType::F64 => f64::to_cpu_storage_owned(flat.to_vec1()?),
        DType::BF16 => half::bf16::to_cpu_storage_owned(flat.to_vec1()?),
        DType::F16 => half::f16::to_cpu_storage_owned(flat.to_vec1()?),
        d => candle_core::bail!("fused op: unsupported dtype {d:?}"),
    };
    Ok((storage, t.shape().clone()))
}

/// Softmax over the last dimension with a backward pass.
#[derive(Debug, Clone, Copy)]
pub struct SoftmaxWithGrad;

impl CustomOp1 for SoftmaxWithGrad {
    fn name(&self) -> &'static str {
        "softmax-with-grad"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        to_storage(&candle_nn::ops::softmax_last_dim(&to_tensor(s, l)?)?)
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let dot = (g * y)?.sum_keepdim(D::Minus1)?;
        Ok(Some((y * g.broadcast_sub(&dot)?)?))
    }
}

/// RMSNorm over the last dimension with a backward pass (for `x` and the weight).
#[derive(Debug, Clone, Copy)]
pub struct RmsNormWithGrad {
    /// Added to the mean square.
    pub eps: f64,
}

fn rms_parts(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let xf = x.to_dtype(if x.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    })?;
    let r = (xf.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let n = xf.broadcast_mul(&r)?;
    Ok((r, n))
}

impl CustomOp2 for RmsNormWithGrad {
    fn name(&self) -> &'static str {
        "rms-norm-with-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if let (CpuStorage::F32(x), CpuStorage::F32(w)) = (s1, s2) {
            let x = contiguous_slice(x, l1, "rms-norm")?;
            let w = contiguous_slice(w, l2, "rms-norm")?;
            if w.len() != *l1.dims().last().unwrap_or(&0) {
                candle_core::bail!("rms-norm: weight {:?} for input {:?}", l2.dims(), l1.dims())
            }
            let y = super::norm_rows::forward(x, w, self.eps as f32);
            return Ok((CpuStorage::F32(y), l1.shape().clone()));
        }
        let x = to_tensor(s1, l1)?;
        let w = to_tensor(s2, l2)?;
        let y = match x.dtype() {
            DType::F32 | DType::BF16 | DType::F16 => {
                candle_nn::ops::rms_norm(&x, &w, self.eps as f32)?
            }
            _ => {
                let (_, n) = rms_parts(&x, self.eps)?;
                n.to_dtype(x.dtype())?.broadcast_mul(&w)?
            }
        };
        to_storage(&y)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // A frozen weight (every norm of the runtime's models) gets no gradient computed.
        if let Some(dx) = frozen_norm_grad(x, w, g, self.eps, Norm::Rms)? {
            return Ok((Some(dx), None));
        }
        let (r, n) = rms_parts(x, self.eps)?;
        let gf = g.to_dtype(n.dtype())?;
        let gw = gf.broadcast_mul(&w.to_dtype(n.dtype())?)?;
        let proj = (&gw * &n)?.mean_keepdim(D::Minus1)?;
        let dx = gw
            .broadcast_sub(&n.broadcast_mul(&proj)?)?
            .broadcast_mul(&r)?;
        let d = n.dim(D::Minus1)?;
        let dw = (gf * n)?.reshape(((), d))?.sum(0)?;
        Ok((Some(dx.to_dtype(x.dtype())?), Some(dw.to_dtype(w.dtype())?)))
    }
}

/// Which norm [`rows_grad`] differentiates.
#[derive(Clone, Copy)]
enum Norm {
    Rms,
    Layer,
}

/// The input gradient of a norm whose weight is frozen, in one pass on slices
/// (`super::norm_rows`): `None` when the weight tracks a gradient or the tensors are not CPU
/// f32/f64 of one dtype (the caller takes the composite form).
fn frozen_norm_grad(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    eps: f64,
    norm: Norm,
) -> Result<Option<Tensor>> {
    let direct = x.device().is_cpu()
        && !w.track_op()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && g.dtype() == x.dtype();
    if !direct {
        return Ok(None);
    }
    let (x, w, g) = (x.contiguous()?, w.contiguous()?, g.contiguous()?);
    Ok(Some(match x.dtype() {
        DType::F32 => rows_grad::<f32>(&x, &w, &g, eps, norm)?,
        _ => rows_grad::<f64>(&x, &w, &g, eps, norm)?,
    }))
}

/// [`frozen_norm_grad`] for one element type.
fn rows_grad<T: super::norm_rows::Real>(
    x: &Tensor,
    w: &Tensor,
    g: &Tensor,
    eps: f64,
    norm: Norm,
) -> Result<Tensor> {
    use super::with_cpu_slice as slice;
    let dx = slice::<T, _>(x, "norm", |xs| {
        slice::<T, _>(w, "norm", |ws| {
            slice::<T, _>(g, "norm", |gs| {
                if gs.len() != xs.len() || ws.is_empty() || xs.len() % ws.len() != 0 {
                    candle_core::bail!("norm: gradient or weight of the wrong size")
                }
                Ok(match norm {
                    Norm::Rms => super::norm_rows::input_grad(xs, ws, gs, eps),
                    Norm::Layer => super::norm_rows::ln_input_grad(xs, ws, gs, eps),
                })
            })
        })
    })?;
    Tensor::from_vec(dx, x.shape(), x.device())
}

/// LayerNorm over the last dimension with a backward pass (for `x`, weight and bias).
#[derive(Debug, Clone, Copy)]
pub struct LayerNormWithGrad {
    /// Added to the variance.
    pub eps: f64,
}

fn ln_parts(x: &Tensor, eps: f64) -> Result<(Tensor, Tensor)> {
    let xf = x.to_dtype(if x.dtype() == DType::F64 {
        DType::F64
    } else {
        DType::F32
    })?;
    let centered = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
    let r = (centered.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let n = centered.broadcast_mul(&r)?;
    Ok((r, n))
}

impl candle_core::CustomOp3 for LayerNormWithGrad {
    fn name(&self) -> &'static str {
        "layer-norm-with-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if let (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) = (s1, s2, s3) {
            let x = contiguous_slice(x, l1, "layer-norm")?;
            let w = contiguous_slice(w, l2, "layer-norm")?;
            let b = contiguous_slice(b, l3, "layer-norm")?;
            let d = *l1.dims().last().unwrap_or(&0);
            if w.len() != d || b.len() != d {
                candle_core::bail!(
                    "layer-norm: weight {:?} for input {:?}",
                    l2.dims(),
                    l1.dims()
                )
            }
            let y = super::norm_rows::ln_forward(x, w, b, self.eps as f32);
            return Ok((CpuStorage::F32(y), l1.shape().clone()));
        }
        let x = to_tensor(s1, l1)?;
        let w = to_tensor(s2, l2)?;
        let b = to_tensor(s3, l3)?;
        let y = match x.dtype() {
            DType::F32 | DType::BF16 | DType::F16 => {
                candle_nn::ops::layer_norm(&x, &w, &b, self.eps as f32)?
            }
            _ => {
                let (_, n) = ln_parts(&x, self.eps)?;
                n.to_dtype(x.dtype())?
                    .broadcast_mul(&w)?
                    .broadcast_add(&b)?
            }
        };
        to_storage(&y)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Frozen weight and bias (every layer norm of the runtime's models): one direct pass.
        if !b.track_op() {
            if let Some(dx) = frozen_norm_grad(x, w, g, self.eps, Norm::Layer)? {
                return Ok((Some(dx), None, None));
            }
        }
        let (r, n) = ln_parts(x, self.eps)?;
        let gf = g.to_dtype(n.dtype())?;
        let gw = gf.broadcast_mul(&w.to_dtype(n.dtype())?)?;
        let mean_gw = gw.mean_keepdim(D::Minus1)?;
        let proj = (&gw * &n)?.mean_keepdim(D::Minus1)?;
        let dx = gw
            .broadcast_sub(&mean_gw)?
            .broadcast_sub(&n.broadcast_mul(&proj)?)?
            .broadcast_mul(&r)?;
        let d = n.dim(D::Minus1)?;
        // Frozen weights and biases (every layer norm of the runtime's models) get none.
        let dw = match w.track_op() {
            true => Some((&gf * n)?.reshape(((), d))?.sum(0)?.to_dtype(w.dtype())?),
            false => None,
        };
        let db = match b.track_op() {
            true => Some(gf.reshape(((), d))?.sum(0)?.to_dtype(b.dtype())?),
            false => None,
        };
        Ok((Some(dx.to_dtype(x.dtype())?), dw, db))
    }
}

/// Rotate-half rotary embedding with a backward pass. Inputs: `x: [b, h, s, d]`,
/// `cos`, `sin`: `[b, s, d/2]`.
#[derive(Debug, Clone, Copy)]
pub struct RopeWithGrad;

impl candle_core::CustomOp3 for RopeWithGrad {
    fn name(&self) -> &'static str {
        "rope-with-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = candle_nn::rotary_emb::rope(
            &to_tensor(s1, l1)?,
            &to_tensor(s2, l2)?,
            &to_tensor(s3, l3)?,
        )?;
        to_storage(&y)
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dx = candle_nn::rotary_emb::rope(&g.contiguous()?, cos, &sin.neg()?.contiguous()?)?;
        Ok((Some(dx), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::check_grad;
    use crate::runtime::ops::norm::{layer_norm_composite, rms_norm_composite};
    use crate::runtime::ops::rope::{apply_rotary_composite, RopeScaling, Rotary};
    use crate::runtime::ops::softmax::softmax_composite;

    #[test]
    fn fused_softmax_equals_composite_and_has_the_right_gradient() -> Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 4, 9), &Device::Cpu)?;
        let a = x.apply_op1(SoftmaxWithGrad)?;
        let b = softmax_composite(&x)?;
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        check_grad(&[2, 3, 7], |x| x.apply_op1(SoftmaxWithGrad))
    }

    #[test]
    fn fused_rms_norm_equals_composite_and_has_the_right_gradients() -> Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 4, 16), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, 16, &Device::Cpu)?;
        let a = x.apply_op2(&w, RmsNormWithGrad { eps: 1e-6 })?;
        let b = rms_norm_composite(&x, &w, 1e-6)?;
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let w = Tensor::randn(0f64, 1.0, 7, &Device::Cpu)?;
        check_grad(&[2, 3, 7], |x| {
            x.apply_op2(&w, RmsNormWithGrad { eps: 1e-6 })
        })?;
        let x = Tensor::randn(0f64, 1.0, (2, 3, 7), &Device::Cpu)?;
        check_grad(&[7], |w| x.apply_op2(w, RmsNormWithGrad { eps: 1e-6 }))
    }

    #[test]
    fn fused_layer_norm_equals_composite_and_has_the_right_gradients() -> Result<()> {
        let x = Tensor::randn(0f32, 2.0, (3, 4, 16), &Device::Cpu)?;
        let w = Tensor::randn(0f32, 1.0, 16, &Device::Cpu)?;
        let b = Tensor::randn(0f32, 1.0, 16, &Device::Cpu)?;
        let a = x.apply_op3(&w, &b, LayerNormWithGrad { eps: 1e-5 })?;
        let c = layer_norm_composite(&x, &w, Some(&b), 1e-5)?;
        assert!((a - c)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-5);
        let w = Tensor::randn(0f64, 1.0, 7, &Device::Cpu)?;
        let b = Tensor::randn(0f64, 1.0, 7, &Device::Cpu)?;
        check_grad(&[2, 3, 7], |x| {
            x.apply_op3(&w, &b, LayerNormWithGrad { eps: 1e-5 })
        })?;
        let x = Tensor::randn(0f64, 1.0, (2, 3, 7), &Device::Cpu)?;
        check_grad(&[7], |w| {
            x.apply_op3(w, &b, LayerNormWithGrad { eps: 1e-5 })
        })?;
        check_grad(&[7], |b| {
            x.apply_op3(&w, b, LayerNormWithGrad { eps: 1e-5 })
        })
    }

    #[test]
    fn fused_rope_equals_composite_and_has_the_right_gradient() -> Result<()> {
        let rot = Rotary::new(8, 10000.0, &RopeScaling::None);
        let pos = Tensor::new(&[[3u32, 4, 5], [0, 1, 2]], &Device::Cpu)?;
        let (cos, sin) = rot.cos_sin(&pos, DType::F64)?;
        let (ch, sh) = rot.cos_sin_half(&pos, DType::F64)?;
        let x = Tensor::randn(0f64, 1.0, (2, 2, 3, 8), &Device::Cpu)?;
        let a = x.apply_op3(&ch, &sh, RopeWithGrad)?;
        let b = apply_rotary_composite(&x, &cos, &sin)?;
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
        check_grad(&[2, 2, 3, 8], |x| x.apply_op3(&ch, &sh, RopeWithGrad))
    }
}
