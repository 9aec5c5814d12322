//! A transformer block's attention part (q, k, v, o around the attention) or feed-forward part
//! (llama's `down(silu(gate(x)) * up(x))`, BERT's `output(gelu(intermediate(x)))`) as one
//! fused op ([`lora_attention`], [`lora_mlp`]) when all its layers allow it: each frozen or
//! with one plain LoRA adapter over a dense or packed base, on the CPU in f32/f64
//! ([`AdaptableLinear::fused_plan`]). Dropout masks are drawn in the order the separate layers
//! draw them, so a seed gives the same training either way. Must not draw anything unless the
//! fused op runs: the caller then takes the separate layers. Given a pre-norm (`(weight, eps)`
//! of an RMSNorm), a part takes the residual stream `h` and returns `h + part(rms_norm(h))`,
//! the norm and the residual add inside the op.

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::ops::fused_attention::{FusedAttention, Heads};
use crate::runtime::ops::lora_attention::lora_attention;
use crate::runtime::ops::lora_group::PreNorm;
use crate::runtime::ops::lora_mlp::{lora_mlp, Activation};
use candle_core::{Result, Tensor};

/// The feed-forward part's output `last(act(first(x)))` for `x: [.., hidden]` (layers gate,
/// up, down for SwiGLU; intermediate, output for GELU), or `None` when a layer cannot be fused.
pub(crate) fn mlp(
    x: &Tensor,
    activation: Activation,
    layers: &[&AdaptableLinear],
    (train, pre): (bool, Option<(&Tensor, f64)>),
) -> Result<Option<Tensor>> {
    let Some((last, first)) = layers.split_last() else {
        return Ok(None);
    };
    let (hidden, inter) = last.dims();
    let chains = first.len() == activation.inputs()
        && hidden > 0
        && x.dims().last() == Some(&hidden)
        && first.iter().all(|l| l.dims() == (inter, hidden));
    if !chains {
        return Ok(None);
    }
    let mut plans = Vec::with_capacity(layers.len());
    for l in layers {
        match l.fused_plan(x)? {
            Some(p) => plans.push(p),
            None => return Ok(None),
        }
    }
    let rows = x.elem_count() / hidden;
    let n = first.len();
    let layers = plans
        .into_iter()
        .enumerate()
        .map(|(j, p)| match j < n {
            true => p.layer(x.elem_count(), train),
            false => p.layer(rows * inter, train),
        })
        .collect();
    let Some(pre) = pre_norm(x, pre, hidden)? else {
        return Ok(None);
    };
    lora_mlp(x, activation, layers, pre).map(Some)
}

/// The attention part's output `o(attention(q(x), k(x), v(x)))` for `x: [b, s, hidden]`, or
/// `None` when a layer cannot be fused or the attention's heads do not fit the layers. The
/// attention is made by `attention` after q's, k's and v's dropout masks are drawn and before
/// o's (the order of the separate ops), so it may draw its own.
pub(crate) fn attention(
    x: &Tensor,
    [q, k, v, o]: [&AdaptableLinear; 4],
    (heads, attention): (Heads, impl FnOnce() -> Result<FusedAttention>),
    (train, pre): (bool, Option<(&Tensor, f64)>),
) -> Result<Option<Tensor>> {
    let (wq, wk) = (heads.q * heads.dim, heads.kv * heads.dim);
    let hidden = q.dims().1;
    let fits = x.rank() == 3
        && x.dim(2)? == hidden
        && q.dims() == (wq, hidden)
        && k.dims() == (wk, hidden)
        && v.dims() == (wk, hidden)
        && o.dims() == (hidden, wq);
    if !fits {
        return Ok(None);
    }
    let Some(pre) = pre_norm(x, pre, hidden)? else {
        return Ok(None);
    };
    let plans = (
        q.fused_plan(x)?,
        k.fused_plan(x)?,
        v.fused_plan(x)?,
        o.fused_plan(x)?,
    );
    let (Some(pq), Some(pk), Some(pv), Some(po)) = plans else {
        return Ok(None);
    };
    let n = x.elem_count();
    let rows = n / hidden.max(1);
    let (lq, lk, lv) = (pq.layer(n, train), pk.layer(n, train), pv.layer(n, train));
    let attention = attention()?;
    if attention.widths() != (wq, wk) {
        candle_core::bail!("fused attention: heads do not match the layers")
    }
    let lo = po.layer(rows * wq, train);
    lora_attention(x, [lq, lk, lv, lo], attention, pre).map(Some)
}

/// The pre-norm of a block that takes the residual stream: `Some(None)` without one,
/// `None` when its weight does not fit (the caller takes the separate ops).
fn pre_norm(
    x: &Tensor,
    pre: Option<(&Tensor, f64)>,
    hidden: usize,
) -> Result<Option<Option<PreNorm>>> {
    let Some((w, eps)) = pre else {
        return Ok(Some(None));
    };
    if w.dims() != [hidden] || !w.device().is_cpu() {
        return Ok(None);
    }
    let weight = w.to_dtype(x.dtype())?.contiguous()?;
    Ok(Some(Some(PreNorm { weight, eps })))
}
