//! BERT's `config.json` (field names as Hugging Face transformers writes them).
//!
//! Reads only what the BERT encoder and its heads need; must not read weights.

use serde::Deserialize;
use std::path::Path;

/// Errors reading a BERT `config.json`; each names the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BertConfigError {
    /// The file could not be read.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::bert::config_io))]
    Io { file: String, message: String },
    /// The JSON is not a BERT config.
    #[error("{file}: not a BERT config: {message}")]
    #[diagnostic(code(peftc::bert::config_parse))]
    Parse { file: String, message: String },
    /// A value is outside what the model can use.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::bert::config_value))]
    Invalid { file: String, message: String },
}

/// The hidden activation of the feed-forward block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenAct {
    /// Exact GELU (`gelu`), erf-based.
    Gelu,
    /// Tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `relu`.
    Relu,
    /// `silu` / `swish`.
    Silu,
}

#[derive(Deserialize)]
struct Raw {
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_dropout")]
    hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    attention_probs_dropout_prob: f64,
    #[serde(default)]
    classifier_dropout: Option<f64>,
    #[serde(default = "default_positions")]
    max_position_embeddings: usize,
    #[serde(default = "default_types")]
    type_vocab_size: usize,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: Option<u32>,
    #[serde(default)]
    num_labels: Option<usize>,
    #[serde(default)]
    id2label: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_positions() -> usize {
    512
}
fn default_types() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

/// A BERT model's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads per layer.
    pub num_attention_heads: usize,
    /// Feed-forward width.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    pub hidden_act: HiddenAct,
    /// Dropout on embeddings and sub-block outputs while training.
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities while training.
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classifier (defaults to `hidden_dropout_prob`).
    pub classifier_dropout: f64,
    /// Number of position embeddings.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    pub type_vocab_size: usize,
    /// Layer norm epsilon.
    pub layer_norm_eps: f64,
    /// Padding token id.
    pub pad_token_id: u32,
    /// Number of classifier outputs (`num_labels`, else the size of `id2label`, else 2).
    pub num_labels: usize,
    /// `architectures[0]`, e.g. `BertForSequenceClassification` or `BertModel`.
    pub architecture: String,
}

impl BertConfig {
    /// Parses the text of a `config.json`; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<Self, BertConfigError> {
        let raw: Raw = serde_json::from_str(text).map_err(|e| BertConfigError::Parse {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| BertConfigError::Invalid {
            file: file.to_string(),
            message,
        };
        if let Some(t) = &raw.model_type {
            if t != "bert" {
                return Err(invalid(format!("model_type `{t}` is not `bert`")));
            }
        }
        if let Some(p) = &raw.position_embedding_type {
            if p != "absolute" {
                return Err(invalid(format!(
                    "position_embedding_type `{p}` is not supported (only `absolute`)"
                )));
            }
        }
        if raw.num_attention_heads == 0 || !raw.hidden_size.is_multiple_of(raw.num_attention_heads)
        {
            return Err(invalid(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                raw.hidden_size, raw.num_attention_heads
            )));
        }
        let hidden_act = match raw.hidden_act.as_str() {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => HiddenAct::GeluTanh,
            "relu" => HiddenAct::Relu,
            "silu" | "swish" => HiddenAct::Silu,
            other => return Err(invalid(format!("hidden_act `{other}` is not supported"))),
        };
        let num_labels = raw
            .num_labels
            .or_else(|| raw.id2label.as_ref().map(|m| m.len()))
            .unwrap_or(2);
        Ok(Self {
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            intermediate_size: raw.intermediate_size,
            hidden_act,
            hidden_dropout_prob: raw.hidden_dropout_prob,
            attention_probs_dropout_prob: raw.attention_probs_dropout_prob,
            classifier_dropout: raw.classifier_dropout.unwrap_or(raw.hidden_dropout_prob),
            max_position_embeddings: raw.max_position_embeddings,
            type_vocab_size: raw.type_vocab_size,
            layer_norm_eps: raw.layer_norm_eps,
            pad_token_id: raw.pad_token_id.unwrap_or(0),
            num_labels,
            architecture: raw
                .architectures
                .and_then(|a| a.into_iter().next())
                .unwrap_or_else(|| "BertModel".into()),
        })
    }

    /// Reads `config.json` from a file.
    pub fn from_file(path: &Path) -> Result<Self, BertConfigError> {
        let file = path.display().to_string();
        let text =
            crate::safe_fs::read_text_limited(path, crate::safe_fs::JSON_LIMIT).map_err(|e| {
                BertConfigError::Io {
                    file: file.clone(),
                    message: e.to_string(),
                }
            })?;
        Self::from_json(&text, &file)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
