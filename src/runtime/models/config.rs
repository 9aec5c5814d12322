//! `config.json`: reading it and telling which architecture it describes.
//!
//! Field names mirror transformers' config classes. Both the older layout (`rope_theta`,
//! `rope_scaling`) and transformers 5's `rope_parameters` are understood. Must not read weights.

use crate::runtime::models::error::ModelError;
use crate::runtime::ops::rope::RopeScaling;
use serde::Deserialize;
use std::path::Path;

/// `config.json` of a llama, mistral or qwen2 model.
#[derive(Clone, Debug, Deserialize)]
pub struct LlamaConfig {
    /// `llama`, `mistral` or `qwen2`.
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    #[serde(default)]
    pub attention_bias: Option<bool>,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
    /// Mistral / Qwen2: how many earlier tokens (the query's own included) a query sees in a
    /// sliding-window layer.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    /// Qwen2: windows apply only when set.
    #[serde(default)]
    pub use_sliding_window: Option<bool>,
    /// Qwen2: layers from this index on slide (when `use_sliding_window`).
    #[serde(default)]
    pub max_window_layers: Option<usize>,
    /// transformers' per-layer attention kinds (`full_attention` / `sliding_attention`); when
    /// present it decides which layers slide.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

fn default_rms_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    4096
}

impl LlamaConfig {
    /// Key/value heads (GQA); equal to the attention heads when absent.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }
    /// Whether q, k, v carry a bias (always for qwen2).
    pub fn qkv_bias(&self) -> bool {
        self.attention_bias.unwrap_or(self.model_type == "qwen2")
    }
    /// The sliding window of layer `i`, as transformers decides it: `layer_types` when given;
    /// else every layer of a mistral with `sliding_window`, and the qwen2 layers from
    /// `max_window_layers` on when `use_sliding_window`; llama never.
    pub fn layer_window(&self, i: usize) -> Option<usize> {
        let window = self.sliding_window?;
        if let Some(types) = &self.layer_types {
            return (types.get(i).map(String::as_str) == Some("sliding_attention"))
                .then_some(window);
        }
        match self.model_type.as_str() {
            "mistral" => Some(window),
            "qwen2" if self.use_sliding_window == Some(true) => {
                (i >= self.max_window_layers.unwrap_or(28)).then_some(window)
            }
            _ => None,
        }
    }
    /// Whether `lm_head` shares the embedding matrix.
    pub fn tied(&self) -> bool {
        self.tie_word_embeddings.unwrap_or(false)
    }
    /// Rope base frequency.
    pub fn theta(&self) -> f64 {
        self.rope_parameters
            .as_ref()
            .and_then(|p| p.get("rope_theta"))
            .and_then(|v| v.as_f64())
            .or(self.rope_theta)
            .unwrap_or(10000.0)
    }
    /// Rope scaling, from `rope_scaling` or `rope_parameters`.
    pub fn scaling(&self, file: &str) -> Result<RopeScaling, ModelError> {
        let Some(p) = self.rope_scaling.as_ref().or(self.rope_parameters.as_ref()) else {
            return Ok(RopeScaling::None);
        };
        if p.is_null() {
            return Ok(RopeScaling::None);
        }
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(|v| v.as_str())
            .unwrap_or("default");
        let num = |k: &str| -> Result<f64, ModelError> {
            p.get(k)
                .and_then(|v| v.as_f64())
                .ok_or_else(|| ModelError::Config {
                    file: file.into(),
                    message: format!("rope scaling `{kind}` needs a numeric `{k}`"),
                })
        };
        match kind {
            "default" => Ok(RopeScaling::None),
            "linear" => Ok(RopeScaling::Linear {
                factor: num("factor")?,
            }),
            "llama3" => Ok(RopeScaling::Llama3 {
                factor: num("factor")?,
                low_freq_factor: num("low_freq_factor")?,
                high_freq_factor: num("high_freq_factor")?,
                original_max_position_embeddings: num("original_max_position_embeddings")?,
            }),
            other => Err(ModelError::Config {
                file: file.into(),
                message: format!(
                    "rope scaling `{other}` is not supported (default, linear, llama3 are)"
                ),
            }),
        }
    }
}

/// `config.json` of a GPT-2 model.
#[derive(Clone, Debug, Deserialize)]
pub struct Gpt2Config {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default = "default_n_positions")]
    pub n_positions: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_ln_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_act")]
    pub activation_function: String,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
}

fn default_n_positions() -> usize {
    1024
}
fn default_ln_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_true() -> bool {
    true
}

/// The parsed `config.json` with its `model_type`.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// The file it came from (for messages).
    pub file: String,
    /// `model_type`.
    pub model_type: String,
    /// The whole JSON, for architectures that parse their own fields.
    pub raw: serde_json::Value,
}

impl ModelConfig {
    /// Reads `<folder>/config.json`.
    pub fn from_folder(folder: &Path) -> Result<Self, ModelError> {
        let path = folder.join("config.json");
        let file = path.display().to_string();
        let text =
            crate::safe_fs::read_text_limited(&path, crate::safe_fs::JSON_LIMIT).map_err(|e| {
                ModelError::Io {
                    file: file.clone(),
                    message: e.to_string(),
                }
            })?;
        Self::from_json(&text, &file)
    }

    /// Parses `config.json` text.
    pub fn from_json(text: &str, file: &str) -> Result<Self, ModelError> {
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ModelError::Config {
                file: file.into(),
                message: format!("invalid JSON: {e}"),
            })?;
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ModelError::Config {
                file: file.into(),
                message: "no `model_type` field".into(),
            })?
            .to_string();
        Ok(Self {
            file: file.into(),
            model_type,
            raw,
        })
    }

    /// Deserializes the architecture's own config struct.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ModelError> {
        serde_json::from_value(self.raw.clone()).map_err(|e| ModelError::Config {
            file: self.file.clone(),
            message: e.to_string(),
        })
    }
}
