//! The model's tokenizer: `tokenizer.json` (a `tokenizers::Tokenizer`) plus what
//! `tokenizer_config.json` adds: the special tokens by name and the chat template.
//!
//! Special tokens follow the model: bos/eos that the tokenizer's post-processor adds come from
//! encoding with special tokens on; `eos_token` from the config ends causal LM examples.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tokenizers::Tokenizer;

use super::error::DataError;

/// What `tokenizer_config.json` says that `tokenizer.json` does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub unk_token: Option<String>,
    /// The default chat template (a named list is searched for `default`).
    pub chat_template: Option<String>,
    /// Every `*_token` entry as a string, passed to chat templates as transformers does.
    pub special_tokens: BTreeMap<String, String>,
}

fn token_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

impl TokenizerConfig {
    /// Parse the text of a `tokenizer_config.json`.
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let o = v.as_object().ok_or("expected a JSON object")?;
        let get = |k: &str| o.get(k).and_then(token_string);
        let mut special_tokens = BTreeMap::new();
        for (k, v) in o {
            if k.ends_with("_token") {
                if let Some(s) = token_string(v) {
                    special_tokens.insert(k.clone(), s);
                }
            }
        }
        let chat_template = match o.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        Ok(TokenizerConfig {
            bos_token: get("bos_token"),
            eos_token: get("eos_token"),
            pad_token: get("pad_token"),
            unk_token: get("unk_token"),
            chat_template,
            special_tokens,
        })
    }
}

/// A tokenizer with its config.
#[derive(Clone)]
pub struct ModelTokenizer {
    tokenizer: Tokenizer,
    config: TokenizerConfig,
}

impl std::fmt::Debug for ModelTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelTokenizer")
            .field("vocab", &self.tokenizer.get_vocab_size(true))
            .field("config", &self.config)
            .finish()
    }
}

impl ModelTokenizer {
    pub fn new(tokenizer: Tokenizer, config: TokenizerConfig) -> Self {
        ModelTokenizer { tokenizer, config }
    }

    /// Load `tokenizer.json` and, when given, `tokenizer_config.json`.
    pub fn from_files(
        tokenizer_json: &Path,
        config_json: Option<&Path>,
    ) -> Result<Self, DataError> {
        let bytes = crate::safe_fs::read_limited(tokenizer_json, crate::safe_fs::TOKENIZER_LIMIT)
            .map_err(|e| DataError::io(tokenizer_json, e))?;
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| DataError::Tokenizer {
            path: tokenizer_json.to_owned(),
            message: e.to_string(),
        })?;
        let config = match config_json {
            None => TokenizerConfig::default(),
            Some(p) => {
                let text = crate::safe_fs::read_text_limited(p, crate::safe_fs::JSON_LIMIT)
                    .map_err(|e| DataError::io(p, e))?;
                TokenizerConfig::from_json_str(&text).map_err(|message| DataError::Tokenizer {
                    path: p.to_owned(),
                    message,
                })?
            }
        };
        Ok(ModelTokenizer { tokenizer, config })
    }

    /// Load `tokenizer.json` from a model folder, with `tokenizer_config.json` when present.
    pub fn from_dir(dir: &Path) -> Result<Self, DataError> {
        let cfg = dir.join("tokenizer_config.json");
        Self::from_files(
            &dir.join("tokenizer.json"),
            cfg.exists().then_some(cfg.as_path()),
        )
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.config
            .bos_token
            .as_deref()
            .and_then(|t| self.token_id(t))
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.config
            .eos_token
            .as_deref()
            .and_then(|t| self.token_id(t))
    }

    /// The padding id: `pad_token`, else the tokenizer's padding setting, else `eos`, else 0.
    pub fn pad_id(&self) -> u32 {
        self.config
            .pad_token
            .as_deref()
            .and_then(|t| self.token_id(t))
            .or_else(|| self.tokenizer.get_padding().map(|p| p.pad_id))
            .or_else(|| self.eos_id())
            .unwrap_or(0)
    }
}
