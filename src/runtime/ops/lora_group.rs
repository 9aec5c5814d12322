//! What the block ops ([`super::lora_mlp`], [`super::lora_attention`]) share: several
//! [`LoraLinear`] layers whose LoRA matrices travel packed in one 1-D tensor (`A` then `B` of
//! each adapted layer, in layer order; a block op has two inputs, the activations and this), and
//! the buffers a forward pass keeps for its backward pass. Must keep the packing order the one
//! place it is defined: the packed gradient is split back onto the adapters by candle's `cat`.

use super::lora_linear::LoraLinear;
use super::{contiguous_slice, with_cpu_slice};
use candle_core::{CpuStorage, DType, Layout, Result, Tensor, WithDType};
use std::sync::Mutex;

/// The layers of a block with their LoRA ranks (0: frozen).
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) layers: Vec<LoraLinear>,
    ranks: Vec<usize>,
}

impl Group {
    /// The group and its packed LoRA matrices, for activations of `dtype` on the CPU: each
    /// layer with its `(A: [r, in], B: [out, r])` when adapted.
    pub(crate) fn pack(
        layers: Vec<(LoraLinear, Option<(Tensor, Tensor)>)>,
        dtype: DType,
    ) -> Result<(Self, Tensor)> {
        if !matches!(dtype, DType::F32 | DType::F64) {
            candle_core::bail!("lora-group: f32 or f64 activations only, not {dtype:?}")
        }
        let mut ranks = Vec::with_capacity(layers.len());
        let mut parts = Vec::new();
        let mut linears = Vec::with_capacity(layers.len());
        for (layer, ab) in layers {
            let mut r = 0;
            if let Some((a, b)) = ab {
                let (n, k) = layer.dims()?;
                let (ra, ka) = a.dims2()?;
                if ka != k || b.dims2()? != (n, ra) {
                    candle_core::bail!(
                        "lora-group: A {:?} and B {:?} do not fit a {n}x{k} layer",
                        a.dims(),
                        b.dims()
                    )
                }
                if [&a, &b]
                    .iter()
                    .any(|t| t.dtype() != dtype || !t.device().is_cpu())
                {
                    candle_core::bail!("lora-group: LoRA matrices must be CPU tensors in {dtype:?}")
                }
                r = ra;
                parts.push(a.flatten_all()?);
                parts.push(b.flatten_all()?);
            }
            ranks.push(r);
            linears.push(layer);
        }
        let packed = match parts.is_empty() {
            true => Tensor::zeros(0, dtype, &candle_core::Device::Cpu)?,
            false => Tensor::cat(&parts, 0)?,
        };
        let group = Self {
            layers: linears,
            ranks,
        };
        Ok((group, packed))
    }

    /// Layer `i`'s `(A, r)` and `B` within the packed values `p`.
    #[allow(clippy::type_complexity)]
    pub(crate) fn unpack<'a, T>(&self, p: &'a [T]) -> Result<Vec<((&'a [T], usize), &'a [T])>> {
        let mut rest = p;
        let mut out = Vec::with_capacity(self.layers.len());
        for (l, &r) in self.layers.iter().zip(&self.ranks) {
            let (n, k) = l.dims()?;
            if rest.len() < r * (k + n) {
                candle_core::bail!("lora-group: too few packed values")
            }
            let (a, tail) = rest.split_at(r * k);
            let (b, tail) = tail.split_at(n * r);
            out.push(((a, r), b));
            rest = tail;
        }
        if !rest.is_empty() {
            candle_core::bail!("lora-group: {} packed values left over", rest.len())
        }
        Ok(out)
    }
}

/// The packed gradient from each layer's `(dA, dB)` (empty for frozen layers), in packing order.
pub(crate) fn packed_grad<T: Copy>(parts: Vec<(Vec<T>, Vec<T>)>) -> Vec<T> {
    let len = parts.iter().map(|(a, b)| a.len() + b.len()).sum();
    let mut out = Vec::with_capacity(len);
    for (a, b) in parts {
        out.extend_from_slice(&a);
        out.extend_from_slice(&b);
    }
    out
}

/// Buffers of one element type kept by a forward pass.
#[derive(Debug)]
pub(crate) enum Buffers {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
}

/// The element types the block ops compute in, with how their kept buffers are stored.
pub(crate) trait Elem: WithDType {
    fn wrap(v: Vec<Vec<Self>>) -> Buffers;
    fn unwrap(k: Buffers) -> Option<Vec<Vec<Self>>>;
}

impl Elem for f32 {
    fn wrap(v: Vec<Vec<f32>>) -> Buffers {
        Buffers::F32(v)
    }
    fn unwrap(k: Buffers) -> Option<Vec<Vec<f32>>> {
        match k {
            Buffers::F32(v) => Some(v),
            Buffers::F64(_) => None,
        }
    }
}

impl Elem for f64 {
    fn wrap(v: Vec<Vec<f64>>) -> Buffers {
        Buffers::F64(v)
    }
    fn unwrap(k: Buffers) -> Option<Vec<Vec<f64>>> {
        match k {
            Buffers::F64(v) => Some(v),
            Buffers::F32(_) => None,
        }
    }
}

/// What a forward pass keeps for the backward pass, when one can follow (`enabled`). The
/// backward pass takes it (so it is freed as soon as used) and recomputes when it is gone.
#[derive(Debug)]
pub(crate) struct Kept {
    enabled: bool,
    buffers: Mutex<Option<Buffers>>,
}

impl Kept {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            buffers: Mutex::new(None),
        }
    }

    /// Whether a backward pass can follow (what is kept is read back).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn put<T: Elem>(&self, v: Vec<Vec<T>>) {
        if self.enabled {
            if let Ok(mut b) = self.buffers.lock() {
                *b = Some(T::wrap(v));
            }
        }
    }

    /// The kept buffers, when there are `n` of type `T`.
    pub(crate) fn take<T: Elem>(&self, n: usize) -> Option<Vec<Vec<T>>> {
        let b = self.buffers.lock().ok()?.take()?;
        T::unwrap(b).filter(|v| v.len() == n)
    }
}

/// RMSNorm before a block and the residual add after it: the op computes
/// `h + block(rms_norm(h) w)` from the residual stream `h`, so the stream is the block's only
/// input with a gradient (pre-norm decoders, when no residual adapter sits between).
#[derive(Debug, Clone)]
pub(crate) struct PreNorm {
    /// `[hidden]`, contiguous, the activations' dtype; frozen.
    pub(crate) weight: Tensor,
    pub(crate) eps: f64,
}

/// The element types a [`PreNorm`] computes in.
pub(crate) trait NormElem: Elem + super::norm_rows::Real {
    /// RMSNorm's forward pass as the separate op computes it.
    fn rms_forward(x: &[Self], w: &[Self], eps: f64) -> Vec<Self>;
}

impl NormElem for f32 {
    fn rms_forward(x: &[f32], w: &[f32], eps: f64) -> Vec<f32> {
        super::norm_rows::forward(x, w, eps as f32)
    }
}

impl NormElem for f64 {
    fn rms_forward(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
        super::norm_rows::forward_f64(x, w, eps)
    }
}

impl PreNorm {
    fn with_weight<T: NormElem, R>(&self, f: impl FnOnce(&[T]) -> Result<R>) -> Result<R> {
        super::with_cpu_slice(&self.weight, "pre-norm", f)
    }

    /// `rms_norm(h) w`.
    fn normed<T: NormElem>(&self, h: &[T]) -> Result<Vec<T>> {
        self.with_weight(|w: &[T]| {
            if w.is_empty() || !h.len().is_multiple_of(w.len()) {
                candle_core::bail!("pre-norm: a weight of {} for {} values", w.len(), h.len())
            }
            Ok(T::rms_forward(h, w, self.eps))
        })
    }

    /// `dh = dy + d(rms_norm)/dh^T dx1`.
    fn input_grad<T: NormElem>(&self, h: &[T], dx1: &[T], dy: &[T]) -> Result<Vec<T>> {
        let mut dh =
            self.with_weight(|w: &[T]| Ok(super::norm_rows::input_grad(h, w, dx1, self.eps)))?;
        add_into(&mut dh, dy);
        Ok(dh)
    }
}

/// `y += h`, in parallel chunks.
fn add_into<T: WithDType>(y: &mut [T], h: &[T]) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    y.par_chunks_mut(CHUNK)
        .zip(h.par_chunks(CHUNK))
        .for_each(|(y, h)| {
            for (y, &h) in y.iter_mut().zip(h) {
                *y += h;
            }
        });
}

/// A block op's forward pass on its input `h`, keeping what `core` keeps: `core(h)` as it is,
/// or with `pre`, `h + core(rms_norm(h))` (the normed input kept after `core`'s buffers).
fn forward_with<T: NormElem>(
    pre: Option<&PreNorm>,
    kept: &Kept,
    h: &[T],
    core: impl FnOnce(&[T]) -> Result<(Vec<T>, Vec<Vec<T>>)>,
) -> Result<Vec<T>> {
    let Some(pre) = pre else {
        let (y, k) = core(h)?;
        kept.put(k);
        return Ok(y);
    };
    let x1 = pre.normed(h)?;
    let (mut y, mut k) = core(&x1)?;
    if y.len() != h.len() {
        candle_core::bail!("pre-norm: the block's output does not match its input")
    }
    add_into(&mut y, h);
    k.push(x1);
    kept.put(k);
    Ok(y)
}

/// The backward pass matching [`forward_with`]: `core(x1, need_dx)` returns the gradient of
/// the block's own input and the packed one; `(dh, dP)`, `dh` empty unless `need_dx`. `n` is
/// how many buffers `core`'s forward keeps.
fn backward_with<T: NormElem>(
    pre: Option<&PreNorm>,
    (kept, n): (&Kept, usize),
    (h, dy): (&[T], &[T]),
    need_dx: bool,
    core: impl FnOnce(&[T], bool) -> Result<(Vec<T>, Vec<T>)>,
) -> Result<(Vec<T>, Vec<T>)> {
    let Some(pre) = pre else {
        return core(h, need_dx);
    };
    let x1 = match kept.take::<T>(n + 1) {
        Some(mut k) => {
            let x1 = k.pop().unwrap_or_default();
            kept.put(k);
            x1
        }
        None => pre.normed(h)?,
    };
    let (dx1, dp) = core(&x1, need_dx)?;
    drop(x1);
    let dh = match need_dx {
        true => pre.input_grad(h, &dx1, dy)?,
        false => Vec::new(),
    };
    Ok((dh, dp))
}

/// A block op's `cpu_fwd` for one element type: `core(x, p)` on the contiguous values of the
/// input and the packed LoRA matrices ([`forward_with`] around it); `op` names it in errors.
pub(crate) fn forward_storage<T: NormElem>(
    op: &str,
    (pre, kept): (Option<&PreNorm>, &Kept),
    [(s1, l1), (s2, l2)]: [(&CpuStorage, &Layout); 2],
    core: impl FnOnce(&[T], &[T]) -> Result<(Vec<T>, Vec<Vec<T>>)>,
) -> Result<CpuStorage> {
    let x = contiguous_slice(T::cpu_storage_as_slice(s1)?, l1, op)?;
    let p = contiguous_slice(T::cpu_storage_as_slice(s2)?, l2, op)?;
    let y = forward_with(pre, kept, x, |x1| core(x1, p))?;
    Ok(T::to_cpu_storage_owned(y))
}

/// A block op's `bwd` for one element type: `core(x1, p, dy, need_dx)` on contiguous values
/// gives the gradients of the block's own input and of the packed matrices ([`backward_with`]
/// around it; `n` buffers kept by `core`'s forward). The input's gradient is returned only when
/// `x` needs one, the packed one only when `p` does.
pub(crate) fn backward_tensors<T: NormElem>(
    op: &str,
    (pre, kept, n): (Option<&PreNorm>, &Kept, usize),
    [x, p, dy]: [&Tensor; 3],
    core: impl FnOnce(&[T], &[T], &[T], bool) -> Result<(Vec<T>, Vec<T>)>,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let need_dx = x.track_op();
    let (x, p, dy) = (x.contiguous()?, p.contiguous()?, dy.contiguous()?);
    let (dx, dp) = with_cpu_slice::<T, _>(&x, op, |xs| {
        with_cpu_slice::<T, _>(&p, op, |ps| {
            with_cpu_slice::<T, _>(&dy, op, |ds| {
                backward_with(pre, (kept, n), (xs, ds), need_dx, |x1, need| {
                    core(x1, ps, ds, need)
                })
            })
        })
    })?;
    let dx = match need_dx {
        true => Some(Tensor::from_vec(dx, x.shape(), x.device())?),
        false => None,
    };
    let dp = match p.track_op() {
        true => Some(Tensor::from_vec(dp, p.shape(), p.device())?),
        false => None,
    };
    Ok((dx, dp))
}

/// Test layers for the block ops: one layer as the block op takes it and as the separate ops
/// compute it.
#[cfg(test)]
pub(crate) mod testing {
    use crate::runtime::ops::frozen_matmul::frozen_matmul;
    use crate::runtime::ops::gradcheck::max_diff;
    use crate::runtime::ops::lora_linear::{lora_linear, Base, LoraDropout, LoraLinear};
    use candle_core::backprop::GradStore;
    use candle_core::{Result, Tensor};
    use std::sync::Arc;

    /// One layer of a test block: weight, bias, `(A, B)`, scale, dropout.
    #[derive(Clone)]
    pub(crate) struct Spec {
        pub(crate) w: Tensor,
        pub(crate) bias: Option<Tensor>,
        pub(crate) ab: Option<(Tensor, Tensor)>,
        pub(crate) scale: f64,
        pub(crate) dropout: Option<LoraDropout>,
    }

    impl Spec {
        pub(crate) fn layer(&self) -> (LoraLinear, Option<(Tensor, Tensor)>) {
            let layer = LoraLinear {
                w: Base::Dense(self.w.clone()),
                bias: self.bias.clone(),
                scale: self.scale,
                dropout: self.dropout.clone(),
            };
            (layer, self.ab.clone())
        }

        /// The layer as the separate ops compute it.
        pub(crate) fn separate(&self, x: &Tensor) -> Result<Tensor> {
            match &self.ab {
                Some((a, b)) => lora_linear(
                    x,
                    Base::Dense(self.w.clone()),
                    self.bias.as_ref(),
                    (a, b),
                    self.scale,
                    self.dropout.clone(),
                ),
                None => {
                    let y = frozen_matmul(x, &self.w)?;
                    match &self.bias {
                        Some(b) => y.broadcast_add(b),
                        None => Ok(y),
                    }
                }
            }
        }
    }
    pub(crate) fn keep(n: usize, salt: usize) -> LoraDropout {
        LoraDropout {
            keep: Arc::new((0..n).map(|i| !(i * 7 + salt).is_multiple_of(5)).collect()),
            scale: 1.25,
        }
    }

    /// Asserts that `fused` and `separate` agree within 1e-5 (relative) and so do the
    /// gradients of `sum(out * probe)`, for a random probe, with respect to `x` and every LoRA
    /// matrix of `specs`; returns the fused form's gradients and how many tensors were compared.
    pub(crate) fn assert_same_values_and_gradients(
        fused: &Tensor,
        separate: &Tensor,
        x: &Tensor,
        specs: &[Spec],
    ) -> Result<(GradStore, usize)> {
        let d = max_diff(fused, separate)?;
        assert!(d < 1e-5, "values differ by {d}");
        let probe =
            Tensor::randn(0f64, 1.0, fused.shape(), fused.device())?.to_dtype(fused.dtype())?;
        let gf = (fused * &probe)?.sum_all()?.backward()?;
        let gs = (separate * &probe)?.sum_all()?.backward()?;
        let mut checked = 0;
        for t in std::iter::once(x.clone()).chain(vars(specs)) {
            let (a, b) = (gf.get(&t).expect("fused grad"), gs.get(&t).expect("grad"));
            let d = max_diff(a, b)?;
            assert!(d < 1e-5, "gradient differs by {d}");
            checked += 1;
        }
        Ok((gf, checked))
    }

    /// The LoRA matrices of the layers that have them, in packing order.
    pub(crate) fn vars(specs: &[Spec]) -> Vec<Tensor> {
        specs
            .iter()
            .filter_map(|s| s.ab.clone())
            .flat_map(|(a, b)| [a, b])
            .collect()
    }
}
