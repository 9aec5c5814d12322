//! A llama-family feed-forward block, `down(silu(gate(x)) * up(x))`, as one op with a
//! hand-written backward pass, each of its three linear layers frozen or with one LoRA adapter.
//!
//! As separate ops the block makes five graph nodes (three [`super::lora_linear`] layers, the
//! SwiGLU product, and the input read twice), and candle's backward gives each of their outputs
//! and inputs a zero-filled gradient buffer and adds into it, on one thread: for a tiny-llama
//! LoRA step the `[tokens, intermediate]` gradients of gate, up and the product were most of
//! that serial time (`benches/train_vs_torch.py --profile`). Here the block is one node whose
//! only gradients are the input's and the packed LoRA matrices':
//! - forward: `G = gate(x)`, `U = up(x)`, `H = silu(G) U`, `y = down(H)`; `G`, `U` and `H` are
//!   kept for the backward pass (the separate ops keep the same three tensors);
//! - backward: `dH` from `down`'s backward, `dG`, `dU` from SwiGLU's, then `dx` from gate's
//!   and up's backward into one buffer, and every adapter's `dA`, `dB`.
//!
//! The LoRA matrices come packed in one 1-D tensor (`A` then `B` of each adapted layer, in the
//! order gate, up, down), so the op has two inputs. The layers' arithmetic is
//! [`LoraLinear`]'s, in the same order of operations as the separate ops (tests compare both
//! forms and the gradients with finite differences). CPU, f32 and f64 ([`lora_mlp`] refuses
//! anything else; the caller takes the separate ops). Must never return a gradient for a
//! frozen weight or bias.

use super::contiguous_slice;
use super::lora_linear::LoraLinear;
use super::swiglu::{self, Float};
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};
use std::sync::Mutex;

/// What the forward pass keeps for the backward pass: `G`, `U`, `H`.
#[derive(Debug)]
enum Kept {
    F32([Vec<f32>; 3]),
    F64([Vec<f64>; 3]),
}

/// The element types of the op, with how their kept buffers are stored.
trait Elem: Float {
    fn keep(v: [Vec<Self>; 3]) -> Kept;
    fn take(k: Kept) -> Option<[Vec<Self>; 3]>;
}

impl Elem for f32 {
    fn keep(v: [Vec<f32>; 3]) -> Kept {
        Kept::F32(v)
    }
    fn take(k: Kept) -> Option<[Vec<f32>; 3]> {
        match k {
            Kept::F32(v) => Some(v),
            Kept::F64(_) => None,
        }
    }
}

impl Elem for f64 {
    fn keep(v: [Vec<f64>; 3]) -> Kept {
        Kept::F64(v)
    }
    fn take(k: Kept) -> Option<[Vec<f64>; 3]> {
        match k {
            Kept::F64(v) => Some(v),
            Kept::F32(_) => None,
        }
    }
}

/// The op; use it through [`lora_mlp`].
#[derive(Debug)]
struct LoraMlp {
    /// gate, up, down.
    layers: [LoraLinear; 3],
    /// Each layer's LoRA rank (0: frozen).
    ranks: [usize; 3],
    /// Whether the forward pass keeps `G`, `U`, `H` (only when a backward pass can follow).
    keep: bool,
    kept: Mutex<Option<Kept>>,
}

/// Where each layer's `A` and `B` lie in the packed parameters.
struct Packed<'a, T> {
    ab: [(&'a [T], &'a [T]); 3],
}

impl LoraMlp {
    /// `(hidden, intermediate)`, checking that the three layers chain.
    fn dims(&self) -> Result<(usize, usize)> {
        let [gate, up, down] = &self.layers;
        let (i, h) = gate.dims()?;
        if up.dims()? != (i, h) || down.dims()? != (h, i) {
            candle_core::bail!(
                "lora-mlp: gate {:?}, up {:?} and down {:?} do not chain",
                gate.dims()?,
                up.dims()?,
                down.dims()?
            )
        }
        Ok((h, i))
    }

    /// The number of packed parameter values.
    fn packed_len(&self) -> Result<usize> {
        let mut len = 0;
        for (l, &r) in self.layers.iter().zip(&self.ranks) {
            let (n, k) = l.dims()?;
            len += r * (k + n);
        }
        Ok(len)
    }

    fn unpack<'a, T>(&self, p: &'a [T]) -> Result<Packed<'a, T>> {
        if p.len() != self.packed_len()? {
            candle_core::bail!(
                "lora-mlp: {} packed values, {} expected",
                p.len(),
                self.packed_len()?
            )
        }
        let mut rest = p;
        let mut ab: [(&[T], &[T]); 3] = [(&[], &[]); 3];
        for (i, (l, &r)) in self.layers.iter().zip(&self.ranks).enumerate() {
            let (n, k) = l.dims()?;
            let (a, tail) = rest.split_at(r * k);
            let (b, tail) = tail.split_at(n * r);
            ab[i] = (a, b);
            rest = tail;
        }
        Ok(Packed { ab })
    }

    /// `(y, [G, U, H])` for `x: [m, hidden]`.
    #[allow(clippy::type_complexity)]
    fn forward<T: Elem>(&self, x: &[T], p: &[T]) -> Result<(Vec<T>, [Vec<T>; 3])> {
        let (h, i) = self.dims()?;
        let m = x.len().checked_div(h).unwrap_or(0);
        let Packed { ab } = self.unpack(p)?;
        let [gate, up, down] = &self.layers;
        let mut g = vec![T::from_f64(0.0); m * i];
        gate.forward_into(&mut g, x, (ab[0].0, self.ranks[0]), ab[0].1, h)?;
        let mut u = vec![T::from_f64(0.0); m * i];
        up.forward_into(&mut u, x, (ab[1].0, self.ranks[1]), ab[1].1, h)?;
        let act = swiglu::forward(&g, &u);
        let mut y = vec![T::from_f64(0.0); m * h];
        down.forward_into(&mut y, &act, (ab[2].0, self.ranks[2]), ab[2].1, i)?;
        Ok((y, [g, u, act]))
    }

    /// `(dx, dP)` for the output gradient `dy`; `dx` empty unless `need_dx`. Uses what the
    /// forward pass kept, or recomputes it.
    fn backward<T: Elem>(
        &self,
        x: &[T],
        p: &[T],
        dy: &[T],
        need_dx: bool,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let (h, i) = self.dims()?;
        let m = x.len().checked_div(h).unwrap_or(0);
        let kept = self.kept.lock().ok().and_then(|mut k| k.take());
        let [g, u, act] = match kept.and_then(T::take) {
            Some(k) => k,
            None => self.forward(x, p)?.1,
        };
        let Packed { ab } = self.unpack(p)?;
        let [gate, up, down] = &self.layers;
        let mut d_act = vec![T::from_f64(0.0); m * i];
        let (da_d, db_d) = down.backward_into(
            Some((&mut d_act, false)),
            &act,
            (ab[2].0, self.ranks[2]),
            ab[2].1,
            dy,
            i,
        )?;
        drop(act);
        let dgu = swiglu::backward(&d_act, &g, &u);
        drop((d_act, g, u));
        let (dg, du) = dgu.split_at(m * i);
        let mut dx = vec![T::from_f64(0.0); if need_dx { m * h } else { 0 }];
        let into = need_dx.then_some((dx.as_mut_slice(), false));
        let (da_g, db_g) = gate.backward_into(into, x, (ab[0].0, self.ranks[0]), ab[0].1, dg, h)?;
        let into = need_dx.then_some((dx.as_mut_slice(), true));
        let (da_u, db_u) = up.backward_into(into, x, (ab[1].0, self.ranks[1]), ab[1].1, du, h)?;
        let mut dp = Vec::with_capacity(p.len());
        for part in [da_g, db_g, da_u, db_u, da_d, db_d] {
            dp.extend_from_slice(&part);
        }
        Ok((dx, dp))
    }
}

impl CustomOp2 for LoraMlp {
    fn name(&self) -> &'static str {
        "lora-mlp"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Elem>(
            op: &LoraMlp,
            (s1, l1): (&CpuStorage, &Layout),
            (s2, l2): (&CpuStorage, &Layout),
        ) -> Result<CpuStorage> {
            let x = contiguous_slice(T::cpu_storage_as_slice(s1)?, l1, "lora-mlp")?;
            let p = contiguous_slice(T::cpu_storage_as_slice(s2)?, l2, "lora-mlp")?;
            let (y, kept) = op.forward(x, p)?;
            if op.keep {
                if let Ok(mut k) = op.kept.lock() {
                    *k = Some(T::keep(kept));
                }
            }
            Ok(T::to_cpu_storage_owned(y))
        }
        let (h, _) = self.dims()?;
        if l1.dims().last() != Some(&h) {
            candle_core::bail!("lora-mlp: input {:?} is not [.., {h}]", l1.dims())
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => run::<f32>(self, (s1, l1), (s2, l2))?,
            (CpuStorage::F64(_), CpuStorage::F64(_)) => run::<f64>(self, (s1, l1), (s2, l2))?,
            _ => candle_core::bail!("lora-mlp: f32 or f64 inputs of one dtype only"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Elem>(
            op: &LoraMlp,
            [x, p, dy]: [&Tensor; 3],
        ) -> Result<(Option<Tensor>, Option<Tensor>)> {
            let need_dx = x.track_op();
            let (dx, dp) = with_slice::<T, _>(x, |xs| {
                with_slice::<T, _>(p, |ps| {
                    with_slice::<T, _>(dy, |ds| op.backward(xs, ps, ds, need_dx))
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
        let (x, p, dy) = (x.contiguous()?, p.contiguous()?, dy.contiguous()?);
        match x.dtype() {
            DType::F32 => run::<f32>(self, [&x, &p, &dy]),
            DType::F64 => run::<f64>(self, [&x, &p, &dy]),
            d => candle_core::bail!("lora-mlp: f32 or f64 only, not {d:?}"),
        }
    }
}

/// The values of a contiguous CPU tensor of type `T`, with the storage kept locked by `f`.
fn with_slice<T: candle_core::WithDType, R>(
    t: &Tensor,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    super::with_cpu_slice(t, "lora-mlp", f)
}

/// `down(silu(gate(x)) * up(x))` as one op for `x: [.., hidden]`: each layer with its `(A, B)`
/// when it has a LoRA adapter (its scale and dropout mask in the [`LoraLinear`]). An error
/// unless every tensor is on the CPU in `x`'s dtype, f32 or f64, and the shapes chain.
pub(crate) fn lora_mlp(
    x: &Tensor,
    layers: [(LoraLinear, Option<(Tensor, Tensor)>); 3],
) -> Result<Tensor> {
    let (dtype, device) = (x.dtype(), x.device());
    if !device.is_cpu() || !matches!(dtype, DType::F32 | DType::F64) {
        candle_core::bail!("lora-mlp: CPU tensors in f32 or f64 only")
    }
    let mut ranks = [0; 3];
    let mut parts = Vec::new();
    let mut linears = Vec::with_capacity(3);
    for (slot, (layer, ab)) in layers.into_iter().enumerate() {
        if let Some((a, b)) = ab {
            let (n, k) = layer.dims()?;
            let (r, ka) = a.dims2()?;
            if ka != k || b.dims2()? != (n, r) {
                candle_core::bail!(
                    "lora-mlp: A {:?} and B {:?} do not fit a {n}x{k} layer",
                    a.dims(),
                    b.dims()
                )
            }
            if [&a, &b]
                .iter()
                .any(|t| t.dtype() != dtype || !t.device().is_cpu())
            {
                candle_core::bail!("lora-mlp: LoRA matrices must be CPU tensors of x's dtype")
            }
            ranks[slot] = r;
            parts.push(a.flatten_all()?);
            parts.push(b.flatten_all()?);
        }
        linears.push(layer);
    }
    let Ok(layers) = <[LoraLinear; 3]>::try_from(linears) else {
        candle_core::bail!("lora-mlp: three layers expected")
    };
    let packed = match parts.is_empty() {
        true => Tensor::zeros(0, dtype, device)?,
        false => Tensor::cat(&parts, 0)?,
    };
    let op = LoraMlp {
        layers,
        ranks,
        keep: x.track_op() || packed.track_op(),
        kept: Mutex::new(None),
    };
    op.dims()?;
    x.contiguous()?.apply_op2(&packed, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::frozen_matmul::frozen_matmul;
    use crate::runtime::ops::gradcheck::{check_grad, max_diff};
    use crate::runtime::ops::lora_linear::{lora_linear, Base, LoraDropout};
    use crate::runtime::ops::swiglu::swiglu;
    use candle_core::{Device, Var};
    use std::sync::Arc;

    /// One layer of a test block: weight, bias, `(A, B)`, scale, dropout.
    #[derive(Clone)]
    struct Spec {
        w: Tensor,
        bias: Option<Tensor>,
        ab: Option<(Tensor, Tensor)>,
        scale: f64,
        dropout: Option<LoraDropout>,
    }

    impl Spec {
        fn layer(&self) -> (LoraLinear, Option<(Tensor, Tensor)>) {
            let layer = LoraLinear {
                w: Base::Dense(self.w.clone()),
                bias: self.bias.clone(),
                scale: self.scale,
                dropout: self.dropout.clone(),
            };
            (layer, self.ab.clone())
        }

        /// The layer as the separate ops compute it.
        fn separate(&self, x: &Tensor) -> Result<Tensor> {
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

    fn separate(x: &Tensor, [g, u, d]: &[Spec; 3]) -> Result<Tensor> {
        d.separate(&swiglu(&g.separate(x)?, &u.separate(x)?)?)
    }

    fn fused(x: &Tensor, [g, u, d]: &[Spec; 3]) -> Result<Tensor> {
        lora_mlp(x, [g.layer(), u.layer(), d.layer()])
    }

    fn keep(n: usize, salt: usize) -> LoraDropout {
        LoraDropout {
            keep: Arc::new((0..n).map(|i| !(i * 7 + salt).is_multiple_of(5)).collect()),
            scale: 1.25,
        }
    }

    /// gate with LoRA, bias and dropout; up frozen with a bias; down with LoRA and dropout.
    fn block(dtype: DType, (m, h, i, r): (usize, usize, usize, usize)) -> Result<[Spec; 3]> {
        let dev = Device::Cpu;
        let t = |shape: (usize, usize)| -> Result<Tensor> {
            Tensor::randn(0f64, 0.5, shape, &dev)?.to_dtype(dtype)
        };
        let v = |shape: (usize, usize)| -> Result<Tensor> {
            Ok(Var::from_tensor(&t(shape)?)?.as_tensor().clone())
        };
        let bias =
            |n: usize| -> Result<Tensor> { Tensor::randn(0f64, 0.5, n, &dev)?.to_dtype(dtype) };
        Ok([
            Spec {
                w: t((i, h))?,
                bias: Some(bias(i)?),
                ab: Some((v((r, h))?, v((i, r))?)),
                scale: 0.7,
                dropout: Some(keep(m * h, 1)),
            },
            Spec {
                w: t((i, h))?,
                bias: Some(bias(i)?),
                ab: None,
                scale: 0.0,
                dropout: None,
            },
            Spec {
                w: t((h, i))?,
                bias: None,
                ab: Some((v((r, i))?, v((h, r))?)),
                scale: 2.0,
                dropout: Some(keep(m * i, 3)),
            },
        ])
    }

    fn vars(specs: &[Spec; 3]) -> Vec<Tensor> {
        specs
            .iter()
            .filter_map(|s| s.ab.clone())
            .flat_map(|(a, b)| [a, b])
            .collect()
    }

    #[test]
    fn forward_and_backward_equal_the_separate_ops() -> Result<()> {
        let dev = Device::Cpu;
        let (m, h, i, r) = (37, 24, 40, 4);
        let specs = block(DType::F32, (m, h, i, r))?;
        let x = Var::randn(0f32, 1.0, (m, h), &dev)?;
        let f = fused(x.as_tensor(), &specs)?;
        let s = separate(x.as_tensor(), &specs)?;
        assert!(max_diff(&f, &s)? < 1e-5, "{}", max_diff(&f, &s)?);
        let probe = Tensor::randn(0f32, 1.0, (m, h), &dev)?;
        let gf = (&f * &probe)?.sum_all()?.backward()?;
        let gs = (&s * &probe)?.sum_all()?.backward()?;
        let mut checked = 0;
        for t in std::iter::once(x.as_tensor().clone()).chain(vars(&specs)) {
            let (a, b) = (gf.get(&t).expect("fused grad"), gs.get(&t).expect("grad"));
            let d = max_diff(a, b)?;
            assert!(d < 1e-5, "gradient differs by {d}");
            checked += 1;
        }
        assert_eq!(checked, 5);
        // No gradient for a frozen weight or bias.
        for s in &specs {
            assert!(gf.get(&s.w).is_none());
            assert!(s.bias.as_ref().is_none_or(|b| gf.get(b).is_none()));
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let (m, h, i, r) = (5, 4, 6, 2);
        let specs = block(DType::F64, (m, h, i, r))?;
        check_grad(&[m, h], |x| fused(x, &specs))?;
        let x = Tensor::randn(0f64, 1.0, (m, h), &Device::Cpu)?;
        // Through gate's B and down's A.
        check_grad(&[i, r], |b| {
            let mut s = specs.clone();
            s[0].ab = s[0].ab.take().map(|(a, _)| (a, b.clone()));
            fused(&x, &s)
        })?;
        check_grad(&[r, i], |a| {
            let mut s = specs.clone();
            s[2].ab = s[2].ab.take().map(|(_, b)| (a.clone(), b));
            fused(&x, &s)
        })
    }

    #[test]
    fn a_second_backward_pass_recomputes_what_the_first_took() -> Result<()> {
        let dev = Device::Cpu;
        let specs = block(DType::F32, (9, 8, 12, 2))?;
        let x = Var::randn(0f32, 1.0, (9, 8), &dev)?;
        let loss = fused(x.as_tensor(), &specs)?.sqr()?.sum_all()?;
        let first = loss.backward()?;
        let second = loss.backward()?;
        for t in std::iter::once(x.as_tensor().clone()).chain(vars(&specs)) {
            let (a, b) = (first.get(&t).expect("grad"), second.get(&t).expect("grad"));
            assert_eq!(max_diff(a, b)?, 0.0);
        }
        Ok(())
    }

    #[test]
    fn a_frozen_block_gives_only_the_input_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let mut specs = block(DType::F32, (6, 8, 12, 2))?;
        for s in &mut specs {
            s.ab = None;
            s.dropout = None;
        }
        let x = Var::randn(0f32, 1.0, (2, 3, 8), &dev)?;
        let f = fused(x.as_tensor(), &specs)?;
        let s = separate(x.as_tensor(), &specs)?;
        assert_eq!(f.dims(), &[2, 3, 8]);
        assert!(max_diff(&f, &s)? < 1e-5);
        let (gf, gs) = (f.sum_all()?.backward()?, s.sum_all()?.backward()?);
        let (a, b) = (gf.get(&x).expect("grad"), gs.get(&x).expect("grad"));
        assert!(max_diff(a, b)? < 1e-5);
        Ok(())
    }

    #[test]
    fn layers_that_do_not_chain_or_other_dtypes_are_refused() -> Result<()> {
        let mut specs = block(DType::F32, (6, 8, 12, 2))?;
        let x = Tensor::zeros((6, 8), DType::F32, &Device::Cpu)?;
        assert!(fused(&x.to_dtype(DType::BF16)?, &specs).is_err());
        specs[1].w = Tensor::zeros((11, 8), DType::F32, &Device::Cpu)?;
        specs[1].bias = None;
        assert!(fused(&x, &specs).is_err());
        Ok(())
    }
}
