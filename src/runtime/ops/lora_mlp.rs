//! A feed-forward block as one op with a hand-written backward pass: the llama family's
//! `down(silu(gate(x)) * up(x))` or BERT's `output(gelu(intermediate(x)))`, each linear layer
//! frozen or with one LoRA adapter.
//!
//! As separate ops the block makes five graph nodes (three [`super::lora_linear`] layers, the
//! SwiGLU product, and the input read twice), and candle's backward gives each of their outputs
//! and inputs a zero-filled gradient buffer and adds into it, on one thread: for a tiny-llama
//! LoRA step the `[tokens, intermediate]` gradients of gate, up and the product were most of
//! that serial time (`benches/train_vs_torch.py --profile`). Here the block is one node whose
//! only gradients are the input's and the packed LoRA matrices':
//! - forward: `G = gate(x)`, `U = up(x)`, `H = silu(G) U` (or `U = up(x)`, `H = gelu(U)`),
//!   `y = down(H)`; the pre-activations and `H` are kept for the backward pass (the separate
//!   ops keep the same tensors), for GELU `Φ(U)` in place of `H` (the backward pass forms
//!   `H = U Φ(U)` again with the forward's bits instead of evaluating `erf` again);
//! - backward: `dH` from `down`'s backward, the pre-activations' gradients from SwiGLU's (or
//!   GELU's), then `dx` from the first layers' backward into one buffer, and every adapter's
//!   `dA`, `dB`.
//!
//! The LoRA matrices come packed in one 1-D tensor ([`super::lora_group`]; gate, up, down), so
//! the op has two inputs. The layers' arithmetic is
//! [`LoraLinear`]'s, in the same order of operations as the separate ops (tests compare both
//! forms and the gradients with finite differences). CPU, f32 and f64 ([`lora_mlp`] refuses
//! anything else; the caller takes the separate ops). Must never return a gradient for a
//! frozen weight or bias.

use super::gelu;
use super::lora_group::{
    backward_tensors, forward_storage, packed_grad, Group, Kept, NormElem, PreNorm,
};
use super::lora_linear::LoraLinear;
use super::lora_stack;
use super::swiglu;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// The activation between the first layer(s) and the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` of two first layers, gate then up (the llama family).
    SwiGlu,
    /// The exact (erf) GELU of one first layer (BERT's `gelu`).
    GeluErf,
}

impl Activation {
    /// How many layers feed the activation.
    pub fn inputs(self) -> usize {
        match self {
            Activation::SwiGlu => 2,
            Activation::GeluErf => 1,
        }
    }
}

/// The element types the op computes in.
trait Real: NormElem + swiglu::Float + gelu::Float {}
impl<T: NormElem + swiglu::Float + gelu::Float> Real for T {}

/// The op; use it through [`lora_mlp`].
#[derive(Debug)]
struct LoraMlp {
    activation: Activation,
    /// The first layer(s), then the last.
    group: Group,
    /// The first layers' outputs, the activation's, then every layer's LoRA input `t`.
    kept: Kept,
    /// RMSNorm before and the residual add after, when the op takes the residual stream.
    pre: Option<PreNorm>,
}

impl LoraMlp {
    /// The first layer(s) and the last.
    fn layers(&self) -> Result<(&[LoraLinear], &LoraLinear)> {
        match self.group.layers.split_last() {
            Some((last, first)) if first.len() == self.activation.inputs() => Ok((first, last)),
            _ => candle_core::bail!(
                "lora-mlp: {} layers for {:?}",
                self.group.layers.len(),
                self.activation
            ),
        }
    }

    /// `(hidden, intermediate)`, checking that the layers chain.
    fn dims(&self) -> Result<(usize, usize)> {
        let (first, last) = self.layers()?;
        let (h, i) = last.dims()?;
        for l in first {
            if l.dims()? != (i, h) {
                candle_core::bail!(
                    "lora-mlp: a {:?} layer does not feed a {:?} one",
                    l.dims()?,
                    last.dims()?
                )
            }
        }
        Ok((h, i))
    }

    /// `(y, kept)` for `x: [m, hidden]`: the first layers' outputs, the activation's, then every
    /// layer's LoRA input `t`.
    fn forward<T: Real>(&self, x: &[T], p: &[T]) -> Result<(Vec<T>, Vec<Vec<T>>)> {
        let (h, i) = self.dims()?;
        let m = x.len().checked_div(h).unwrap_or(0);
        let ab = self.group.unpack(p)?;
        let (first, last) = self.layers()?;
        // The outputs are allocated here, on the op's thread, so the heap they come from does
        // not depend on which worker runs a product (peaks stay as predictable as without).
        // SAFETY (`kept`, `y`): `forward_into` overwrites its output whole (the base's product
        // does not accumulate); on an error every buffer is dropped unread.
        let mut kept: Vec<Vec<T>> = (first.iter())
            .map(|_| unsafe { super::uninit::<T>(m * i) })
            .collect();
        let mut ts = match (first, kept.as_mut_slice()) {
            // One product for both layers' LoRA inputs: `ts[0]` holds both, `ts[1]` is empty.
            ([g, u], [yg, yu]) if lora_stack::stackable(&[g, u], &ab[..2]) => {
                vec![
                    lora_stack::forward(&[g, u], &ab[..2], x, h, &mut [yg, yu])?,
                    Vec::new(),
                ]
            }
            // Independent products: each one's serial stretches (gemm's packing of `x`)
            // overlap the other's work.
            ([g, u], [yg, yu]) => {
                let (rg, ru) = rayon::join(
                    || g.forward_into(yg, x, ab[0].0, ab[0].1, h),
                    || u.forward_into(yu, x, ab[1].0, ab[1].1, h),
                );
                vec![rg?, ru?]
            }
            ([u], [yu]) => vec![u.forward_into(yu, x, ab[0].0, ab[0].1, h)?],
            _ => candle_core::bail!("lora-mlp: one or two first layers"),
        };
        // What the backward pass reads besides the pre-activations: `H` for SwiGLU, `Φ(U)`
        // for GELU (`H = U Φ(U)` is one product to form again, `Φ` an `erf` per value).
        let (act, keep) = match (self.activation, kept.as_slice()) {
            (Activation::SwiGlu, [g, u]) => (swiglu::forward(g, u), None),
            // Without a backward pass to follow (evaluation) `Φ` is not written out.
            (Activation::GeluErf, [u]) if !self.kept.enabled() => (gelu::forward(u), None),
            (Activation::GeluErf, [u]) => {
                let (act, cdf) = gelu::forward_keep(u);
                (act, Some(cdf))
            }
            _ => candle_core::bail!("lora-mlp: layers do not fit {:?}", self.activation),
        };
        let mut y = unsafe { super::uninit::<T>(m * h) };
        let n = first.len();
        ts.push(last.forward_into(&mut y, &act, ab[n].0, ab[n].1, i)?);
        kept.push(keep.unwrap_or(act));
        kept.extend(ts);
        Ok((y, kept))
    }

    /// `(dx, dP)` for the output gradient `dy`; `dx` empty unless `need_dx`. Uses what the
    /// forward pass kept, or recomputes it.
    fn backward<T: Real>(
        &self,
        x: &[T],
        p: &[T],
        dy: &[T],
        need_dx: bool,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let (h, i) = self.dims()?;
        let m = x.len().checked_div(h).unwrap_or(0);
        let (first, last) = self.layers()?;
        let n = first.len();
        let mut kept = match self.kept.take::<T>(2 * (n + 1)) {
            Some(k) => k,
            None => self.forward(x, p)?.1,
        };
        // The first layers' outputs and the activation, then each layer's LoRA input `t`.
        let ts = kept.split_off(n + 1);
        let kept_t = |j: usize| ts.get(j).map(|t| t.as_slice());
        let kept_act = kept
            .pop()
            .ok_or_else(|| candle_core::Error::Msg("lora-mlp: kept buffers".into()))?;
        let ab = self.group.unpack(p)?;
        // SAFETY: `backward_into` overwrites `d_act` whole (not accumulating).
        let mut d_act = unsafe { super::uninit::<T>(m * i) };
        // SwiGLU kept `H`; GELU kept `Φ(U)`, and `H = Φ(U) U` is formed again bit for bit (after
        // `d_act`, so that the heap's top is what is freed first).
        let (act, cdf) = match (self.activation, kept.as_slice()) {
            (Activation::GeluErf, [u]) => (gelu::times(&kept_act, u), Some(kept_act)),
            _ => (kept_act, None),
        };
        let grads_last = last.backward_into(
            Some((&mut d_act, false)),
            (&act, kept_t(n)),
            ab[n].0,
            ab[n].1,
            dy,
            i,
        )?;
        drop(act);
        let d_pre = match (self.activation, kept.as_slice(), &cdf) {
            (Activation::SwiGlu, [g, u], None) => swiglu::backward(&d_act, g, u),
            (Activation::GeluErf, [u], Some(cdf)) => gelu::backward_from_cdf(&d_act, u, cdf),
            _ => candle_core::bail!("lora-mlp: kept buffers do not fit {:?}", self.activation),
        };
        drop((d_act, kept, cdf));
        // SAFETY: the first layer's `backward_into` overwrites `dx` whole (not accumulating),
        // the others add to it; it is empty unless `need_dx`.
        let mut dx = unsafe { super::uninit::<T>(if need_dx { m * h } else { 0 }) };
        let mut grads = Vec::with_capacity(n + 1);
        let layers: Vec<&LoraLinear> = first.iter().collect();
        if lora_stack::stackable(&layers, &ab[..n]) {
            let t = kept_t(0).unwrap_or_default();
            let gs: Vec<&[T]> = d_pre.chunks(m * i).collect();
            let into = need_dx.then_some(dx.as_mut_slice());
            grads.extend(lora_stack::backward(
                &layers,
                &ab[..n],
                (x, t),
                &gs,
                into,
                h,
            )?);
        } else {
            for (j, (layer, d)) in first.iter().zip(d_pre.chunks(m * i)).enumerate() {
                let into = need_dx.then_some((dx.as_mut_slice(), j > 0));
                grads.push(layer.backward_into(into, (x, kept_t(j)), ab[j].0, ab[j].1, d, h)?);
            }
        }
        grads.push(grads_last);
        Ok((dx, packed_grad(grads)))
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
        fn run<T: Real>(op: &LoraMlp, inputs: [(&CpuStorage, &Layout); 2]) -> Result<CpuStorage> {
            let (pre, kept) = (op.pre.as_ref(), &op.kept);
            forward_storage::<T>("lora-mlp", (pre, kept), inputs, |x, p| op.forward(x, p))
        }
        let (h, _) = self.dims()?;
        if l1.dims().last() != Some(&h) {
            candle_core::bail!("lora-mlp: input {:?} is not [.., {h}]", l1.dims())
        }
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => run::<f32>(self, [(s1, l1), (s2, l2)])?,
            (CpuStorage::F64(_), CpuStorage::F64(_)) => run::<f64>(self, [(s1, l1), (s2, l2)])?,
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
        fn run<T: Real>(
            op: &LoraMlp,
            tensors: [&Tensor; 3],
        ) -> Result<(Option<Tensor>, Option<Tensor>)> {
            let kept = (op.pre.as_ref(), &op.kept, 2 * (op.activation.inputs() + 1));
            backward_tensors::<T>("lora-mlp", kept, tensors, |x, p, dy, need_dx| {
                op.backward(x, p, dy, need_dx)
            })
        }
        match x.dtype() {
            DType::F32 => run::<f32>(self, [x, p, dy]),
            DType::F64 => run::<f64>(self, [x, p, dy]),
            d => candle_core::bail!("lora-mlp: f32 or f64 only, not {d:?}"),
        }
    }
}

/// `last(act(first(x)))` as one op for `x: [.., hidden]`: the layers in order (gate, up, down
/// for [`Activation::SwiGlu`]; up, down for [`Activation::GeluErf`]), each with its `(A, B)`
/// when it has a LoRA adapter (its scale and dropout mask in the [`LoraLinear`]). An error
/// unless every tensor is on the CPU in `x`'s dtype, f32 or f64, and the shapes chain.
pub(crate) fn lora_mlp(
    x: &Tensor,
    activation: Activation,
    layers: Vec<(LoraLinear, Option<(Tensor, Tensor)>)>,
    pre: Option<PreNorm>,
) -> Result<Tensor> {
    if !x.device().is_cpu() {
        candle_core::bail!("lora-mlp: CPU tensors only")
    }
    let (group, packed) = Group::pack(layers, x.dtype())?;
    let op = LoraMlp {
        activation,
        group,
        kept: Kept::new(x.track_op() || packed.track_op()),
        pre,
    };
    op.dims()?;
    x.contiguous()?.apply_op2(&packed, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::gelu::gelu_erf;
    use crate::runtime::ops::gradcheck::{check_grad, max_diff};
    use crate::runtime::ops::lora_group::testing::{
        assert_same_values_and_gradients, keep, vars, Spec,
    };
    use crate::runtime::ops::lora_group::PreNorm;
    use crate::runtime::ops::swiglu::swiglu;
    use candle_core::{Device, Var};

    fn separate(x: &Tensor, [g, u, d]: &[Spec; 3]) -> Result<Tensor> {
        d.separate(&swiglu(&g.separate(x)?, &u.separate(x)?)?)
    }

    fn fused(x: &Tensor, [g, u, d]: &[Spec; 3]) -> Result<Tensor> {
        lora_mlp(
            x,
            Activation::SwiGlu,
            vec![g.layer(), u.layer(), d.layer()],
            None,
        )
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

    #[test]
    fn forward_and_backward_equal_the_separate_ops() -> Result<()> {
        let dev = Device::Cpu;
        let (m, h, i, r) = (37, 24, 40, 4);
        let specs = block(DType::F32, (m, h, i, r))?;
        let x = Var::randn(0f32, 1.0, (m, h), &dev)?;
        let f = fused(x.as_tensor(), &specs)?;
        let s = separate(x.as_tensor(), &specs)?;
        let (gf, checked) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        assert_eq!(checked, 5);
        // No gradient for a frozen weight or bias.
        for s in &specs {
            assert!(gf.get(&s.w).is_none());
            assert!(s.bias.as_ref().is_none_or(|b| gf.get(b).is_none()));
        }
        Ok(())
    }

    /// gate and up with LoRA (ranks `r` and 3, scales 0.7 and 1.5) and no dropout: their LoRA
    /// products stacked (`lora_stack`); down with LoRA and dropout.
    fn stacked_block(
        dtype: DType,
        (m, h, i, r): (usize, usize, usize, usize),
    ) -> Result<[Spec; 3]> {
        let mut specs = block(dtype, (m, h, i, r))?;
        specs[0].dropout = None;
        let dev = Device::Cpu;
        let v = |shape: (usize, usize)| -> Result<Tensor> {
            let t = Tensor::randn(0f64, 0.5, shape, &dev)?.to_dtype(dtype)?;
            Ok(Var::from_tensor(&t)?.as_tensor().clone())
        };
        specs[1].ab = Some((v((3, h))?, v((i, 3))?));
        specs[1].scale = 1.5;
        Ok(specs)
    }

    #[test]
    fn stacked_lora_products_equal_the_separate_ops_with_the_right_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // In f64: the stacked sums are ordered differently from the separate ops', and f32's
        // rounding of them can exceed the comparison's 1e-5; 300 tokens cross a chunk of the
        // factor sums.
        for (dtype, m) in [(DType::F64, 37), (DType::F64, 300)] {
            let (h, i, r) = (24, 40, 4);
            let specs = stacked_block(dtype, (m, h, i, r))?;
            let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (m, h), &dev)?.to_dtype(dtype)?)?;
            let f = fused(x.as_tensor(), &specs)?;
            let s = separate(x.as_tensor(), &specs)?;
            let (_, checked) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
            assert_eq!(checked, 7);
        }
        let (m, h, i, r) = (5, 4, 6, 2);
        let specs = stacked_block(DType::F64, (m, h, i, r))?;
        check_grad(&[m, h], |x| fused(x, &specs))?;
        let x = Tensor::randn(0f64, 1.0, (m, h), &Device::Cpu)?;
        // Through up's A (the second in the stack) and gate's B.
        check_grad(&[3, h], |a| {
            let mut s = specs.clone();
            s[1].ab = s[1].ab.take().map(|(_, b)| (a.clone(), b));
            fused(&x, &s)
        })?;
        check_grad(&[i, r], |b| {
            let mut s = specs.clone();
            s[0].ab = s[0].ab.take().map(|(a, _)| (a, b.clone()));
            fused(&x, &s)
        })
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
    fn a_gelu_block_equals_the_separate_ops_and_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let (m, h, i, r) = (19, 12, 20, 3);
        let [_, up, down] = block(DType::F32, (m, h, i, r))?;
        let specs = [up, down];
        let fused = |x: &Tensor, [u, d]: &[Spec; 2]| {
            lora_mlp(x, Activation::GeluErf, vec![u.layer(), d.layer()], None)
        };
        let separate = |x: &Tensor, [u, d]: &[Spec; 2]| d.separate(&gelu_erf(&u.separate(x)?)?);
        let x = Var::randn(0f32, 1.0, (m, h), &dev)?;
        let (f, s) = (
            fused(x.as_tensor(), &specs)?,
            separate(x.as_tensor(), &specs)?,
        );
        assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        let [_, up, down] = block(DType::F64, (5, 4, 6, 2))?;
        let specs = [up, down];
        check_grad(&[5, 4], |x| fused(x, &specs))?;
        // Two layers do not make a SwiGLU block, three not a GELU one.
        assert!(lora_mlp(
            x.as_tensor(),
            Activation::SwiGlu,
            vec![specs[0].layer()],
            None
        )
        .is_err());
        Ok(())
    }

    #[test]
    fn with_the_pre_norm_it_is_the_residual_stream_plus_the_block_of_the_normed_stream(
    ) -> Result<()> {
        let dev = Device::Cpu;
        let (m, h, i, r) = (21, 16, 24, 2);
        let specs = block(DType::F32, (m, h, i, r))?;
        let w = (Tensor::randn(0f32, 0.3, h, &dev)? + 1.0)?;
        let pre = PreNorm {
            weight: w.clone(),
            eps: 1e-5,
        };
        let [g, u, d] = &specs;
        let layers = || vec![g.layer(), u.layer(), d.layer()];
        let x = Var::randn(0f32, 1.0, (3, 7, h), &dev)?;
        let f = lora_mlp(
            x.as_tensor(),
            Activation::SwiGlu,
            layers(),
            Some(pre.clone()),
        )?;
        let normed = crate::runtime::ops::norm::rms_norm(x.as_tensor(), &w, 1e-5)?;
        let s = (x.as_tensor() + separate(&normed, &specs)?)?;
        let (gf, _) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        assert!(gf.get(&w).is_none());
        // f64, through the stream and a second backward pass (the normed input recomputed).
        let specs = block(DType::F64, (5, 4, 6, 2))?;
        let pre = PreNorm {
            weight: (Tensor::randn(0f64, 0.3, 4, &dev)? + 1.0)?,
            eps: 1e-6,
        };
        let [g, u, d] = &specs;
        let fused = |x: &Tensor| {
            let layers = vec![g.layer(), u.layer(), d.layer()];
            lora_mlp(x, Activation::SwiGlu, layers, Some(pre.clone()))
        };
        check_grad(&[5, 4], fused)?;
        let x = Var::randn(0f64, 1.0, (5, 4), &dev)?;
        let loss = fused(x.as_tensor())?.sqr()?.sum_all()?;
        let (first, second) = (loss.backward()?, loss.backward()?);
        let (a, b) = (first.get(&x).expect("grad"), second.get(&x).expect("grad"));
        assert_eq!(max_diff(a, b)?, 0.0);
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
