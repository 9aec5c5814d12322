//! Reads a model's shape from a Hugging Face `config.json` (llama, mistral, qwen2, gpt2, bert).
//! Reads through [`World`] only; never opens weights.

use super::arch;
use super::hir::{Arch, ModelShape, ShapeOrigin};
use super::world::World;
use serde_json::Value;
use std::path::Path;

/// Why a config could not be used.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    Unreadable(String),
    UnknownArch(String),
    MissingKey(&'static str),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Unreadable(e) => write!(f, "cannot read config.json: {e}"),
            ConfigError::UnknownArch(a) => write!(
                f,
                "model_type `{a}` is not supported (llama, mistral, qwen2, gpt2, bert are)"
            ),
            ConfigError::MissingKey(k) => write!(f, "config.json has no `{k}`"),
        }
    }
}

/// Shape from the `config.json` at `path`.
pub fn read(world: &dyn World, path: &Path) -> Result<ModelShape, ConfigError> {
    let text = world
        .read_to_string(path)
        .map_err(|e| ConfigError::Unreadable(e.to_string()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| ConfigError::Unreadable(e.to_string()))?;
    let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    let arch =
        Arch::parse(model_type).ok_or_else(|| ConfigError::UnknownArch(model_type.to_string()))?;
    let get = |keys: &[&'static str]| keys.iter().find_map(|k| v.get(*k).and_then(Value::as_u64));
    let need = |keys: &[&'static str]| get(keys).ok_or(ConfigError::MissingKey(keys[0]));
    let hidden = need(&["hidden_size", "n_embd"])?;
    let layers = need(&["num_hidden_layers", "n_layer"])?;
    let heads = need(&["num_attention_heads", "n_head"])?;
    let vocab = need(&["vocab_size"])?;
    let intermediate = get(&["intermediate_size", "n_inner"]).unwrap_or(4 * hidden);
    let kv_heads = get(&["num_key_value_heads"]).unwrap_or(heads);
    let context = get(&["max_position_embeddings", "n_positions"]).unwrap_or(2048);
    let tied = v
        .get("tie_word_embeddings")
        .and_then(Value::as_bool)
        .unwrap_or(arch == Arch::Gpt2);
    let mut shape = ModelShape {
        arch,
        hidden,
        intermediate,
        layers,
        heads: heads.max(1),
        kv_heads: kv_heads.max(1),
        vocab,
        context,
        tied_embeddings: tied,
        params: 0,
        stored_bytes: None,
        gguf: None,
        origin: ShapeOrigin::ConfigJson(path.to_path_buf()),
    };
    shape.params = arch::param_count(&shape);
    Ok(shape)
}
