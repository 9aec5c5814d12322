//! A model built from a GGUF file, with its merged adapters, saved as a Hugging Face folder:
//! every tensor of the file under its Hugging Face llama name, dequantized to f32 (linear
//! weights as the layers now hold them, adapters merged; Q and K rows in Hugging Face order),
//! plus the `config.json` and tokenizer files made from the metadata. The result loads in
//! transformers like any llama checkpoint. Must not write adapters that are not merged.

use crate::runtime::model_api::AdaptableModel;
use crate::runtime::models::gguf::{hf_name_to_gguf, GgufModel};
use crate::runtime::models::source::{LoadError, TensorSource};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// The Hugging Face names of a llama-family GGUF file's tensors.
fn hf_names(gguf: &GgufModel) -> Vec<String> {
    let layers = gguf
        .gguf_tensor_names()
        .iter()
        .filter_map(|n| {
            n.strip_prefix("blk.")?
                .split('.')
                .next()?
                .parse::<usize>()
                .ok()
        })
        .max()
        .map_or(0, |m| m + 1);
    let mut names = vec![
        "model.embed_tokens.weight".to_string(),
        "model.norm.weight".to_string(),
        "lm_head.weight".to_string(),
    ];
    for l in 0..layers {
        for module in [
            "input_layernorm",
            "post_attention_layernorm",
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ] {
            for kind in ["weight", "bias"] {
                names.push(format!("model.layers.{l}.{module}.{kind}"));
            }
        }
    }
    names
        .into_iter()
        .filter(|n| hf_name_to_gguf(n).is_some() && gguf.contains(n))
        .collect()
}

/// Writes `model` (built from `gguf`) to `out`: `model.safetensors` and the files of `hf_files`
/// (the `config.json` and tokenizer files the model stage made from the metadata).
pub fn save_merged_gguf(
    model: &dyn AdaptableModel,
    gguf: &GgufModel,
    hf_files: &Path,
    out: &Path,
) -> Result<(), LoadError> {
    let io = |p: &Path, e: &dyn std::fmt::Display| LoadError::Other {
        file: p.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(out).map_err(|e| io(out, &e))?;
    let layers: HashMap<String, _> = model
        .linears()
        .into_iter()
        .map(|l| (format!("{}.weight", l.path), l))
        .collect();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in hf_names(gguf) {
        let t = match layers.get(&name) {
            Some(l) => l
                .merged_weight(DType::F32)
                .map_err(|e| io(out, &format!("tensor `{name}`: {e}")))?,
            None => gguf.tensor(&name, DType::F32)?,
        };
        tensors.insert(name, t);
    }
    let file = out.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &file).map_err(|e| io(&file, &e))?;
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        let from = hf_files.join(f);
        if from.is_file() {
            std::fs::copy(&from, out.join(f)).map_err(|e| io(&from, &e))?;
        }
    }
    Ok(())
}
