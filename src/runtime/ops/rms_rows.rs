//! RMSNorm's forward and input gradient row by row on CPU slices, rows in parallel on rayon's
//! threads, for [`RmsNormWithGrad`](super::fused::RmsNormWithGrad): no copies into and out of
//! candle tensors and one pass per row each way (the composite backward made about eight
//! single-threaded passes).
//! - forward, as candle's `rms_norm` kernel: `m = sqrt(sum(x^2) / d + eps)`, `y = x / m * w`;
//! - backward, with `r = 1 / sqrt(mean(x^2) + eps)`, `n = x r`:
//!   `dx = r (g w - n mean(g w n))`.
//!
//! Must compute what the composite forms compute (tests compare both).

use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 8;

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

/// `x / sqrt(mean(x^2) + eps) * w` per row of width `w.len()` (f32, candle's kernel's order).
pub(crate) fn forward(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let d = w.len().max(1);
    let mut out = vec![0f32; x.len()];
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

/// `dx` for the upstream gradient `g`, per row of width `w.len()`.
pub(crate) fn input_grad<T: Real>(x: &[T], w: &[T], g: &[T], eps: f64) -> Vec<T> {
    let d = w.len().max(1);
    let zero = T::from_f64(0.0);
    let (dn, eps) = (T::from_f64(d as f64), T::from_f64(eps));
    let mut out = vec![zero; x.len()];
    out.par_chunks_mut(d * ROWS)
        .zip(x.par_chunks(d * ROWS).zip(g.par_chunks(d * ROWS)))
        .for_each(|(o, (x, g))| {
            for ((o, x), g) in o.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                let mut sum2 = zero;
                for &v in x {
                    sum2 += v * v;
                }
                let r = T::from_f64(1.0) / (sum2 / dn + eps).sqrt();
                let mut proj = zero;
                for ((&v, &gv), &a) in x.iter().zip(g).zip(w) {
                    proj += gv * a * (v * r);
                }
                proj /= dn;
                for (((o, &v), &gv), &a) in o.iter_mut().zip(x).zip(g).zip(w) {
                    *o = r * (gv * a - v * r * proj);
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
}
