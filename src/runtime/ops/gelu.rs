//! The exact (erf) GELU, `x Φ(x)`, as one op with a hand-written backward pass: BERT's and
//! bottleneck adapters' `gelu`, and GPT-2 configurations that ask for `gelu`.
//!
//! candle's `gelu_erf` has a fused forward but differentiates through about a dozen elementwise
//! ops (square, negate, scale, exp, erf again, sums and products), each a full
//! `[tokens, intermediate]` tensor. This op makes one pass each way:
//! - forward: `y = x Φ(x)`, `Φ(x) = (1 + erf(x / √2)) / 2`, the same expression as candle's
//!   forward; in f64 with the same `erf` (libm's), so the same bits; in f32 with the vectorised
//!   [`verf::erf`] (libm's algorithm with branch-free ranges and exponentials: it differs from
//!   libm's `erff` in the last bit or two, and is several times faster);
//! - backward: `dx = grad (Φ(x) + x φ(x))`, `φ(x) = exp(-x² / 2) / √(2π)`.
//!
//! The row kernels also serve the feed-forward block op ([`super::lora_mlp`]), which keeps
//! `Φ(x)` from its forward pass ([`forward_keep`]) so that its backward pass reads it instead of
//! evaluating `erf` again ([`backward_from_cdf`]; the same bits, tested).
//!
//! CPU, f32 and f64, contiguous input; [`gelu_erf`] falls back to candle's op for anything else.
//! Must compute what candle's op computes (tests compare both, and the gradient with finite
//! differences).

use super::{contiguous_slice, verf};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

/// Elements per parallel chunk.
const CHUNK: usize = 1 << 14;

/// The forward op; use it through [`gelu_erf`].
#[derive(Debug, Clone, Copy)]
struct GeluErf;

/// The backward op: `(grad, x)` to `dx`.
#[derive(Debug, Clone, Copy)]
struct GeluErfBackward;

/// The element types of the op: one chunk of the forward and backward passes.
pub(super) trait Float: Copy + Send + Sync + candle_core::WithDType {
    /// `out[i] = x[i] Φ(x[i])`.
    fn fwd(out: &mut [Self], x: &[Self]);
    /// `out[i] = grad[i] (Φ(x[i]) + x[i] φ(x[i]))`.
    fn bwd(out: &mut [Self], grad: &[Self], x: &[Self]);
    /// `out[i] = x[i] Φ(x[i])` with [`Float::fwd`]'s bits, and `cdf[i] = Φ(x[i])`.
    fn fwd_keep(out: &mut [Self], cdf: &mut [Self], x: &[Self]);
    /// [`Float::bwd`]'s bits with `Φ(x[i])` given.
    fn bwd_from_cdf(out: &mut [Self], grad: &[Self], x: &[Self], cdf: &[Self]);
}

impl Float for f32 {
    fn fwd(out: &mut [f32], x: &[f32]) {
        verf::gelu_forward(out, x)
    }
    fn bwd(out: &mut [f32], grad: &[f32], x: &[f32]) {
        verf::gelu_backward(out, grad, x)
    }
    fn fwd_keep(out: &mut [f32], cdf: &mut [f32], x: &[f32]) {
        verf::gelu_forward_keep(out, cdf, x)
    }
    fn bwd_from_cdf(out: &mut [f32], grad: &[f32], x: &[f32], cdf: &[f32]) {
        verf::gelu_backward_from_cdf(out, grad, x, cdf)
    }
}

impl Float for f64 {
    fn fwd(out: &mut [f64], x: &[f64]) {
        for (o, &x) in out.iter_mut().zip(x) {
            // candle's `GeluErf::f64`.
            *o = cdf_f64(x) * x;
        }
    }
    fn bwd(out: &mut [f64], grad: &[f64], x: &[f64]) {
        for ((o, &g), &x) in out.iter_mut().zip(grad).zip(x) {
            *o = g * (cdf_f64(x) + x * pdf_f64(x));
        }
    }
    fn fwd_keep(out: &mut [f64], cdf: &mut [f64], x: &[f64]) {
        for ((o, c), &x) in out.iter_mut().zip(cdf.iter_mut()).zip(x) {
            *c = cdf_f64(x);
            *o = *c * x;
        }
    }
    fn bwd_from_cdf(out: &mut [f64], grad: &[f64], x: &[f64], cdf: &[f64]) {
        for (((o, &g), &x), &c) in out.iter_mut().zip(grad).zip(x).zip(cdf) {
            *o = g * (c + x * pdf_f64(x));
        }
    }
}

/// `Φ(x)` in f64, as candle's `GeluErf::f64` computes it before multiplying by `x`.
fn cdf_f64(x: f64) -> f64 {
    (libm::erf(x * std::f64::consts::FRAC_1_SQRT_2) + 1.) * 0.5
}

/// `φ(x)` in f64.
fn pdf_f64(x: f64) -> f64 {
    use std::f64::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI};
    (-0.5 * x * x).exp() * (0.5 * FRAC_2_SQRT_PI) * FRAC_1_SQRT_2
}

/// `x Φ(x)`, in parallel chunks.
pub(super) fn forward<T: Float>(x: &[T]) -> Vec<T> {
    // SAFETY: the chunks below cover `out` and `fwd` writes each value of its chunk.
    let mut out = unsafe { super::uninit::<T>(x.len()) };
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| T::fwd(o, x));
    out
}

/// `(x Φ(x), Φ(x))`, in parallel chunks: [`forward`]'s output and the `Φ` that
/// [`backward_from_cdf`] and [`times`] read back.
pub(super) fn forward_keep<T: Float>(x: &[T]) -> (Vec<T>, Vec<T>) {
    // SAFETY: the chunks below cover both outputs and `fwd_keep` writes each value of its chunk.
    // `Φ` is kept and `out` freed after the next product: `out` is allocated last, above `Φ`.
    let mut cdf = unsafe { super::uninit::<T>(x.len()) };
    let mut out = unsafe { super::uninit::<T>(x.len()) };
    out.par_chunks_mut(CHUNK)
        .zip(cdf.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(o, (c, x))| T::fwd_keep(o, c, x));
    (out, cdf)
}

/// `cdf x`: [`forward`]'s output again, bit for bit, from the `Φ` of [`forward_keep`], in
/// parallel chunks.
pub(super) fn times<T: Float>(cdf: &[T], x: &[T]) -> Vec<T> {
    // SAFETY: the chunks below cover `out` and `times` writes each value of its chunk.
    let mut out = unsafe { super::uninit::<T>(x.len().min(cdf.len())) };
    out.par_chunks_mut(CHUNK)
        .zip(cdf.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(o, (c, x))| {
            for ((o, &c), &x) in o.iter_mut().zip(c).zip(x) {
                *o = c * x;
            }
        });
    out
}

/// [`backward`] with `Φ(x)` given (from [`forward_keep`]): the same values without `erf`.
pub(super) fn backward_from_cdf<T: Float>(grad: &[T], x: &[T], cdf: &[T]) -> Vec<T> {
    let n = x.len().min(grad.len()).min(cdf.len());
    // SAFETY: the chunks below cover `out` and `bwd_from_cdf` writes each value of its chunk.
    let mut out = unsafe { super::uninit::<T>(n) };
    out.par_chunks_mut(CHUNK)
        .zip(
            grad.par_chunks(CHUNK)
                .zip(x.par_chunks(CHUNK).zip(cdf.par_chunks(CHUNK))),
        )
        .for_each(|(o, (grad, (x, c)))| T::bwd_from_cdf(o, grad, x, c));
    out
}

/// `grad (Φ(x) + x φ(x))`, in parallel chunks.
pub(super) fn backward<T: Float>(grad: &[T], x: &[T]) -> Vec<T> {
    // SAFETY: the chunks below cover `out` and `bwd` writes each value of its chunk.
    let mut out = unsafe { super::uninit::<T>(x.len().min(grad.len())) };
    out.par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK).zip(x.par_chunks(CHUNK)))
        .for_each(|(o, (grad, x))| T::bwd(o, grad, x));
    out
}

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(forward(contiguous_slice(x, l, "gelu")?)),
            CpuStorage::F64(x) => CpuStorage::F64(forward(contiguous_slice(x, l, "gelu")?)),
            _ => candle_core::bail!("gelu: f32 or f64 input only"),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = grad
            .contiguous()?
            .apply_op2_no_bwd(&x.contiguous()?, &GeluErfBackward)?;
        Ok(Some(dx))
    }
}

impl CustomOp2 for GeluErfBackward {
    fn name(&self) -> &'static str {
        "gelu-erf-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "gelu backward: grad {:?} and x {:?} differ",
                l1.dims(),
                l2.dims()
            )
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(g), CpuStorage::F32(x)) => CpuStorage::F32(backward(
                contiguous_slice(g, l1, "gelu")?,
                contiguous_slice(x, l2, "gelu")?,
            )),
            (CpuStorage::F64(g), CpuStorage::F64(x)) => CpuStorage::F64(backward(
                contiguous_slice(g, l1, "gelu")?,
                contiguous_slice(x, l2, "gelu")?,
            )),
            _ => candle_core::bail!("gelu backward: f32 or f64 inputs of one dtype only"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// `x Φ(x)`, differentiable: the fused op for f32/f64 CPU tensors, candle's `gelu_erf`
/// otherwise.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gradcheck::{check_grad, max_diff};
    use candle_core::{Device, Var};

    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        check_grad(&[4, 6], |x| gelu_erf(&(x * 3.0)?))
    }

    #[test]
    fn forward_equals_candle_within_f32_rounding_and_backward_within_1e6() -> Result<()> {
        let dev = Device::Cpu;
        // More elements than one parallel chunk, values far into both tails.
        let shape = (3, 7, 2000);
        let x = Var::from_tensor(&(Tensor::randn(0f32, 1.0, shape, &dev)? * 5.0)?)?;
        let probe = Tensor::randn(0f32, 1.0, shape, &dev)?;
        let fused = gelu_erf(x.as_tensor())?;
        let plain = x.as_tensor().gelu_erf()?;
        // A last-bit difference of `erf` times |x| (up to about 25 here).
        let d = max_diff(&fused, &plain)?;
        assert!(d <= 1e-5, "forward differs by {d}");
        let x64 = x.as_tensor().to_dtype(DType::F64)?;
        assert_eq!(max_diff(&gelu_erf(&x64)?, &x64.gelu_erf()?)?, 0.0);
        let gf = (&fused * &probe)?.sum_all()?.backward()?;
        let gp = (&plain * &probe)?.sum_all()?.backward()?;
        let (a, b) = match (gf.get(x.as_tensor()), gp.get(x.as_tensor())) {
            (Some(a), Some(b)) => (a, b),
            _ => candle_core::bail!("a gradient is missing"),
        };
        // candle's backward rounds 1/sqrt(2 pi) to 0.398942 (2.8e-7 relative).
        let d = max_diff(a, b)?;
        assert!(d < 1e-6, "gradient differs by {d}");
        Ok(())
    }

    #[test]
    fn other_dtypes_take_candles_op() -> Result<()> {
        let x = Tensor::randn(0f32, 1.0, (2, 4), &Device::Cpu)?.to_dtype(DType::BF16)?;
        let a = gelu_erf(&x)?.to_dtype(DType::F32)?;
        let b = x.gelu_erf()?.to_dtype(DType::F32)?;
        assert_eq!(max_diff(&a, &b)?, 0.0);
        Ok(())
    }
}
