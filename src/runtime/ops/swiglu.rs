//! `silu(gate) * up`, the SwiGLU product of llama-family feed-forward blocks, as one op with a
//! hand-written backward pass.
//!
//! The composite form (`gate.silu()? * up`) makes two `[tokens, intermediate]` tensors forward
//! and about six backward (candle differentiates `silu` through sigmoid, products and sums).
//! This op makes one forward and one backward pass over the elements:
//! - forward: `y = g s u` with `s = sigmoid(g)`;
//! - backward: `dg = grad u s (1 + g (1 - s))`, `du = grad g s`.
//!
//! CPU, f32 and f64, same-shape contiguous inputs; [`swiglu`] falls back to the composite form
//! for anything else. f32 runs on the vectorised kernels of [`vexp`] (its `exp` is within 2 ulp
//! of libm's); f64 uses libm. Must compute what the composite form computes (tests compare both
//! within 1e-5, and the gradient with finite differences).

use super::{contiguous_slice, vexp};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The forward op; use it through [`swiglu`].
#[derive(Debug, Clone, Copy)]
struct SwiGlu;

/// The backward op: `(grad, gate, up)` to `[2, ..]` holding `dg` then `du`.
#[derive(Debug, Clone, Copy)]
struct SwiGluBackward;

/// The element types the op computes in (f32 on the vectorised kernels, f64 on libm).
pub(super) trait Float: Copy + Send + Sync + candle_core::WithDType {
    /// `out[i] = silu(g[i]) * u[i]`.
    fn fwd(out: &mut [Self], g: &[Self], u: &[Self]);
    /// `dg`, `du` from `grad`, `g`, `u`.
    fn bwd(dg: &mut [Self], du: &mut [Self], grad: &[Self], g: &[Self], u: &[Self]);
}

impl Float for f32 {
    fn fwd(out: &mut [f32], g: &[f32], u: &[f32]) {
        vexp::swiglu_forward(out, g, u)
    }
    fn bwd(dg: &mut [f32], du: &mut [f32], grad: &[f32], g: &[f32], u: &[f32]) {
        vexp::swiglu_backward(dg, du, grad, g, u)
    }
}

impl Float for f64 {
    fn fwd(out: &mut [f64], g: &[f64], u: &[f64]) {
        for ((o, &g), &u) in out.iter_mut().zip(g).zip(u) {
            // candle's `silu` is `g / (1 + exp(-g))`.
            *o = (g / (1.0 + (-g).exp())) * u;
        }
    }
    fn bwd(dg: &mut [f64], du: &mut [f64], grad: &[f64], g: &[f64], u: &[f64]) {
        for i in 0..dg.len() {
            let s = 1.0 / (1.0 + (-g[i]).exp());
            dg[i] = grad[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
            du[i] = grad[i] * g[i] * s;
        }
    }
}

fn same_shape(a: &Layout, b: &Layout) -> Result<()> {
    if a.shape() != b.shape() {
        candle_core::bail!("swiglu: gate {:?} and up {:?} differ", a.dims(), b.dims())
    }
    Ok(())
}

/// `silu(g) * u`, in parallel chunks.
pub(super) fn forward<T: Float>(g: &[T], u: &[T]) -> Vec<T> {
    // SAFETY: the chunks below cover `out` and `fwd` writes each value of its chunk.
    let mut out = unsafe { super::uninit::<T>(g.len().min(u.len())) };
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(o, (g, u))| T::fwd(o, g, u));
    out
}

/// `dg` then `du` in one buffer of twice `g`'s length, in parallel chunks.
pub(super) fn backward<T: Float>(grad: &[T], g: &[T], u: &[T]) -> Vec<T> {
    let n = g.len().min(u.len()).min(grad.len());
    // SAFETY: the chunks below cover both halves and `bwd` writes each value of its chunks.
    let mut out = unsafe { super::uninit::<T>(2 * n) };
    let (dg, du) = out.split_at_mut(n);
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(((dg, du), grad), (g, u))| T::bwd(dg, du, grad, g, u));
    out
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(u)) => CpuStorage::F32(forward(
                contiguous_slice(g, l1, "swiglu")?,
                contiguous_slice(u, l2, "swiglu")?,
            )),
            (CpuStorage::F64(g), CpuStorage::F64(u)) => CpuStorage::F64(forward(
                contiguous_slice(g, l1, "swiglu")?,
                contiguous_slice(u, l2, "swiglu")?,
            )),
            _ => candle_core::bail!("swiglu: f32 or f64 inputs of one dtype only"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = grad.contiguous()?.apply_op3_no_bwd(
            &g.contiguous()?,
            &u.contiguous()?,
            &SwiGluBackward,
        )?;
        Ok((Some(both.get(0)?), Some(both.get(1)?)))
    }
}

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "swiglu-backward"
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
        same_shape(l1, l2)?;
        same_shape(l2, l3)?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(d), CpuStorage::F32(g), CpuStorage::F32(u)) => {
                CpuStorage::F32(backward(
                    contiguous_slice(d, l1, "swiglu")?,
                    contiguous_slice(g, l2, "swiglu")?,
                    contiguous_slice(u, l3, "swiglu")?,
                ))
            }
            (CpuStorage::F64(d), CpuStorage::F64(g), CpuStorage::F64(u)) => {
                CpuStorage::F64(backward(
                    contiguous_slice(d, l1, "swiglu")?,
                    contiguous_slice(g, l2, "swiglu")?,
                    contiguous_slice(u, l3, "swiglu")?,
                ))
            }
            _ => candle_core::bail!("swiglu backward: f32 or f64 inputs of one dtype only"),
        };
        let mut dims = vec![2];
        dims.extend_from_slice(l1.dims());
        Ok((out, Shape::from(dims)))
    }
}

/// `silu(gate) * up`, differentiable in both: the fused op for same-shape f32/f64 CPU tensors,
/// the composite form otherwise.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    let fusable = gate.device().is_cpu()
        && gate.shape() == up.shape()
        && gate.dtype() == up.dtype()
        && matches!(gate.dtype(), DType::F32 | DType::F64);
    if fusable {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        swiglu_composite(gate, up)
    }
}

/// The composite form from candle's primitives (the reference the fused op must equal).
pub fn swiglu_composite(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.silu()? * up
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::{check_grad, max_diff};
    use candle_core::{Device, Var};

    #[test]
    fn gradient_matches_finite_differences_for_gate_and_up() -> Result<()> {
        let dev = Device::Cpu;
        let u = (Tensor::randn(0f64, 1.0, (3, 5), &dev)? * 3.0)?;
        check_grad(&[3, 5], |g| swiglu(&(g * 3.0)?, &u))?;
        let g = (Tensor::randn(0f64, 1.0, (3, 5), &dev)? * 3.0)?;
        check_grad(&[3, 5], |u| swiglu(&g, u))
    }

    #[test]
    fn forward_and_backward_equal_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        // More elements than one parallel chunk, values far into both tails of the sigmoid.
        let shape = (3, 7, 2000);
        let g = Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev)? * 6.0)?)?;
        let u = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &dev)?)?;
        let probe = Tensor::randn(0f32, 1.0, shape, &dev)?;
        let fused = swiglu(g.as_tensor(), u.as_tensor())?;
        let plain = swiglu_composite(g.as_tensor(), u.as_tensor())?;
        assert!(max_diff(&fused, &plain)? < 1e-5);
        let gf = (&fused * &probe)?.sum_all()?.backward()?;
        let gp = (&plain * &probe)?.sum_all()?.backward()?;
        for v in [&g, &u] {
            let (a, b) = match (gf.get(v.as_tensor()), gp.get(v.as_tensor())) {
                (Some(a), Some(b)) => (a, b),
                _ => candle_core::bail!("a gradient is missing"),
            };
            let d = max_diff(a, b)?;
            assert!(d < 1e-5, "gradient differs by {d}");
        }
        Ok(())
    }

    #[test]
    fn other_dtypes_and_shapes_take_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        let g = Tensor::randn(0f32, 1.0, (2, 4), &dev)?.to_dtype(DType::BF16)?;
        let u = Tensor::randn(0f32, 1.0, (2, 4), &dev)?.to_dtype(DType::BF16)?;
        let a = swiglu(&g, &u)?.to_dtype(DType::F32)?;
        let b = swiglu_composite(&g, &u)?.to_dtype(DType::F32)?;
        assert_eq!(max_diff(&a, &b)?, 0.0);
        let u1 = Tensor::randn(0f32, 1.0, (1, 4), &dev)?;
        assert!(swiglu(&g.to_dtype(DType::F32)?, &u1).is_err());
        Ok(())
    }
}
