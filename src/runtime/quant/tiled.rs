//! The frozen matmul over a weight that is dequantized tile by tile on the fly.
//!
//! `y = x W^T` where `W: [out, in]` exists only in packed form. The forward dequantizes row tiles
//! of `W` into a per-thread f32 scratch buffer (at most `tile_bytes`, so never a whole model and at
//! most one layer) and multiplies with candle's f32 GEMM straight from that buffer; the backward
//! returns `dL/dx = g W`, dequantizing the same tiles again, and never a gradient for `W`. The
//! scratch is reused between calls (its contents are overwritten each time), never read back.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Tensor};
use std::cell::RefCell;
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
/// returns the input dtype) and any device (on CPU the tiled kernel; on Metal the weight is
/// dequantized to the device for the duration of the call; CUDA inputs never get here: the
/// weights dequantize on the GPU, [`super::cuda`]).
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

thread_local! {
    /// One reusable dequantization buffer per calling thread (at most `tile_bytes`): a fresh
    /// 16 MiB allocation per layer call costs more in page faults than the dequantization itself.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Dequantizes rows `r0 .. r0 + rows` into the thread's scratch buffer and hands it to `f` as
/// CPU storage with a contiguous `[rows, in]` layout; the buffer goes back to the scratch after.
fn with_tile<R>(
    w: &dyn DequantRows,
    r0: usize,
    rows: usize,
    keep_bytes: usize,
    f: impl FnOnce(&CpuStorage, &Layout) -> Result<R>,
) -> Result<R> {
    let inp = w.dims().1;
    let n = rows * inp;
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    if buf.len() < n {
        buf.resize(n, 0.0);
    } else {
        buf.truncate(n);
    }
    w.dequant_rows(r0, &mut buf);
    let storage = CpuStorage::F32(buf);
    let result = f(&storage, &Layout::contiguous((rows, inp)));
    if let CpuStorage::F32(buf) = storage {
        if 4 * buf.capacity() <= keep_bytes {
            SCRATCH.with(|s| *s.borrow_mut() = buf);
        }
    }
    result
}

/// Calls `f(r0, rows, tile)` for each row tile of `w` in order, `tile` the rows `r0 .. r0 + rows`
/// dequantized into the thread's scratch buffer as f32 storage of `[rows, in]` (at most
/// `tile_bytes`). Fused ops multiply by the tiles as they come; nothing dense outlives the call.
pub fn for_each_tile(
    w: &dyn DequantRows,
    tile_bytes: usize,
    mut f: impl FnMut(usize, usize, &CpuStorage) -> Result<()>,
) -> Result<()> {
    let (out, inp) = w.dims();
    let rows = tile_rows(out, inp, tile_bytes);
    for r0 in (0..out).step_by(rows) {
        let n = rows.min(out - r0);
        with_tile(w, r0, n, tile_bytes, |tile, _| f(r0, n, tile))?;
    }
    Ok(())
}

fn f32_vec(s: CpuStorage) -> Result<Vec<f32>> {
    match s {
        CpuStorage::F32(v) => Ok(v),
        _ => candle_core::bail!("frozen matmul: expected f32 storage"),
    }
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
        if k != inp || !l.is_contiguous() || !matches!(s, CpuStorage::F32(_)) {
            candle_core::bail!(
                "frozen matmul: input must be contiguous f32 with {inp} features, got {dims:?}"
            );
        }
        let m = l.shape().elem_count() / k.max(1);
        let x_l = Layout::contiguous_with_offset((m, k), l.start_offset());
        let rows = tile_rows(out, inp, self.tile_bytes);
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = out;
        }
        // y[:, r0..r0+n] = x @ tile^T, one GEMM per tile (one in all for layers <= tile_bytes).
        let mut y = if rows >= out {
            None
        } else {
            Some(vec![0f32; m * out])
        };
        for r0 in (0..out).step_by(rows) {
            let n = rows.min(out - r0);
            let part = with_tile(self.w.as_ref(), r0, n, self.tile_bytes, |ws, wl| {
                s.matmul(ws, (1, m, n, k), &x_l, &wl.transpose(0, 1)?)
            })?;
            match y.as_mut() {
                None => return Ok((part, Shape::from(shape))),
                Some(y) => {
                    let part = f32_vec(part)?;
                    for (dst, src) in y.chunks_exact_mut(out).zip(part.chunks_exact(n)) {
                        dst[r0..r0 + n].copy_from_slice(src);
                    }
                }
            }
        }
        Ok((CpuStorage::F32(y.unwrap_or_default()), Shape::from(shape)))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, g: &Tensor) -> Result<Option<Tensor>> {
        let g = g
            .to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .contiguous()?;
        let op = InputGradient {
            w: self.w.clone(),
            tile_bytes: self.tile_bytes,
        };
        let dx = g.apply_op1_no_bwd(&op)?;
        Ok(Some(dx.reshape(x.shape())?.to_device(x.device())?))
    }
}

/// `dL/dx = g @ W` for `g: [.., out]`, tile by tile, without recording a graph.
struct InputGradient {
    w: Arc<dyn DequantRows>,
    tile_bytes: usize,
}

impl CustomOp1 for InputGradient {
    fn name(&self) -> &'static str {
        "peftc-frozen-input-gradient"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (out, inp) = self.w.dims();
        let dims = l.dims();
        if dims.last().copied() != Some(out) || !l.is_contiguous() {
            candle_core::bail!("frozen matmul backward: gradient {dims:?} does not end in {out}");
        }
        let m = l.shape().elem_count() / out.max(1);
        let g_l = Layout::contiguous_with_offset((m, out), l.start_offset());
        let rows = tile_rows(out, inp, self.tile_bytes);
        let mut shape = dims.to_vec();
        if let Some(last) = shape.last_mut() {
            *last = inp;
        }
        let mut dx: Option<Vec<f32>> = None;
        for r0 in (0..out).step_by(rows) {
            let n = rows.min(out - r0);
            let lhs = g_l.narrow(1, r0, n)?;
            let part = with_tile(self.w.as_ref(), r0, n, self.tile_bytes, |ws, wl| {
                s.matmul(ws, (1, m, inp, n), &lhs, wl)
            })?;
            let part = f32_vec(part)?;
            dx = Some(match dx {
                None => part,
                Some(mut acc) => {
                    acc.iter_mut().zip(&part).for_each(|(a, p)| *a += p);
                    acc
                }
            });
        }
        Ok((
            CpuStorage::F32(dx.unwrap_or_else(|| vec![0f32; m * inp])),
            Shape::from(shape),
        ))
    }
}
