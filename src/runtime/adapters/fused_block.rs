//! A llama-family block's attention (q, k, v, o around the attention) or feed-forward part
//! (`down(silu(gate(x)) * up(x))`) as one fused op ([`lora_attention`], [`lora_mlp`]) when all
//! its layers allow it: each frozen or with one plain LoRA adapter over a dense or packed base,
//! on the CPU in f32/f64 ([`AdaptableLinear::fused_plan`]). Dropout masks are drawn in the order
//! the separate layers draw them, so a seed gives the same training either way. Must not draw
//! anything unless the fused op runs: the caller then takes the separate layers.

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::ops::fused_attention::FusedAttention;
use crate::runtime::ops::lora_attention::lora_attention;
use crate::runtime::ops::lora_mlp::lora_mlp;
use candle_core::{Result, Tensor};

/// The feed-forward part's output for `x: [.., hidden]`, or `None` when a layer cannot be fused.
pub fn swiglu_mlp(
    x: &Tensor,
    [gate, up, down]: [&AdaptableLinear; 3],
    train: bool,
) -> Result<Option<Tensor>> {
    let (Some(g), Some(u), Some(d)) = (gate.fused_plan(x)?, up.fused_plan(x)?, down.fused_plan(x)?)
    else {
        return Ok(None);
    };
    let (inter, hidden) = gate.dims();
    if hidden == 0 || up.dims() != (inter, hidden) || down.dims() != (hidden, inter) {
        return Ok(None);
    }
    let rows = x.elem_count() / hidden;
    let g = g.layer(x.elem_count(), train);
    let u = u.layer(x.elem_count(), train);
    let d = d.layer(rows * inter, train);
    lora_mlp(x, [g, u, d]).map(Some)
}

/// The attention part's output `o(attention(q(x), k(x), v(x)))` for `x: [b, s, hidden]`, or
/// `None` when a layer cannot be fused or the attention's heads do not fit the layers.
pub(crate) fn attention(
    x: &Tensor,
    [q, k, v, o]: [&AdaptableLinear; 4],
    attention: FusedAttention,
    train: bool,
) -> Result<Option<Tensor>> {
    let plans = (
        q.fused_plan(x)?,
        k.fused_plan(x)?,
        v.fused_plan(x)?,
        o.fused_plan(x)?,
    );
    let (Some(pq), Some(pk), Some(pv), Some(po)) = plans else {
        return Ok(None);
    };
    let (wq, wk) = attention.widths();
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
    let n = x.elem_count();
    let rows = n / hidden.max(1);
    let layers = [
        pq.layer(n, train),
        pk.layer(n, train),
        pv.layer(n, train),
        po.layer(rows * wq, train),
    ];
    lora_attention(x, layers, attention).map(Some)
}
