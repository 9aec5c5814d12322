//! A llama-family feed-forward block (`down(silu(gate(x)) * up(x))`) as one fused op
//! ([`lora_mlp`](crate::runtime::ops::lora_mlp)) when all three layers allow it: each frozen or
//! with one plain LoRA adapter over a dense or packed base, on the CPU in f32/f64
//! ([`AdaptableLinear::fused_plan`]). Dropout masks are drawn in the order the separate layers
//! draw them (gate, up, down), so a seed gives the same training either way. Must not draw
//! anything unless the fused op runs: the caller then takes the separate layers.

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::ops::lora_mlp::lora_mlp;
use candle_core::{Result, Tensor};

/// The block's output for `x: [.., hidden]`, or `None` when a layer cannot be fused.
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
