//! A LoRA linear layer over a frozen weight as one op with a hand-written backward pass:
//! `y = x W^T + b + (x_d (s A)^T) B^T`, `x_d = dropout(x)` (mask drawn by the caller).
//!
//! The composite form makes about eight graph nodes per layer (scaling `A`, transposes, two
//! products, reshapes, the sum with the base output). candle's backward gives every node a
//! zero-filled gradient buffer and adds into it, so each node costs two extra passes over an
//! activation-sized tensor; in a tiny-llama LoRA step these passes were a quarter of the time
//! (`benches/train_vs_torch.py --profile`). This op is one node: the forward writes the base
//! product, the bias and the LoRA product into one buffer (the delta accumulates through the
//! GEMM itself), and the backward returns `dx`, `dA` and `dB` from five GEMMs:
//! - `t = x_d (s A)^T`, `u = g B`;
//! - `dx = g W + m * (u (s A))` (`m` the dropout mask, the product accumulated into `dx` when
//!   there is none); `dA = s u^T x_d`; `dB = g^T t`.
//!
//! The base `W` is dense in the activation's dtype (f32 or f64), or packed (NF4, FP4, int8: a
//! QLoRA layer, f32 only) and dequantized row tile by row tile into a per-thread scratch buffer
//! for each of its two products, so no dense copy of a quantized layer outlives the call (as in
//! the composite form's tiled frozen matmul). CPU only ([`applies`]); the caller takes the
//! composite form for anything else. The products are the same GEMMs, in
//! the same order of operands, as the composite form's (tests compare both, and the gradients
//! with finite differences). Must never return a gradient for `W` or the bias.

use super::contiguous_slice;
use super::gemm::{gemm_into, gemm_strided, View};
use crate::runtime::quant::tiled::{for_each_tile, DequantRows};
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;
use std::sync::Arc;

/// The frozen `[out, in]` weight of a LoRA layer as the op multiplies by it.
#[derive(Debug, Clone)]
pub enum Base {
    /// Dense, contiguous, in the activation's dtype.
    Dense(Tensor),
    /// Packed rows dequantized to f32 tile by tile (at most the given bytes at a time).
    Tiled(Arc<dyn DequantRows>, usize),
}

impl Base {
    /// `(out, in)`.
    fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Base::Dense(w) => w.dims2(),
            Base::Tiled(w, _) => Ok(w.dims()),
        }
    }

    /// `y = x W^T` for `x: [m, k]` into the row-major `y: [m, n]` (overwritten).
    fn times_transposed<T: WithDType>(
        &self,
        y: &mut [T],
        x: &[T],
        (m, k): (usize, usize),
    ) -> Result<()> {
        let (n, _) = self.dims()?;
        match self {
            Base::Dense(w) => with_slice::<T, _>(w, |w| {
                gemm_into(y, View::new(x, m, k)?, View::new(w, n, k)?.t(), false, 1.0)
            }),
            Base::Tiled(w, tile_bytes) => {
                for_each_tile(w.as_ref(), *tile_bytes, |r0, rows, tile| {
                    let tile = T::cpu_storage_as_slice(tile)?;
                    let dst = y.get_mut(r0..).unwrap_or_default();
                    let (xv, tv) = (View::new(x, m, k)?, View::new(tile, rows, k)?.t());
                    gemm_strided(dst, n, (xv, tv), false, 1.0, true)
                })
            }
        }
    }

    /// `dx = g W` for `g: [m, n]` into `dx: [m, k]` (added to it when `accumulate`, else
    /// overwritten).
    pub(crate) fn times<T: WithDType>(
        &self,
        dx: &mut [T],
        g: &[T],
        (m, k): (usize, usize),
        accumulate: bool,
    ) -> Result<()> {
        let (n, _) = self.dims()?;
        match self {
            Base::Dense(w) => with_slice::<T, _>(w, |w| {
                gemm_into(
                    dx,
                    View::new(g, m, n)?,
                    View::new(w, n, k)?,
                    accumulate,
                    1.0,
                )
            }),
            Base::Tiled(w, tile_bytes) => {
                if n == 0 && !accumulate {
                    // No tile to overwrite `dx` with: the product of nothing is zero.
                    dx.fill(T::zero());
                }
                for_each_tile(w.as_ref(), *tile_bytes, |r0, rows, tile| {
                    let tile = T::cpu_storage_as_slice(tile)?;
                    let gv = View::strided(g.get(r0..).unwrap_or_default(), m, rows, n)?;
                    let acc = accumulate || r0 > 0;
                    gemm_into(dx, gv, View::new(tile, rows, k)?, acc, 1.0)
                })
            }
        }
    }
}

/// Dropout of the LoRA input: which elements are kept and what they are multiplied by.
#[derive(Debug, Clone)]
pub struct LoraDropout {
    /// One flag per element of `x`.
    pub keep: Arc<Vec<bool>>,
    /// `1 / (1 - p)`.
    pub scale: f64,
}

/// One linear layer as the fused ops compute it: the frozen base, its bias, and the LoRA
/// scale and dropout (the `A`, `B` values come with each call; `r = 0`: no LoRA part). Use it
/// as an op through [`lora_linear`]; [`super::lora_mlp`] runs three of them in one op.
#[derive(Debug, Clone)]
pub(crate) struct LoraLinear {
    /// `[out, in]`.
    pub(crate) w: Base,
    /// `[out]`.
    pub(crate) bias: Option<Tensor>,
    /// LoRA scale (`alpha / r`, times the adapter's weight).
    pub(crate) scale: f64,
    pub(crate) dropout: Option<LoraDropout>,
}

/// The values of a contiguous CPU tensor of type `T`, with the storage kept locked by `f`.
fn with_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
    super::with_cpu_slice(t, "lora-linear", f)
}

/// `x * keep * scale`, or `x` itself without dropout.
fn dropped<'a, T: WithDType>(x: &'a [T], d: Option<&LoraDropout>) -> std::borrow::Cow<'a, [T]> {
    match d {
        None => std::borrow::Cow::Borrowed(x),
        Some(d) => {
            let s = T::from_f64(d.scale);
            std::borrow::Cow::Owned(
                x.iter()
                    .zip(d.keep.iter())
                    .map(|(&v, &k)| if k { v * s } else { T::from_f64(0.0) })
                    .collect(),
            )
        }
    }
}

/// `s A` as a new `[r, in]` buffer (the composite form scales `A`, not the output).
fn scaled<T: WithDType>(a: &[T], s: f64) -> Vec<T> {
    let s = T::from_f64(s);
    a.iter().map(|&v| v * s).collect()
}

impl LoraLinear {
    /// `(out, in)` of the base.
    pub(crate) fn dims(&self) -> Result<(usize, usize)> {
        self.w.dims()
    }

    fn forward<T: WithDType>(
        &self,
        x: &[T],
        (a, r): (&[T], usize),
        b: &[T],
        k: usize,
    ) -> Result<Vec<T>> {
        let (n, _) = self.w.dims()?;
        let m = x.len().checked_div(k).unwrap_or(0);
        // SAFETY: `forward_into` overwrites `y` whole (the base's product does not accumulate);
        // on an error `y` is dropped unread.
        let mut y = unsafe { super::uninit::<T>(m * n) };
        self.forward_into(&mut y, x, (a, r), b, k)?;
        Ok(y)
    }

    /// `y = x W^T + bias + (x_d (s A)^T) B^T` into `y: [m, out]` (overwritten) for
    /// `x: [m, k]`; no LoRA part when `r` is 0. Returns `t = x_d (s A)^T` (`[m, r]`, empty
    /// when `r` is 0), which [`Self::backward_into`] can take instead of recomputing it.
    pub(crate) fn forward_into<T: WithDType>(
        &self,
        y: &mut [T],
        x: &[T],
        (a, r): (&[T], usize),
        b: &[T],
        k: usize,
    ) -> Result<Vec<T>> {
        let (n, _) = self.w.dims()?;
        let m = x.len().checked_div(k).unwrap_or(0);
        if self
            .dropout
            .as_ref()
            .is_some_and(|d| d.keep.len() != x.len())
        {
            candle_core::bail!("lora-linear: dropout mask of the wrong size")
        }
        if y.len() != m * n {
            candle_core::bail!("lora-linear: output of {} values for {m}x{n}", y.len())
        }
        self.base_into(y, x, (m, k))?;
        if r == 0 {
            return Ok(Vec::new());
        }
        let t = self.lora_input(x, a, (m, k, r))?;
        gemm_into(y, View::new(&t, m, r)?, View::new(b, n, r)?.t(), true, 1.0)?;
        Ok(t)
    }

    /// `y = x W^T + bias` into `y: [m, out]` (overwritten) for `x: [m, k]`.
    pub(crate) fn base_into<T: WithDType>(
        &self,
        y: &mut [T],
        x: &[T],
        (m, k): (usize, usize),
    ) -> Result<()> {
        let (n, _) = self.w.dims()?;
        let bias = match &self.bias {
            Some(bias) => Some(bias.to_dtype(T::DTYPE)?.contiguous()?),
            None => None,
        };
        self.w.times_transposed(y, x, (m, k))?;
        if let Some(bias) = &bias {
            with_slice::<T, _>(bias, |bias| {
                y.par_chunks_mut(n.max(1)).for_each(|row| {
                    for (v, &b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                });
                Ok(())
            })?;
        }
        Ok(())
    }

    /// `t = x_d (s A)^T`, `[m, r]`.
    fn lora_input<T: WithDType>(
        &self,
        x: &[T],
        a: &[T],
        (m, k, r): (usize, usize, usize),
    ) -> Result<Vec<T>> {
        let xd = dropped(x, self.dropout.as_ref());
        let sa = scaled(a, self.scale);
        // SAFETY: the product below overwrites `t` whole.
        let mut t = unsafe { super::uninit::<T>(m * r) };
        gemm_into(
            &mut t,
            View::new(&xd, m, k)?,
            View::new(&sa, r, k)?.t(),
            false,
            1.0,
        )?;
        Ok(t)
    }

    /// `(dx, dA, dB)` as flat buffers; `dx` empty unless `need_dx` (an input that needs no
    /// gradient, e.g. the first layer's, saves its two products).
    #[allow(clippy::type_complexity)]
    fn backward<T: WithDType>(
        &self,
        x: &[T],
        (a, r): (&[T], usize),
        b: &[T],
        g: &[T],
        (k, need_dx): (usize, bool),
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        // SAFETY: `backward_into` overwrites `dx` whole when it is given (not accumulating);
        // otherwise it is empty. On an error it is dropped unread.
        let mut dx = unsafe { super::uninit::<T>(if need_dx { x.len() } else { 0 }) };
        let into = need_dx.then_some((dx.as_mut_slice(), false));
        let (da, db) = self.backward_into(into, (x, None), (a, r), b, g, k)?;
        Ok((dx, da, db))
    }

    /// `(dA, dB)` (empty when `r` is 0) for the output gradient `g: [m, out]`, and
    /// `dx = g W + m * (u (s A))` into `dx` when given: `(buffer, accumulate)`, added to the
    /// buffer when `accumulate`, else overwriting it. `x` comes with the `t` that
    /// [`Self::forward_into`] returned for it, when it was kept (else `t` is recomputed).
    #[allow(clippy::type_complexity)]
    pub(crate) fn backward_into<T: WithDType>(
        &self,
        dx: Option<(&mut [T], bool)>,
        (x, kept_t): (&[T], Option<&[T]>),
        (a, r): (&[T], usize),
        b: &[T],
        g: &[T],
        k: usize,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let (n, _) = self.w.dims()?;
        let m = x.len().checked_div(k).unwrap_or(0);
        if g.len() != m * n || dx.as_ref().is_some_and(|(dx, _)| dx.len() != m * k) {
            candle_core::bail!("lora-linear: gradient buffers do not match {m}x{k} -> {n}")
        }
        let mut dx = dx;
        if let Some((dx, accumulate)) = dx.as_mut() {
            self.w.times(dx, g, (m, k), *accumulate)?;
        }
        if r == 0 {
            return Ok((Vec::new(), Vec::new()));
        }
        let xd = dropped(x, self.dropout.as_ref());
        let sa = scaled(a, self.scale);
        let t = match kept_t {
            Some(t) if t.len() == m * r => std::borrow::Cow::Borrowed(t),
            _ => std::borrow::Cow::Owned(self.lora_input(x, a, (m, k, r))?),
        };
        let (u, db) = super::lora_grads::u_and_db(g, b, &t, (m, n, r))?;
        match (dx, &self.dropout) {
            (None, _) => {}
            (Some((dx, _)), None) => {
                gemm_into(dx, View::new(&u, m, r)?, View::new(&sa, r, k)?, true, 1.0)?
            }
            (Some((dx, _)), Some(d)) => {
                // SAFETY: the product overwrites `v` whole.
                let mut v = unsafe { super::uninit::<T>(m * k) };
                gemm_into(
                    &mut v,
                    View::new(&u, m, r)?,
                    View::new(&sa, r, k)?,
                    false,
                    1.0,
                )?;
                let s = T::from_f64(d.scale);
                for ((o, &v), &keep) in dx.iter_mut().zip(&v).zip(d.keep.iter()) {
                    if keep {
                        *o += v * s;
                    }
                }
            }
        }
        let scales = vec![self.scale; r];
        let da = super::lora_grads::da((&u, r), &xd, &scales, (m, k, r))?;
        Ok((da, db))
    }
}

/// `(k, r)` from the shapes of `x: [.., k]`, `A: [r, k]`, `B: [n, r]` and `W: [n, k]`.
fn dims(x: &[usize], a: &[usize], b: &[usize], w: (usize, usize)) -> Result<(usize, usize)> {
    match (x.last(), a, b, &[w.0, w.1]) {
        (Some(&k), &[r, ka], &[n, rb], &[nw, kw]) if ka == k && kw == k && rb == r && nw == n => {
            Ok((k, r))
        }
        _ => candle_core::bail!("lora-linear: shapes x {x:?}, A {a:?}, B {b:?}, W {w:?} disagree"),
    }
}

impl CustomOp3 for LoraLinear {
    fn name(&self) -> &'static str {
        "lora-linear"
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
        let (k, r) = dims(l1.dims(), l2.dims(), l3.dims(), self.w.dims()?)?;
        fn run<T: WithDType>(
            op: &LoraLinear,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
            (s3, l3): (&CpuStorage, &Layout),
            (k, r): (usize, usize),
        ) -> Result<CpuStorage> {
            let x = contiguous_slice(T::cpu_storage_as_slice(s1)?, l1, "lora-linear")?;
            let a = contiguous_slice(T::cpu_storage_as_slice(s2)?, l2, "lora-linear")?;
            let b = contiguous_slice(T::cpu_storage_as_slice(s3)?, l3, "lora-linear")?;
            Ok(T::to_cpu_storage_owned(op.forward(x, (a, r), b, k)?))
        }
        let args = ((s1, l1), (s2, l2), (s3, l3), (k, r));
        let out = match s1 {
            CpuStorage::F32(_) => run::<f32>(self, args.0, args.1, args.2, args.3)?,
            CpuStorage::F64(_) => run::<f64>(self, args.0, args.1, args.2, args.3)?,
            _ => candle_core::bail!("lora-linear: f32 or f64 only"),
        };
        let mut shape = l1.dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = self.w.dims()?.0;
        }
        Ok((out, Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (k, r) = dims(x.dims(), a.dims(), b.dims(), self.w.dims()?)?;
        let (x, a, b, g) = (
            x.contiguous()?,
            a.contiguous()?,
            b.contiguous()?,
            g.contiguous()?,
        );
        fn run<T: WithDType>(
            op: &LoraLinear,
            [x, a, b, g]: [&Tensor; 4],
            (k, r): (usize, usize),
        ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
            let need_dx = x.track_op();
            let (dx, da, db) = with_slice::<T, _>(x, |xs| {
                with_slice::<T, _>(a, |as_| {
                    with_slice::<T, _>(b, |bs| {
                        with_slice::<T, _>(g, |gs| op.backward(xs, (as_, r), bs, gs, (k, need_dx)))
                    })
                })
            })?;
            let dx = match need_dx {
                true => Some(Tensor::from_vec(dx, x.shape(), x.device())?),
                false => None,
            };
            Ok((
                dx,
                Tensor::from_vec(da, a.shape(), a.device())?,
                Tensor::from_vec(db, b.shape(), b.device())?,
            ))
        }
        let (dx, da, db) = match x.dtype() {
            DType::F32 => run::<f32>(self, [&x, &a, &b, &g], (k, r))?,
            DType::F64 => run::<f64>(self, [&x, &a, &b, &g], (k, r))?,
            d => candle_core::bail!("lora-linear: f32 or f64 only, not {d:?}"),
        };
        Ok((dx, Some(da), Some(db)))
    }
}

/// Whether [`lora_linear`] computes this layer: `x`, `a` and `b` on the CPU in f32 or f64, one
/// dtype; a dense `w` on the CPU (converted to `x`'s dtype by the caller when it differs), a
/// tiled one with f32 activations only.
pub fn applies(x: &Tensor, w: &Base, a: &Tensor, b: &Tensor) -> bool {
    let dtype = x.dtype();
    let base = match w {
        Base::Dense(w) => w.device().is_cpu(),
        Base::Tiled(..) => dtype == DType::F32,
    };
    base && [x, a, b].iter().all(|t| t.device().is_cpu())
        && matches!(dtype, DType::F32 | DType::F64)
        && [a, b].iter().all(|t| t.dtype() == dtype)
}

/// `x W^T + bias + (dropout(x) (scale A)^T) B^T` as one op, for `x: [.., in]`, `w: [out, in]`,
/// `a: [r, in]`, `b: [out, r]`; an error unless [`applies`] (and a dense `w` in `x`'s dtype).
pub fn lora_linear(
    x: &Tensor,
    w: Base,
    bias: Option<&Tensor>,
    (a, b): (&Tensor, &Tensor),
    scale: f64,
    dropout: Option<LoraDropout>,
) -> Result<Tensor> {
    let dense_dtype = match &w {
        Base::Dense(w) => w.dtype() == x.dtype(),
        Base::Tiled(..) => true,
    };
    if !applies(x, &w, a, b) || !dense_dtype {
        candle_core::bail!("lora-linear: CPU tensors of one dtype, f32 or f64, only")
    }
    if dropout
        .as_ref()
        .is_some_and(|d| d.keep.len() != x.elem_count())
    {
        candle_core::bail!("lora-linear: dropout mask of the wrong size")
    }
    let w = match w {
        Base::Dense(w) => Base::Dense(w.contiguous()?),
        tiled => tiled,
    };
    let op = LoraLinear {
        w,
        bias: bias.cloned(),
        scale,
        dropout,
    };
    x.contiguous()?
        .apply_op3(&a.contiguous()?, &b.contiguous()?, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::frozen_matmul::frozen_matmul;
    use crate::runtime::ops::gradcheck::check_grad;
    use candle_core::{Device, Var};

    fn composite(
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        a: &Tensor,
        b: &Tensor,
        scale: f64,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let mut y = frozen_matmul(x, w)?;
        if let Some(bias) = bias {
            y = y.broadcast_add(bias)?;
        }
        let xd = match mask {
            Some(m) => (x * m)?,
            None => x.clone(),
        };
        let k = x.dim(candle_core::D::Minus1)?;
        let t = xd.reshape(((), k))?.matmul(&(a * scale)?.t()?)?;
        let delta = t.matmul(&b.t()?)?.reshape(y.shape())?;
        y + delta
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
        (a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
            .abs()?
            .max_all()?
            .to_scalar::<f64>()
    }

    fn mask_for(keep: &[bool], scale: f64, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let v: Vec<f64> = keep.iter().map(|&k| if k { scale } else { 0.0 }).collect();
        Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)
    }

    #[test]
    fn gradients_match_finite_differences_for_x_a_and_b() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f64, 1.0, (5, 4), &dev)?;
        let bias = Tensor::randn(0f64, 1.0, 5, &dev)?;
        let a = Tensor::randn(0f64, 1.0, (3, 4), &dev)?;
        let b = Tensor::randn(0f64, 1.0, (5, 3), &dev)?;
        let x = Tensor::randn(0f64, 1.0, (2, 3, 4), &dev)?;
        let keep: Vec<bool> = (0..24).map(|i| i % 3 != 1).collect();
        for dropout in [
            None,
            Some(LoraDropout {
                keep: Arc::new(keep),
                scale: 1.5,
            }),
        ] {
            let f = |x: &Tensor, a: &Tensor, b: &Tensor| -> Result<Tensor> {
                lora_linear(
                    x,
                    Base::Dense(w.clone()),
                    Some(&bias),
                    (a, b),
                    0.7,
                    dropout.clone(),
                )
            };
            check_grad(&[2, 3, 4], |x| f(x, &a, &b))?;
            check_grad(&[3, 4], |a| f(&x, a, &b))?;
            check_grad(&[5, 3], |b| f(&x, &a, b))?;
        }
        Ok(())
    }

    #[test]
    fn forward_and_backward_equal_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        let (m, k, n, r) = (37, 24, 19, 4);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, n, &dev)?;
        let keep: Vec<bool> = (0..m * k).map(|i| (i * 7) % 5 != 0).collect();
        let mask = mask_for(&keep, 1.25, &[m, k], DType::F32)?;
        for (bias, dropout, mask) in [
            (None, None, None),
            (
                Some(&bias),
                Some(LoraDropout {
                    keep: Arc::new(keep.clone()),
                    scale: 1.25,
                }),
                Some(&mask),
            ),
        ] {
            let x = Var::randn(0f32, 1.0, (m, k), &dev)?;
            let a = Var::randn(0f32, 1.0, (r, k), &dev)?;
            let b = Var::randn(0f32, 1.0, (n, r), &dev)?;
            let fused = lora_linear(
                x.as_tensor(),
                Base::Dense(w.clone()),
                bias,
                (&a, &b),
                0.5,
                dropout,
            )?;
            let comp = composite(x.as_tensor(), &w, bias, &a, &b, 0.5, mask)?;
            assert!(max_diff(&fused, &comp)? < 1e-5);
            let probe = Tensor::randn(0f32, 1.0, (m, n), &dev)?;
            let gf = (&fused * &probe)?.sum_all()?.backward()?;
            let gc = (&comp * &probe)?.sum_all()?.backward()?;
            for v in [&x, &a, &b] {
                let (f, c) = (gf.get(v).expect("fused grad"), gc.get(v).expect("grad"));
                let tol = 1e-5 * (1.0 + c.abs()?.max_all()?.to_scalar::<f32>()? as f64);
                assert!(max_diff(f, c)? < tol, "{}", max_diff(f, c)?);
            }
        }
        Ok(())
    }

    #[test]
    fn no_gradient_reaches_the_weight_or_the_bias() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::randn(0f32, 1.0, (5, 4), &dev)?;
        let bias = Var::randn(0f32, 1.0, 5, &dev)?;
        let a = Var::randn(0f32, 1.0, (2, 4), &dev)?;
        let b = Var::randn(0f32, 1.0, (5, 2), &dev)?;
        let x = Tensor::randn(0f32, 1.0, (3, 4), &dev)?;
        let y = lora_linear(
            &x,
            Base::Dense(w.as_tensor().clone()),
            Some(&bias),
            (&a, &b),
            2.0,
            None,
        )?;
        let grads = y.sum_all()?.backward()?;
        assert!(grads.get(&w).is_none() && grads.get(&bias).is_none());
        assert!(grads.get(&a).is_some() && grads.get(&b).is_some());
        Ok(())
    }

    #[test]
    fn other_dtypes_are_left_to_the_composite_form() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::zeros((5, 4), DType::BF16, &dev)?;
        let a = Tensor::zeros((2, 4), DType::BF16, &dev)?;
        let b = Tensor::zeros((5, 2), DType::BF16, &dev)?;
        let x = Tensor::zeros((3, 4), DType::BF16, &dev)?;
        let w = Base::Dense(w);
        assert!(!applies(&x, &w, &a, &b));
        assert!(lora_linear(&x, w.clone(), None, (&a, &b), 1.0, None).is_err());
        let x32 = Tensor::zeros((3, 4), DType::F32, &dev)?;
        assert!(!applies(&x32, &w, &a, &b));
        let (a32, b32) = (a.to_dtype(DType::F32)?, b.to_dtype(DType::F32)?);
        assert!(applies(&x32, &w, &a32, &b32));
        assert!(lora_linear(&x32, w, None, (&a32, &b32), 1.0, None).is_err());
        // A tiled base takes f32 activations only.
        let tiled = Base::Tiled(
            Arc::new(Rows::new(Tensor::zeros((5, 4), DType::F32, &dev)?)?),
            64,
        );
        assert!(applies(&x32, &tiled, &a32, &b32));
        let x64 = x32.to_dtype(DType::F64)?;
        let (a64, b64) = (a32.to_dtype(DType::F64)?, b32.to_dtype(DType::F64)?);
        assert!(!applies(&x64, &tiled, &a64, &b64));
        Ok(())
    }

    /// A packed weight stand-in: rows copied out of a dense f32 matrix.
    #[derive(Debug)]
    struct Rows {
        w: Vec<f32>,
        dims: (usize, usize),
    }

    impl Rows {
        fn new(w: Tensor) -> Result<Self> {
            let dims = w.dims2()?;
            Ok(Self {
                w: w.flatten_all()?.to_vec1()?,
                dims,
            })
        }
    }

    impl DequantRows for Rows {
        fn dims(&self) -> (usize, usize) {
            self.dims
        }
        fn dequant_rows(&self, row0: usize, out: &mut [f32]) {
            let k = self.dims.1;
            out.copy_from_slice(&self.w[row0 * k..row0 * k + out.len()]);
        }
    }

    #[test]
    fn a_tiled_base_equals_the_dense_base_with_one_tile_or_many() -> Result<()> {
        let dev = Device::Cpu;
        let (m, k, n, r) = (29, 24, 19, 4);
        let w = Tensor::randn(0f32, 1.0, (n, k), &dev)?;
        let bias = Tensor::randn(0f32, 1.0, n, &dev)?;
        let probe = Tensor::randn(0f32, 1.0, (m, n), &dev)?;
        let x = Var::randn(0f32, 1.0, (m, k), &dev)?;
        let a = Var::randn(0f32, 1.0, (r, k), &dev)?;
        let b = Var::randn(0f32, 1.0, (n, r), &dev)?;
        let run = |base: Base| -> Result<(Tensor, candle_core::backprop::GradStore)> {
            let y = lora_linear(x.as_tensor(), base, Some(&bias), (&a, &b), 0.5, None)?;
            let g = (&y * &probe)?.sum_all()?.backward()?;
            Ok((y, g))
        };
        let (yd, gd) = run(Base::Dense(w.clone()))?;
        // 19 rows of 24 f32: one tile of all rows, tiles of 5 rows (the last of 4), one row each.
        for tile_bytes in [1 << 20, 5 * 24 * 4, 1] {
            let (yt, gt) = run(Base::Tiled(Arc::new(Rows::new(w.clone())?), tile_bytes))?;
            assert!(
                max_diff(&yt, &yd)? < 1e-5,
                "tile {tile_bytes}: {}",
                max_diff(&yt, &yd)?
            );
            for v in [&x, &a, &b] {
                let (t, d) = (gt.get(v).expect("tiled grad"), gd.get(v).expect("grad"));
                assert!(
                    max_diff(t, d)? < 1e-4,
                    "tile {tile_bytes}: {}",
                    max_diff(t, d)?
                );
            }
        }
        Ok(())
    }
}
