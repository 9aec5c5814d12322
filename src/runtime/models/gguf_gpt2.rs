//! GPT-2 in a GGUF file (llama.cpp's `gpt2` architecture): Hugging Face GPT-2 names to GGUF
//! names, and the `config.json` equivalent of the metadata, as transformers 5.x reads such a
//! file (`GPT2TensorProcessor`, `GGUF_CONFIG_MAPPING["gpt2"]`).
//!
//! llama.cpp stores the `Conv1D` weights (`c_attn`, `c_proj`, `c_fc`) transposed, as `[out,
//! in]` linear weights; [`is_conv1d`] names them so the source serves them `[in, out]`-shaped
//! to the architecture and hands the stored `[out, in]` weight over unchanged (still
//! quantized). Must not read tensor data.

/// The GGUF name of a Hugging Face GPT-2 tensor name (with or without `transformer.`).
pub fn gpt2_name_to_gguf(name: &str) -> Option<String> {
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    let top = match name {
        "wte.weight" => Some("token_embd.weight"),
        "wpe.weight" => Some("position_embd.weight"),
        "ln_f.weight" => Some("output_norm.weight"),
        "ln_f.bias" => Some("output_norm.bias"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = name.strip_prefix("h.")?;
    let (layer, rest) = rest.split_once('.')?;
    layer.parse::<usize>().ok()?;
    let (module, kind) = rest.rsplit_once('.')?;
    if !matches!(kind, "weight" | "bias") {
        return None;
    }
    let g = match module {
        "ln_1" => "attn_norm",
        "attn.c_attn" => "attn_qkv",
        "attn.c_proj" => "attn_output",
        "ln_2" => "ffn_norm",
        "mlp.c_fc" => "ffn_up",
        "mlp.c_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// Whether a Hugging Face GPT-2 name is a `Conv1D` weight (stored transposed in GGUF).
pub fn is_conv1d(name: &str) -> bool {
    let name = name.strip_prefix("transformer.").unwrap_or(name);
    name.starts_with("h.")
        && [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The GPT-2 `config.json` from the metadata values (`gpt2.*` keys), as transformers builds it:
/// `n_positions` stays GPT2Config's default (1024) unless the position table says otherwise,
/// the inner size is `4 * n_embd`, the activation `gelu_new`, and the embeddings are tied only
/// when the file has no `output.weight`.
pub struct Gpt2Meta {
    pub n_embd: u64,
    pub n_layer: u64,
    pub n_head: u64,
    pub n_positions: u64,
    pub n_inner: u64,
    pub layer_norm_epsilon: f64,
    pub vocab_size: u64,
    pub bos: Option<u64>,
    pub eos: Option<u64>,
    pub tied: bool,
}

impl Gpt2Meta {
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_positions": self.n_positions,
            "n_inner": self.n_inner,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "vocab_size": self.vocab_size,
            "activation_function": "gelu_new",
            "tie_word_embeddings": self.tied,
            "bos_token_id": self.bos,
            "eos_token_id": self.eos,
            "torch_dtype": "float32",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_both_ways_of_spelling() {
        assert_eq!(
            gpt2_name_to_gguf("transformer.h.3.attn.c_attn.weight").as_deref(),
            Some("blk.3.attn_qkv.weight")
        );
        assert_eq!(
            gpt2_name_to_gguf("h.0.mlp.c_proj.bias").as_deref(),
            Some("blk.0.ffn_down.bias")
        );
        assert_eq!(
            gpt2_name_to_gguf("wpe.weight").as_deref(),
            Some("position_embd.weight")
        );
        assert_eq!(gpt2_name_to_gguf("h.x.ln_1.weight"), None);
        assert_eq!(gpt2_name_to_gguf("model.layers.0.mlp.up_proj.weight"), None);
        assert!(is_conv1d("transformer.h.1.mlp.c_fc.weight"));
        assert!(!is_conv1d("h.1.mlp.c_fc.bias"));
        assert!(!is_conv1d("h.1.ln_1.weight"));
    }
}
