//! The frozen matmul over a weight that is dequantized tile by tile on the fly.
//!
//! `y = x W^T` where `W: [out, in]` exists only in packed form. The forward dequantizes row tiles
//! of `W` into a transient f32 buffer (at most `tile_bytes`, so never a whole model and at most one
//! layer) and multiplies with candle's f32 GEMM; the backward returns `dL/dx = g W`, dequantizing
//! the same tiles again, and never a gradient for `W`. Must not keep dequantized tiles between
//! calls.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use std::sync::Arc;

/// A frozen `[out, in]` weight that can write any range of its rows as f32.
pub trait DequantRows: Send + Sync + std::fmt::Debug {
    /// `(out_features, in_features)`.
    fn dims(&self) -> (usize, usize);
    /// Writes rows `row0 .. row0 + out.len() / in_features` of `W` into `out` (row-major).
    /// Implementations parallelise internally.
    fn dequant_rows(&self, row0: usize, out: &mut [f32]);
}

/// Default upper bound of one transient dequantized tile: 32 MiB of f32 (a 2048x4096 layer in
/// one piece; a 4096x11008 layer in six).
pub const DEFAULT_TILE_BYTES: usize = 32 << 20;

/// Rows per tile for a weight of `in_features` columns under `tile_bytes`.
fn tile_rows(out: usize, inp: usize, tile_bytes: usize) -> usize {
    (tile_bytes / (4 * inp.max(1))).clamp(1, out.max(1))
}

/// Dequantizes rows `r0 .. r0 + rows` of `w` as a `[rows, in]` f32 tensor on the CPU.
pub fn dequant_tile(w: &dyn DequantRows, r0: usize, rows: usize) -> Result<Tensor> {
    let (_, inp) = w.dims();
    let mut buf = vec![0f32; rows * inp];
    w.dequant_rows(r0, &mut buf);
    Tensor::from_vec(buf, (rows, inp), &Device::Cpu)
}

/// The whole weight as a dense `[out, in]` f32 tensor (transient; for merges, tests, export).
pub fn dequant_all(w: &dyn DequantRows) -> Result<Tensor> {
    dequant_tile(w, 0, w.dims().0)
}

/// `x @ W^T` differentiable with respect to `x` only. Accepts any float dtype (computes in f32,
/// returns the input dtype) and any device (on CPU the tiled kernel; elsewhere the weight is
/// dequantized to the device for the duration of the call).
pub fn frozen_forward(w: &Arc<dyn DequantRows>, x: &Tensor, tile_bytes: usize) -> Result<Tensor> {
    let dtype = x.dtype();
    if !x.device().is_cpu() {
        let dense = dequant_all(w.as_ref())?
            .to_device(x.device())?
            .to_dtype(dtype)?;
        return x.broadcast_matmul(&dense.t()?);
    }
    let xf = x.to_dtype(DType::F32)?.contiguous()?;
    let op = TiledFrozenMatmul {
        w: w.clone(),
        tile_bytes,
    };
    xf.apply_op1(op)?.to_dtype(dtype)
}

/// The custom op behind [`frozen_forward`].
struct TiledFrozenMatmul {
    w: Arc<dyn DequantRows>,
    tile_bytes: usize,
}

impl CustomOp1 for TiledFrozenMatmul {
    fn name(&self) -> &'static str {
        "peftc-tiled-frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (out, inp) = self.w.dims();
        let dims = l.dims();
        let k = dims.last().copied().unwrap_or(0);
        if k != inp {
            candle_core::bail!("frozen matmul: input has {k} features, the weight takes {inp}");
        }
        let m = l.shape().elem_count() / k.max(1);
        let xs = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("frozen matmul: input must be contiguous f32"),
        };
        let x = Tensor::from_slice(xs, (m, k), &Device::Cpu)?;
        let rows = tile_rows(out, inp, self.tile_bytes);
        let y = if rows >= out {
            x.matmul(&dequant_all(self.w.as_ref())?.t()?)?
        } else {
            let mut parts = Vec::with_capacity(out.div_ceil(rows));
            for r0 in (0..out).step_by(rows) {
                let n = rows.min(out - r0);
                parts.push(x.matmul(&dequant_tile(self.w.as_ref(), r0, n)?.t()?)?);
            }
            Tensor::cat(&parts, 1)?
        };
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out;
        }
        let y = y.flatten_all()?.to_vec1::<f32>()?;
        Ok((CpuStorage::F32(y), Shape::from(shape)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let (out, inp) = self.w.dims();
        let g2 = g.to_device(&Device::Cpu)?.reshape(((), out))?;
        let rows = tile_rows(out, inp, self.tile_bytes);
        let mut dx: Option<Tensor> = None;
        for r0 in (0..out).step_by(rows) {
            let n = rows.min(out - r0);
            let gt = if n == out {
                g2.clone()
            } else {
                g2.narrow(1, r0, n)?
            };
            let part = gt.matmul(&dequant_tile(self.w.as_ref(), r0, n)?)?;
            dx = Some(match dx {
                None => part,
                Some(acc) => (acc + part)?,
            });
        }
        let dx = match dx {
            Some(d) => d,
            None => Tensor::zeros(x.shape(), DType::F32, &Device::Cpu)?,
        };
        Ok(Some(dx.reshape(x.shape())?.to_device(x.device())?))
    }
}
