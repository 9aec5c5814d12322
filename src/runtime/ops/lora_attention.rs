//! A llama-family attention block, `o(attention(q(x), k(x), v(x)))` with rotary embedding and
//! grouped-query heads, as one op with a hand-written backward pass, each of its four linear
//! layers frozen or with one LoRA adapter.
//!
//! As separate ops the block is five graph nodes (four [`super::lora_linear`] layers and
//! [`super::fused_attention`]) with the input read three times, and candle's backward gives
//! every node's output and input a zero-filled gradient buffer and an add, on one thread. Here
//! the block is one node whose only gradients are the input's and the packed LoRA matrices'
//! ([`super::lora_group`]; q, k, v, o):
//! - forward: `Q`, `K`, `V` from their layers, the context `C` from the attention's rows,
//!   `y = o(C)`; `Q`, `K`, `V` and `C` are kept (the separate ops keep the same four tensors);
//! - backward: `dC` from o's backward, `dQ`, `dK`, `dV` from the attention's, then `dx` from
//!   q's, k's and v's backward into one buffer, and every adapter's `dA`, `dB`.
//!
//! Each layer is [`LoraLinear`]'s arithmetic and the attention is [`FusedAttention`]'s, in the
//! same order as the separate ops (tests compare both forms, and the gradients with finite
//! differences). CPU, f32 and f64, `x: [b, s, hidden]`; [`lora_attention`] refuses anything
//! else and the caller takes the separate ops. Must never return a gradient for a frozen
//! weight, a bias, the rotary tables or the attention bias.

use super::fused_attention::{Float, FusedAttention};
use super::lora_group::{
    backward_tensors, forward_storage, packed_grad, Group, Kept, NormElem, PreNorm,
};
use super::lora_linear::LoraLinear;
use super::lora_stack;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

/// Buffers a forward pass keeps for the backward: `q`, `k`, `v`, the context, and each of
/// the four layers' LoRA input `t`.
const KEPT: usize = 8;

/// The op; use it through [`lora_attention`].
#[derive(Debug)]
struct LoraAttention {
    /// q, k, v, o.
    group: Group,
    attention: FusedAttention,
    /// `Q`, `K`, `V`, `C` and the four layers' LoRA inputs `t` ([`KEPT`]).
    kept: Kept,
    /// RMSNorm before and the residual add after, when the op takes the residual stream.
    pre: Option<PreNorm>,
}

impl LoraAttention {
    fn layers(&self) -> Result<[&LoraLinear; 4]> {
        match self.group.layers.as_slice() {
            [q, k, v, o] => Ok([q, k, v, o]),
            _ => candle_core::bail!("lora-attention: four layers expected"),
        }
    }

    /// `hidden`, checking that the layers and the attention's heads fit together.
    fn hidden(&self) -> Result<usize> {
        let [q, k, v, o] = self.layers()?;
        let (wq, wk) = self.attention.widths();
        let (_, h) = q.dims()?;
        let fits = q.dims()? == (wq, h)
            && k.dims()? == (wk, h)
            && v.dims()? == (wk, h)
            && o.dims()? == (h, wq);
        if !fits {
            candle_core::bail!(
                "lora-attention: q {:?}, k {:?}, v {:?}, o {:?} do not fit heads of {wq} / {wk}",
                q.dims()?,
                k.dims()?,
                v.dims()?,
                o.dims()?
            )
        }
        Ok(h)
    }

    /// `(y, [Q, K, V, C, t_q, t_k, t_v, t_o])` for `x` of `b` rows of `s` tokens.
    fn forward<T: NormElem + Float>(
        &self,
        x: &[T],
        p: &[T],
        (b, s): (usize, usize),
    ) -> Result<(Vec<T>, Vec<Vec<T>>)> {
        let h = self.hidden()?;
        let m = b * s;
        if x.len() != m * h {
            candle_core::bail!("lora-attention: input does not hold {b} rows of {s} x {h}")
        }
        let (wq, wk) = self.attention.widths();
        let ab = self.group.unpack(p)?;
        let [lq, lk, lv, lo] = self.layers()?;
        // The three products are independent: each one's serial stretches (gemm's packing of
        // `x`) overlap the others' work. Their outputs are allocated here, on the op's thread,
        // so the heap they come from does not depend on which worker runs a product.
        // SAFETY (`q`, `k`, `v`, `y`): `forward_into` overwrites its output whole (the base's
        // product does not accumulate); on an error every buffer is dropped unread.
        let (mut q, mut k, mut v) = unsafe {
            (
                super::uninit::<T>(m * wq),
                super::uninit::<T>(m * wk),
                super::uninit::<T>(m * wk),
            )
        };
        let product = |layer: &LoraLinear, (a, b): ((&[T], usize), &[T]), y: &mut [T]| {
            layer.forward_into(y, x, a, b, h)
        };
        // One product for the three layers' LoRA inputs: `tq` holds them all, `tk` and `tv`
        // are empty.
        let (tq, tk, tv) = if lora_stack::stackable(&[lq, lk, lv], &ab[..3]) {
            let qkv: &mut [&mut [T]] = &mut [&mut q, &mut k, &mut v];
            let t = lora_stack::forward(&[lq, lk, lv], &ab[..3], x, h, qkv)?;
            (t, Vec::new(), Vec::new())
        } else {
            let (rq, (rk, rv)) = rayon::join(
                || product(lq, ab[0], &mut q),
                || rayon::join(|| product(lk, ab[1], &mut k), || product(lv, ab[2], &mut v)),
            );
            (rq?, rk?, rv?)
        };
        let c = self.attention.forward_slices((&q, &k, &v), (b, s))?;
        let mut y = unsafe { super::uninit::<T>(m * h) };
        let to = lo.forward_into(&mut y, &c, ab[3].0, ab[3].1, wq)?;
        Ok((y, vec![q, k, v, c, tq, tk, tv, to]))
    }

    /// `(dx, dP)` for the output gradient `dy`; `dx` empty unless `need_dx`. Uses what the
    /// forward pass kept, or recomputes it.
    fn backward<T: NormElem + Float>(
        &self,
        (x, p, dy): (&[T], &[T], &[T]),
        (b, s): (usize, usize),
        need_dx: bool,
    ) -> Result<(Vec<T>, Vec<T>)> {
        let h = self.hidden()?;
        let m = b * s;
        let (wq, _) = self.attention.widths();
        let kept = match self.kept.take::<T>(KEPT) {
            Some(k) => k,
            None => self.forward(x, p, (b, s))?.1,
        };
        // The projections and the context, then the four layers' LoRA inputs `t`.
        let [q, k, v, c, tq, tk, tv, to]: [Vec<T>; KEPT] = kept
            .try_into()
            .map_err(|_| candle_core::Error::Msg("lora-attention: kept buffers".into()))?;
        let ab = self.group.unpack(p)?;
        let [lq, lk, lv, lo] = self.layers()?;
        // SAFETY: `backward_into` overwrites `dc` whole (not accumulating).
        let mut dc = unsafe { super::uninit::<T>(m * wq) };
        let ct = (c.as_slice(), Some(to.as_slice()));
        let grads_o = lo.backward_into(Some((&mut dc, false)), ct, ab[3].0, ab[3].1, dy, wq)?;
        drop(c);
        let (dq, dk, dv) = self.attention.backward_slices((&q, &k, &v), &dc, (b, s))?;
        drop((dc, q, k, v));
        // SAFETY: the first layer's `backward_into` overwrites `dx` whole (not accumulating),
        // the others add to it; it is empty unless `need_dx`.
        let mut dx = unsafe { super::uninit::<T>(if need_dx { m * h } else { 0 }) };
        let mut grads = Vec::with_capacity(4);
        if lora_stack::stackable(&[lq, lk, lv], &ab[..3]) {
            let (gs, into) = ([&dq[..], &dk, &dv], need_dx.then_some(dx.as_mut_slice()));
            let qkv = lora_stack::backward(&[lq, lk, lv], &ab[..3], (x, &tq), &gs, into, h)?;
            grads.extend(qkv);
        } else {
            let layers = [(lq, &dq, &tq), (lk, &dk, &tk), (lv, &dv, &tv)];
            for (i, (layer, g, t)) in layers.into_iter().enumerate() {
                let into = need_dx.then_some((dx.as_mut_slice(), i > 0));
                let xt = (x, Some(t.as_slice()));
                grads.push(layer.backward_into(into, xt, ab[i].0, ab[i].1, g, h)?);
            }
        }
        grads.push(grads_o);
        Ok((dx, packed_grad(grads)))
    }
}

/// `(b, s)` of an activation `[b, s, hidden]`.
fn rows(dims: &[usize], h: usize) -> Result<(usize, usize)> {
    match *dims {
        [b, s, hh] if hh == h => Ok((b, s)),
        _ => candle_core::bail!("lora-attention: input {dims:?} is not [b, s, {h}]"),
    }
}

impl CustomOp2 for LoraAttention {
    fn name(&self) -> &'static str {
        "lora-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: NormElem + Float>(
            op: &LoraAttention,
            inputs: [(&CpuStorage, &Layout); 2],
            bs: (usize, usize),
        ) -> Result<CpuStorage> {
            let (pre, kept) = (op.pre.as_ref(), &op.kept);
            forward_storage::<T>("lora-attention", (pre, kept), inputs, |x, p| {
                op.forward(x, p, bs)
            })
        }
        let bs = rows(l1.dims(), self.hidden()?)?;
        let out = match (s1, s2) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => run::<f32>(self, [(s1, l1), (s2, l2)], bs)?,
            (CpuStorage::F64(_), CpuStorage::F64(_)) => run::<f64>(self, [(s1, l1), (s2, l2)], bs)?,
            _ => candle_core::bail!("lora-attention: f32 or f64 inputs of one dtype only"),
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
        fn run<T: NormElem + Float>(
            op: &LoraAttention,
            tensors: [&Tensor; 3],
            bs: (usize, usize),
        ) -> Result<(Option<Tensor>, Option<Tensor>)> {
            let kept = (op.pre.as_ref(), &op.kept, KEPT);
            backward_tensors::<T>("lora-attention", kept, tensors, |x, p, dy, need_dx| {
                op.backward((x, p, dy), bs, need_dx)
            })
        }
        let bs = rows(x.dims(), self.hidden()?)?;
        match x.dtype() {
            DType::F32 => run::<f32>(self, [x, p, dy], bs),
            DType::F64 => run::<f64>(self, [x, p, dy], bs),
            d => candle_core::bail!("lora-attention: f32 or f64 only, not {d:?}"),
        }
    }
}

/// `o(attention(q(x), k(x), v(x)))` as one op for `x: [b, s, hidden]`: each layer with its
/// `(A, B)` when it has a LoRA adapter (its scale and dropout mask in the [`LoraLinear`]), the
/// attention built for `x`'s dtype ([`FusedAttention::new`]). An error unless every tensor is
/// on the CPU in `x`'s dtype, f32 or f64, and the shapes fit.
pub(crate) fn lora_attention(
    x: &Tensor,
    layers: [(LoraLinear, Option<(Tensor, Tensor)>); 4],
    attention: FusedAttention,
    pre: Option<PreNorm>,
) -> Result<Tensor> {
    if !x.device().is_cpu() {
        candle_core::bail!("lora-attention: CPU tensors only")
    }
    let (group, packed) = Group::pack(layers.into(), x.dtype())?;
    let op = LoraAttention {
        group,
        attention,
        kept: Kept::new(x.track_op() || packed.track_op()),
        pre,
    };
    rows(x.dims(), op.hidden()?)?;
    x.contiguous()?.apply_op2(&packed, op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ops::fused_attention::{fused_attention, Heads};
    use crate::runtime::ops::gradcheck::{check_grad, max_diff};
    use crate::runtime::ops::lora_group::testing::{
        assert_same_values_and_gradients, keep, vars, Spec,
    };
    use crate::runtime::ops::lora_group::PreNorm;
    use crate::runtime::ops::mask::{attention_bias, MaskKind, MaskSpec};
    use crate::runtime::ops::rope::{RopeScaling, RopeTables, Rotary};
    use candle_core::{Device, Var};

    const B: usize = 2;
    const S: usize = 5;
    const H: usize = 12;
    const HEADS: Heads = Heads {
        q: 4,
        kv: 2,
        dim: 4,
    };

    /// Rotary tables and a causal bias with right padding on the second row.
    fn setup(dtype: DType) -> Result<(RopeTables, Tensor)> {
        let dev = Device::Cpu;
        let rot = Rotary::new(HEADS.dim, 10000.0, &RopeScaling::None);
        let tables = RopeTables::new(&rot, &Rotary::positions(B, S, 0, &dev)?, dtype)?;
        let m = Tensor::new(&[[1u8, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &dev)?;
        let spec = MaskSpec {
            batch: B,
            q_len: S,
            k_len: S,
            offset: 0,
            kind: MaskKind::Causal,
            window: None,
        };
        Ok((tables, attention_bias(Some(&m), spec, dtype, &dev)?))
    }

    /// q with LoRA, a bias and dropout; k frozen; v with LoRA; o with LoRA and dropout.
    fn block(dtype: DType) -> Result<[Spec; 4]> {
        let dev = Device::Cpu;
        let (wq, wk, r, m) = (HEADS.q * HEADS.dim, HEADS.kv * HEADS.dim, 3, B * S);
        let t = |shape: (usize, usize)| -> Result<Tensor> {
            Tensor::randn(0f64, 0.5, shape, &dev)?.to_dtype(dtype)
        };
        let v = |shape: (usize, usize)| -> Result<Tensor> {
            Ok(Var::from_tensor(&t(shape)?)?.as_tensor().clone())
        };
        let spec = |out: usize, inp: usize, lora: bool| -> Result<Spec> {
            Ok(Spec {
                w: t((out, inp))?,
                bias: None,
                ab: match lora {
                    true => Some((v((r, inp))?, v((out, r))?)),
                    false => None,
                },
                scale: 0.5,
                dropout: None,
            })
        };
        let mut q = spec(wq, H, true)?;
        q.bias = Some(Tensor::randn(0f64, 0.5, wq, &dev)?.to_dtype(dtype)?);
        q.dropout = Some(keep(m * H, 2));
        let mut o = spec(H, wq, true)?;
        o.dropout = Some(keep(m * wq, 4));
        Ok([q, spec(wk, H, false)?, spec(wk, H, true)?, o])
    }

    fn separate(x: &Tensor, specs: &[Spec; 4], (t, bias): &(RopeTables, Tensor)) -> Result<Tensor> {
        let [q, k, v, o] = specs;
        let scale = 1.0 / (HEADS.dim as f64).sqrt();
        let c = fused_attention(
            (&q.separate(x)?, &k.separate(x)?, &v.separate(x)?),
            Some((&t.cos_half, &t.sin_half)),
            bias,
            (HEADS, scale),
            None,
        )?;
        o.separate(&c)
    }

    fn fused(x: &Tensor, specs: &[Spec; 4], (t, bias): &(RopeTables, Tensor)) -> Result<Tensor> {
        let scale = 1.0 / (HEADS.dim as f64).sqrt();
        let rope = Some((&t.cos_half, &t.sin_half));
        let op = FusedAttention::new(rope, bias, (HEADS, scale), None, x.dtype())?;
        let [q, k, v, o] = specs;
        lora_attention(x, [q.layer(), k.layer(), v.layer(), o.layer()], op, None)
    }

    #[test]
    fn forward_and_backward_equal_the_separate_ops() -> Result<()> {
        let dev = Device::Cpu;
        let tables = setup(DType::F32)?;
        let specs = block(DType::F32)?;
        let x = Var::randn(0f32, 1.0, (B, S, H), &dev)?;
        let f = fused(x.as_tensor(), &specs, &tables)?;
        let s = separate(x.as_tensor(), &specs, &tables)?;
        let (gf, checked) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        assert_eq!(checked, 7);
        for s in &specs {
            assert!(gf.get(&s.w).is_none());
            assert!(s.bias.as_ref().is_none_or(|b| gf.get(b).is_none()));
        }
        assert!(gf.get(&tables.1).is_none() && gf.get(&tables.0.cos_half).is_none());
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let tables = setup(DType::F64)?;
        let specs = block(DType::F64)?;
        check_grad(&[B, S, H], |x| fused(x, &specs, &tables))?;
        let x = Tensor::randn(0f64, 1.0, (B, S, H), &Device::Cpu)?;
        // Through v's A and q's B.
        check_grad(&[3, H], |a| {
            let mut s = specs.clone();
            s[2].ab = s[2].ab.take().map(|(_, b)| (a.clone(), b));
            fused(&x, &s, &tables)
        })?;
        check_grad(&[HEADS.q * HEADS.dim, 3], |b| {
            let mut s = specs.clone();
            s[0].ab = s[0].ab.take().map(|(a, _)| (a, b.clone()));
            fused(&x, &s, &tables)
        })
    }

    /// q, k and v with LoRA (ranks 3, 2, 3; scales 0.5, 1.5, 0.5) and no dropout: their LoRA
    /// products stacked (`lora_stack`); o with LoRA and dropout.
    fn stacked_block(dtype: DType) -> Result<[Spec; 4]> {
        let mut specs = block(dtype)?;
        specs[0].dropout = None;
        let (wk, dev) = (HEADS.kv * HEADS.dim, Device::Cpu);
        let v = |shape: (usize, usize)| -> Result<Tensor> {
            let t = Tensor::randn(0f64, 0.5, shape, &dev)?.to_dtype(dtype)?;
            Ok(Var::from_tensor(&t)?.as_tensor().clone())
        };
        specs[1].ab = Some((v((2, H))?, v((wk, 2))?));
        specs[1].scale = 1.5;
        Ok(specs)
    }

    #[test]
    fn stacked_lora_products_equal_the_separate_ops_with_the_right_gradients() -> Result<()> {
        let dev = Device::Cpu;
        // In f64: the stacked sums are ordered differently from the separate ops', and f32's
        // rounding of them can exceed the comparison's 1e-5.
        let tables = setup(DType::F64)?;
        let specs = stacked_block(DType::F64)?;
        let x = Var::randn(0f64, 1.0, (B, S, H), &dev)?;
        let f = fused(x.as_tensor(), &specs, &tables)?;
        let s = separate(x.as_tensor(), &specs, &tables)?;
        let (_, checked) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        assert_eq!(checked, 9);
        // q and v stacked around a frozen k (a rank of 0 inside the stack).
        let mut qv = specs.clone();
        qv[1].ab = None;
        let f = fused(x.as_tensor(), &qv, &tables)?;
        let s = separate(x.as_tensor(), &qv, &tables)?;
        let (_, checked) = assert_same_values_and_gradients(&f, &s, x.as_tensor(), &qv)?;
        assert_eq!(checked, 7);
        let tables = setup(DType::F64)?;
        let specs = stacked_block(DType::F64)?;
        check_grad(&[B, S, H], |x| fused(x, &specs, &tables))?;
        let x = Tensor::randn(0f64, 1.0, (B, S, H), &Device::Cpu)?;
        // Through k's A (the middle of the stack) and v's B.
        check_grad(&[2, H], |a| {
            let mut s = specs.clone();
            s[1].ab = s[1].ab.take().map(|(_, b)| (a.clone(), b));
            fused(&x, &s, &tables)
        })?;
        check_grad(&[HEADS.kv * HEADS.dim, 3], |b| {
            let mut s = specs.clone();
            s[2].ab = s[2].ab.take().map(|(a, _)| (a, b.clone()));
            fused(&x, &s, &tables)
        })
    }

    #[test]
    fn a_second_backward_pass_recomputes_what_the_first_took() -> Result<()> {
        let tables = setup(DType::F32)?;
        for specs in [block(DType::F32)?, stacked_block(DType::F32)?] {
            let x = Var::randn(0f32, 1.0, (B, S, H), &Device::Cpu)?;
            let loss = fused(x.as_tensor(), &specs, &tables)?.sqr()?.sum_all()?;
            let (first, second) = (loss.backward()?, loss.backward()?);
            for t in std::iter::once(x.as_tensor().clone()).chain(vars(&specs)) {
                let (a, b) = (first.get(&t).expect("grad"), second.get(&t).expect("grad"));
                assert_eq!(max_diff(a, b)?, 0.0);
            }
        }
        Ok(())
    }

    #[test]
    fn with_the_pre_norm_it_is_the_residual_stream_plus_the_block_of_the_normed_stream(
    ) -> Result<()> {
        let dev = Device::Cpu;
        let tables = setup(DType::F32)?;
        let specs = block(DType::F32)?;
        let w = (Tensor::randn(0f32, 0.3, H, &dev)? + 1.0)?;
        let pre = PreNorm {
            weight: w.clone(),
            eps: 1e-5,
        };
        let scale = 1.0 / (HEADS.dim as f64).sqrt();
        let fused = |x: &Tensor, pre: PreNorm, (t, bias): &(RopeTables, Tensor)| {
            let rope = Some((&t.cos_half, &t.sin_half));
            let op = FusedAttention::new(rope, bias, (HEADS, scale), None, x.dtype())?;
            let [q, k, v, o] = &specs;
            lora_attention(
                x,
                [q.layer(), k.layer(), v.layer(), o.layer()],
                op,
                Some(pre),
            )
        };
        let x = Var::randn(0f32, 1.0, (B, S, H), &dev)?;
        let f = fused(x.as_tensor(), pre.clone(), &tables)?;
        let normed = crate::runtime::ops::norm::rms_norm(x.as_tensor(), &w, 1e-5)?;
        let s = (x.as_tensor() + separate(&normed, &specs, &tables)?)?;
        assert_same_values_and_gradients(&f, &s, x.as_tensor(), &specs)?;
        Ok(())
    }

    #[test]
    fn layers_that_do_not_fit_the_heads_or_inputs_that_are_not_3d_are_refused() -> Result<()> {
        let tables = setup(DType::F32)?;
        let mut specs = block(DType::F32)?;
        let x = Tensor::zeros((B, S, H), DType::F32, &Device::Cpu)?;
        assert!(fused(&x.reshape((B * S, H))?, &specs, &tables).is_err());
        specs[1].w = Tensor::zeros((5, H), DType::F32, &Device::Cpu)?;
        assert!(fused(&x, &specs, &tables).is_err());
        Ok(())
    }
}
