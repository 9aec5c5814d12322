//! The activation memory of one micro-batch as the runtime holds it at its peak (the end of the
//! backward pass): every tensor candle's gradient graph keeps from the forward pass, plus the
//! gradients candle's backward computes and keeps for constant operands (bias broadcasts,
//! attention masks), plus one layer's worth of gradients in flight. Counted op by op from the
//! runtime's forward code (src/runtime/models/{bert,llama}.rs, adapters/linear.rs), in values per
//! token, and checked against measured peaks by `bash benches/memory_estimate.sh`. When a model's
//! forward code changes what it keeps, the counts here must follow. Must not read weights.

use super::arch::linear_modules;
use super::hir::*;

/// How a linear layer runs in training, for what it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinearKind {
    /// Frozen: the base product (and bias) only.
    Frozen,
    /// One LoRA adapter over a dense, NF4, FP4 or int8 base on the CPU in f32: one fused op
    /// (runtime/ops/lora_linear.rs) that keeps its output and, with dropout, the one-byte mask;
    /// inside a block op (runtime/ops/lora_attention.rs, lora_mlp.rs) also its input's
    /// down-projection `t` (`rank` values per token).
    Fused { dropout: bool, rank: u32 },
    /// The composite form (GGML-quantized base, DoRA, several adapters on one layer, other dtypes
    /// and devices): also the low-rank product and the sum, and with dropout the dropped input.
    Composite { dropout: bool },
}

/// Values per token that one linear layer keeps: its output (and, outside the fused op, the
/// bias sum and the kept gradient of the broadcast bias, when it has one) and what its adapter
/// keeps ([`LinearKind`]).
fn linear_values(in_f: u64, out_f: u64, bias: bool, kind: LinearKind) -> f64 {
    let (i, o) = (in_f as f64, out_f as f64);
    let mut v = o;
    if bias && !matches!(kind, LinearKind::Fused { .. }) {
        v += 2.0 * o;
    }
    match kind {
        LinearKind::Frozen => {}
        LinearKind::Fused { dropout, rank } => {
            v += f64::from(rank);
            if dropout {
                v += 0.25 * i;
            }
        }
        LinearKind::Composite { dropout } => {
            v += 2.0 * o;
            if dropout {
                v += 1.25 * i;
            }
        }
    }
    v
}

/// LoRA targets (full module names) of the train's adapters, with how each runs. `fused` says
/// whether a layer with one plain LoRA adapter runs as the fused op (dense base, CPU, f32);
/// `dense(module)` whether the fused op takes that module's base weight (dense, NF4, FP4, int8).
fn lora_targets<'a>(
    train: &'a Train,
    fused: bool,
    dense: &dyn Fn(&str) -> bool,
) -> Vec<(&'a str, LinearKind)> {
    let mut hits: Vec<(&str, bool, bool, u32)> = Vec::new();
    for a in &train.adapters {
        if let AdapterKind::Lora(l) = &a.kind {
            for m in &l.targets.modules {
                hits.push((&*m.name, l.dropout > 0.0, l.dora, l.r));
            }
        }
    }
    let mut out: Vec<(&str, LinearKind)> = Vec::new();
    for &(name, dropout, dora, rank) in &hits {
        if out.iter().any(|(n, _)| *n == name) {
            continue;
        }
        let count = hits.iter().filter(|(n, ..)| *n == name).count();
        let any_dropout = hits.iter().any(|(n, d, ..)| *n == name && *d);
        let kind = if fused && count == 1 && !dora && dense(name) {
            LinearKind::Fused { dropout, rank }
        } else {
            LinearKind::Composite {
                dropout: any_dropout,
            }
        };
        out.push((name, kind));
    }
    out
}

/// Values per token of one block: `targets` says how each adapted linear layer runs (the others
/// are frozen); `fused`: on the CPU in f32, where decoders' attention is one op; `stream`: also
/// no residual adapter, where a decoder's sub-blocks take the residual stream (their norm and
/// residual add inside the block ops, runtime/ops/lora_group.rs `PreNorm`).
fn block_values(
    shape: &ModelShape,
    (seq, layer): (u64, u64),
    targets: &[(&str, LinearKind)],
    (fused, stream): (bool, bool),
) -> f64 {
    let h = shape.hidden as f64;
    let i = shape.intermediate as f64;
    let hd = shape.head_dim() as f64;
    let qw = shape.heads as f64 * hd;
    let kvw = shape.kv_heads.max(1) as f64 * hd;
    // Attention scores per token: heads x keys.
    let s = shape.heads as f64 * seq as f64;
    let encoder = shape.arch.is_encoder();
    let biased = |name: &str| match shape.arch {
        Arch::Bert | Arch::Gpt2 => true,
        Arch::Qwen2 => {
            name.contains("q_proj") || name.contains("k_proj") || name.contains("v_proj")
        }
        Arch::Llama | Arch::Mistral => false,
    };
    let prefix_bert = format!("encoder.layer.{layer}.");
    let prefix_dec = format!("model.layers.{layer}.");
    let prefix_gpt = format!("transformer.h.{layer}.");
    let mut v = 0.0;
    for m in linear_modules(shape) {
        let n = &*m.name;
        if !(n.starts_with(&prefix_bert)
            || n.starts_with(&prefix_dec)
            || n.starts_with(&prefix_gpt))
        {
            continue;
        }
        let kind = targets
            .iter()
            .find(|(t, _)| *t == n)
            .map_or(LinearKind::Frozen, |(_, k)| *k);
        v += linear_values(m.in_features, m.out_features, biased(n), kind);
    }
    v + if encoder && fused {
        // BERT with attention as one op (runtime/ops/fused_attention.rs): the context (h), two
        // hidden dropouts (1.25h each), two residual sums with their layer norms (2h each), GELU
        // (i), the probabilities' one-byte dropout mask (0.25 s).
        7.5 * h + i + 0.25 * s
    } else if encoder {
        // BERT: q, k, v made contiguous per head (3h), the context copied back (2h), two hidden
        // dropouts (1.25h each), two residual sums with their layer norms (2h each), GELU (i);
        // scores, scaled, masked, softmax, dropped (5.25 s) and the mask's kept gradient (s).
        11.5 * h + i + 6.25 * s
    } else {
        // Decoders: two norms and two residual sums (4h); RoPE's copies and outputs of q and k
        // (2qw + 2kvw); the context and its copy (2qw); keys transposed and values made
        // contiguous (2kvw), or, with grouped heads, repeated (3qw); SiLU and the gated product
        // (2i; GPT-2's tanh GELU keeps about 6i); scores, scaled, masked, softmax (4 s) and the
        // mask's kept gradient (s).
        let kv = if shape.kv_heads.max(1) < shape.heads {
            3.0 * qw
        } else {
            2.0 * kvw
        };
        let mlp = if shape.arch == Arch::Gpt2 {
            6.0 * i
        } else {
            2.0 * i
        };
        if fused && shape.arch != Arch::Gpt2 {
            // Rotary embedding and attention as one op (runtime/ops/fused_attention.rs): it keeps
            // only its output, the context (qw). Taking the residual stream, the block ops'
            // outputs are the sums: o's and down's outputs (counted above) are not kept apart.
            let sums = if stream { 2.0 * h } else { 4.0 * h };
            sums + qw + mlp
        } else {
            4.0 * h + 4.0 * qw + 2.0 * kvw + kv + mlp + 5.0 * s
        }
    }
}

/// Bytes of activations at the backward pass's peak for `tokens = batch * seq` tokens in
/// `act_bytes`-byte values. Blocks from the first adapted one on keep their graph; one more
/// block's worth is in flight during backward. A train with no adapter inside the blocks (a head
/// alone) keeps no block graph: part of one frozen block's intermediates at a time. `fused`:
/// the train runs on the CPU in f32, where a layer with one LoRA adapter over a dense base
/// (`dense(module)`: a dense, NF4, FP4 or int8 base) is one op.
pub fn activation_bytes(
    train: &Train,
    shape: &ModelShape,
    (batch, seq): (u64, u64),
    act_bytes: u64,
    (fused, dense): (bool, &dyn Fn(&str) -> bool),
) -> u64 {
    let targets = lora_targets(train, fused, dense);
    let bottleneck = train
        .adapters
        .iter()
        .any(|a| matches!(a.kind, AdapterKind::Bottleneck(_)));
    let stream = fused && !bottleneck;
    let first = if bottleneck {
        Some(0)
    } else {
        (0..shape.layers).find(|l| {
            let p = [
                format!("encoder.layer.{l}."),
                format!("model.layers.{l}."),
                format!("transformer.h.{l}."),
            ];
            targets
                .iter()
                .any(|(t, _)| p.iter().any(|p| t.starts_with(p.as_str())))
        })
    };
    let values: f64 = match first {
        Some(f) => {
            let kept: f64 = (f..shape.layers)
                .map(|l| block_values(shape, (seq, l), &targets, (fused, stream)))
                .sum();
            let last = shape.layers.saturating_sub(1);
            kept + block_values(shape, (seq, last), &targets, (fused, stream))
        }
        // Without a graph each intermediate is freed once used: about half a block is live.
        None => 0.5 * block_values(shape, (seq, 0), &[], (fused, stream)),
    };
    let h = shape.hidden as f64;
    let bottleneck_values = if bottleneck {
        4.0 * h * shape.layers as f64
    } else {
        0.0
    };
    ((values + bottleneck_values) * (batch * seq) as f64 * act_bytes as f64) as u64
}
