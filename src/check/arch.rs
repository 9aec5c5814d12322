//! What the checker knows about each architecture: linear module names and shapes per layer,
//! the default LoRA targets, and parameter counts. Pure functions of a [`ModelShape`].

use super::hir::{Arch, LinearModule, ModelShape};

/// Short names of the linear layers that LoRA may target (and `all_linear` expands to).
pub fn linear_names(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Llama | Arch::Mistral | Arch::Qwen2 => &[
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ],
        Arch::Gpt2 => &["c_attn", "c_proj", "c_fc"],
        Arch::Bert => &["query", "key", "value", "dense"],
    }
}

/// Modules outside the layers that can be targeted (embeddings, output head).
pub fn special_names(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Llama | Arch::Mistral | Arch::Qwen2 => &["embed_tokens", "lm_head"],
        Arch::Gpt2 => &["wte", "lm_head"],
        Arch::Bert => &["word_embeddings", "classifier"],
    }
}

/// PEFT's default targets when none are given.
pub fn default_targets(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::Llama | Arch::Mistral | Arch::Qwen2 => &["q_proj", "v_proj"],
        Arch::Gpt2 => &["c_attn"],
        Arch::Bert => &["query", "value"],
    }
}

/// Every linear layer inside the transformer blocks, with full names and shapes.
pub fn linear_modules(s: &ModelShape) -> Vec<LinearModule> {
    let h = s.hidden;
    let i = s.intermediate;
    let hd = s.head_dim();
    let mut out = Vec::new();
    let mut push = |name: String, in_features: u64, out_features: u64| {
        out.push(LinearModule {
            name: name.into(),
            in_features,
            out_features,
        })
    };
    for l in 0..s.layers {
        match s.arch {
            Arch::Llama | Arch::Mistral | Arch::Qwen2 => {
                let p = format!("model.layers.{l}");
                push(format!("{p}.self_attn.q_proj"), h, s.heads * hd);
                push(format!("{p}.self_attn.k_proj"), h, s.kv_heads * hd);
                push(format!("{p}.self_attn.v_proj"), h, s.kv_heads * hd);
                push(format!("{p}.self_attn.o_proj"), s.heads * hd, h);
                push(format!("{p}.mlp.gate_proj"), h, i);
                push(format!("{p}.mlp.up_proj"), h, i);
                push(format!("{p}.mlp.down_proj"), i, h);
            }
            Arch::Gpt2 => {
                let p = format!("transformer.h.{l}");
                push(format!("{p}.attn.c_attn"), h, 3 * h);
                push(format!("{p}.attn.c_proj"), h, h);
                push(format!("{p}.mlp.c_fc"), h, i);
                push(format!("{p}.mlp.c_proj"), i, h);
            }
            Arch::Bert => {
                let p = format!("encoder.layer.{l}");
                push(format!("{p}.attention.self.query"), h, h);
                push(format!("{p}.attention.self.key"), h, h);
                push(format!("{p}.attention.self.value"), h, h);
                push(format!("{p}.attention.output.dense"), h, h);
                push(format!("{p}.intermediate.dense"), h, i);
                push(format!("{p}.output.dense"), i, h);
            }
        }
    }
    if s.arch == Arch::Bert {
        // The pooler over `[CLS]`: a linear layer outside the blocks, which PEFT's `all-linear`
        // and a `dense` target include.
        out.push(LinearModule {
            name: "pooler.dense".into(),
            in_features: h,
            out_features: h,
        });
    }
    out
}

/// Whether module `name` matches target `target` (PEFT's rule: equal, or a `.`-suffix).
pub fn matches(name: &str, target: &str) -> bool {
    name == target
        || (name.len() > target.len()
            && name.ends_with(target)
            && name.as_bytes().get(name.len() - target.len() - 1) == Some(&b'.'))
}

/// Parameter count computed from the sizes (used when no exact count is known).
pub fn param_count(s: &ModelShape) -> u64 {
    let h = s.hidden;
    let linear: u64 = linear_modules(s)
        .iter()
        .map(|m| m.in_features * m.out_features)
        .sum();
    let embed = s.vocab * h;
    let head = if s.tied_embeddings { 0 } else { s.vocab * h };
    match s.arch {
        Arch::Llama | Arch::Mistral | Arch::Qwen2 => {
            let bias = if s.arch == Arch::Qwen2 {
                s.layers * (h + 2 * s.kv_heads * s.head_dim())
            } else {
                0
            };
            linear + embed + head + s.layers * 2 * h + h + bias
        }
        Arch::Gpt2 => {
            let bias = s.layers * (3 * h + h + s.intermediate + h);
            linear + embed + s.context * h + s.layers * 4 * h + 2 * h + bias
        }
        Arch::Bert => {
            let bias = s.layers * (4 * h + s.intermediate + h);
            linear + embed + s.context * h + 2 * h + s.layers * 4 * h + 2 * h + bias + h
        }
    }
}
