//! RMSNorm's and LayerNorm's forward and input gradient row by row on CPU slices, rows in
//! parallel on rayon's threads, for [`RmsNormWithGrad`](super::fused::RmsNormWithGrad) and
//! [`LayerNormWithGrad`](super::fused::LayerNormWithGrad): no copies into and out of candle
//! tensors and one pass per row each way (the composite backwards made about eight and ten
//! single-threaded passes).
//! - RMSNorm forward, as candle's `rms_norm` kernel: `m = sqrt(sum(x^2) / d + eps)`,
//!   `y = x / m * w`; backward, with `r = 1 / sqrt(mean(x^2) + eps)`, `n = x r`:
//!   `dx = r (g w - n mean(g w n))`;
//! - LayerNorm forward, as candle's `layer_norm` kernel: `mean = sum(x) / d`,
//!   `var = sum(x^2) / d - mean^2`, `y = (x - mean) / sqrt(var + eps) * w + b`; backward, with
//!   `c = x - mean(x)`, `r = 1 / sqrt(mean(c^2) + eps)`, `n = c r`:
//!   `dx = r (g w - mean(g w) - n mean(g w n))`.
//!
//! The backward passes sum in lanes ([`LANES`]): a LoRA step of the 512 x 8 tiny llama spent
//! about 1% of its CPU time in their sequential sums (0.58 -> 0.19 ms per 1024 x 512 RMSNorm
//! backward on 2 threads, a throwaway timing). Must compute what the composite forms compute (tests compare both).

use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 8;

/// Accumulators of the backward passes' row sums: each sum runs in this many independent
/// lanes, then the lanes in order, so the loops vectorise instead of waiting on one add chain
/// per element (a different order from a sequential sum, no less accurate). The forward
/// passes keep candle's kernels' sequential order.
const LANES: usize = 16;

/// `sum(f(a_i, b_i, c_i))` over three rows of one length, in [`LANES`] accumulators.
#[inline(always)]
fn lane_sum<T: Real>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) -> T {
    let zero = T::from_f64(0.0);
    let n = a.len().min(b.len()).min(c.len());
    let (mut ca, mut cb, mut cc) = (
        a[..n].chunks_exact(LANES),
        b[..n].chunks_exact(LANES),
        c[..n].chunks_exact(LANES),
    );
    let mut acc = [zero; LANES];
    for ((x, y), z) in (&mut ca).zip(&mut cb).zip(&mut cc) {
        for l in 0..LANES {
            acc[l] += f(x[l], y[l], z[l]);
        }
    }
    let mut tail = zero;
    for ((&x, &y), &z) in ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .zip(cc.remainder())
    {
        tail += f(x, y, z);
    }
    let mut sum = zero;
    for v in acc {
        sum += v;
    }
    sum + tail
}

/// The element types of the kernels.
pub(crate) trait Real: candle_core::WithDType {
    fn sqrt(self) -> Self;
}

impl Real for f32 {
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
}

impl Real for f64 {
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
}

/// The output of a per-row pass over `n` values: left as allocated when `covered` (the rows of
/// the weight's width, the last one possibly shorter, cover it and every value is written),
/// zeros otherwise (an empty weight writes nothing).
fn out_buf<T: candle_core::WithDType>(n: usize, covered: bool) -> Vec<T> {
    match covered {
        // SAFETY: the caller's pass writes every value, row by row.
        true => unsafe { super::uninit(n) },
        false => super::zeroed(n),
    }
}

/// `x / sqrt(mean(x^2) + eps) * w` per row of width `w.len()` (f32, candle's kernel's order).
pub(crate) fn forward(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len().max(1);
    let mut out = out_buf(x.len(), !w.is_empty());
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                let sum2 = x.iter().map(|&v| v * v).sum::<f32>();
                let m = (sum2 / d as f32 + eps).sqrt();
                for ((o, &v), &a) in o.iter_mut().zip(x).zip(w) {
                    *o = v / m * a;
                }
            }
        });
    out
}

/// `x r w`, `r = 1 / sqrt(mean(x^2) + eps)`, per row of width `w.len()` (f64, the composite
/// form's order: [`super::fused::RmsNormWithGrad`] computes f64 that way).
pub(crate) fn forward_f64(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let d = w.len().max(1);
    let mut out = out_buf(x.len(), !w.is_empty());
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                let sum2 = x.iter().map(|&v| v * v).sum::<f64>();
                let r = 1.0 / (sum2 / d as f64 + eps).sqrt();
                for ((o, &v), &a) in o.iter_mut().zip(x).zip(w) {
                    *o = v * r * a;
                }
            }
        });
    out
}

/// `dx` for the upstream gradient `g`, per row of width `w.len()`.
pub(crate) fn input_grad<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len().max(1);
    let (dn, eps) = (T::from_f64(d as f64), T::from_f64(eps));
    let mut out = out_buf(x.len(), !w.is_empty() && g.len() == x.len());
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
        .for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                let sum2 = lane_sum(x, x, x, |v, _, _| v * v);
                let r = T::from_f64(1.0) / (sum2 / dn + eps).sqrt();
                let proj = lane_sum(g, w, x, |gv, a, v| gv * a * (v * r)) / dn;
                for (((o, &v), &gv), &a) in o.iter_mut().zip(x).zip(g).zip(w) {
                    *o = r * (gv * a - v * r * proj);
                }
            }
        });
    out
}

/// LayerNorm per row of width `w.len()` (f32, candle's kernel's order).
pub(crate) fn ln_forward(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len().max(1);
    let mut out = out_buf(x.len(), !w.is_empty() && b.len() == w.len());
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS))
        .for_each(|(o, x)| {
            for (o, x) in o.chunks_mut(d).zip(x.chunks(d)) {
                let (mut sum, mut sum2) = (0f32, 0f32);
                for &v in x {
                    sum += v;
                    sum2 += v * v;
                }
                let mean = sum / d as f32;
                let var = sum2 / d as f32 - mean * mean;
                let inv_std = (var + eps).sqrt().recip();
                for ((o, &v), (&a, &bb)) in o.iter_mut().zip(x).zip(w.iter().zip(b)) {
                    *o = (v - mean) * inv_std * a + bb;
                }
            }
        });
    out
}

/// LayerNorm's `dx` for the upstream gradient `g`, per row of width `w.len()`.
pub(crate) fn ln_input_grad<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len().max(1);
    let zero = T::from_f64(0.0);
    let (dn, eps) = (T::from_f64(d as f64), T::from_f64(eps));
    let mut out = out_buf(x.len(), !w.is_empty() && g.len() == x.len());
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
        .for_each(|(o, (x, g))| {
            let mut c = vec![zero; d];
            for ((o, x), g) in o.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                let mean = lane_sum(x, x, x, |v, _, _| v) / dn;
                for (c, &v) in c.iter_mut().zip(x) {
                    *c = v - mean;
                }
                let var = lane_sum(&c, &c, &c, |cv, _, _| cv * cv);
                let r = T::from_f64(1.0) / (var / dn + eps).sqrt();
                let m1 = lane_sum(g, w, &c, |gv, a, _| gv * a) / dn;
                let m2 = lane_sum(g, w, &c, |gv, a, cv| gv * a * (cv * r)) / dn;
                for (((o, &cv), &gv), &a) in o.iter_mut().zip(&c).zip(g).zip(w) {
                    *o = r * (gv * a - m1 - cv * r * m2);
                }
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::norm::{rms_norm, rms_norm_composite};
    use candle_core::{Device, Result, Tensor, Var};

    #[test]
    fn forward_is_candles_kernel_bit_for_bit_and_gradient_is_the_composite() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (3, 37, 24), &dev)?;
        let w = Tensor::randn(0f32, 1.0, 24, &dev)?;
        let ours = rms_norm(&x, &w, 1e-6)?;
        let candle = candle_nn::ops::rms_norm(&x.as_tensor().detach(), &w, 1e-6)?;
        assert_eq!(
            ours.flatten_all()?.to_vec1::<f32>()?,
            candle.flatten_all()?.to_vec1::<f32>()?
        );
        let probe = Tensor::randn(0f32, 1.0, ours.shape(), &dev)?;
        let g1 = (&ours * &probe)?.sum_all()?.backward()?;
        let comp = rms_norm_composite(&x, &w, 1e-6)?;
        let g2 = (&comp * &probe)?.sum_all()?.backward()?;
        let (a, b) = (g1.get(&x).expect("grad"), g2.get(&x).expect("grad"));
        let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        assert_eq!(input_grad::<f64>(&[], &[1.0], &[], 1e-6).len(), 0);
        Ok(())
    }

    #[test]
    fn layer_norm_forward_is_candles_kernel_and_gradient_is_the_composite() -> Result<()> {
        use crate::runtime::ops::norm::{layer_norm, layer_norm_composite};
        let dev = Device::Cpu;
        let x = Var::randn(0f32, 1.0, (3, 37, 24), &dev)?;
        let w = Tensor::randn(0f32, 1.0, 24, &dev)?;
        let b = Tensor::randn(0f32, 1.0, 24, &dev)?;
        let ours = layer_norm(&x, &w, Some(&b), 1e-12)?;
        let candle = candle_nn::ops::layer_norm(&x.as_tensor().detach(), &w, &b, 1e-12)?;
        assert_eq!(
            ours.flatten_all()?.to_vec1::<f32>()?,
            candle.flatten_all()?.to_vec1::<f32>()?
        );
        let probe = Tensor::randn(0f32, 1.0, ours.shape(), &dev)?;
        let g1 = (&ours * &probe)?.sum_all()?.backward()?;
        let comp = layer_norm_composite(&x, &w, Some(&b), 1e-12)?;
        let g2 = (&comp * &probe)?.sum_all()?.backward()?;
        let (a, c) = (g1.get(&x).expect("grad"), g2.get(&x).expect("grad"));
        let diff = (a - c)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        Ok(())
    }
}
