//! Loading `tokenizer.json` (tokenizers 0.23) and the special tokens and chat template of
//! `tokenizer_config.json`.

use crate::runtime::models::error::ModelError;
use std::path::Path;
use tokenizers::Tokenizer;

/// The fields of `tokenizer_config.json` peftc uses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenizerConfig {
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
    pub chat_template: Option<String>,
    pub model_max_length: Option<u64>,
}

/// A tokenizer with its config and resolved special-token ids.
#[derive(Clone)]
pub struct TokenizerBundle {
    pub tokenizer: Tokenizer,
    pub config: TokenizerConfig,
    pub bos_id: Option<u32>,
    pub eos_id: Option<u32>,
    pub pad_id: Option<u32>,
}

fn token_field(v: &serde_json::Value, key: &str) -> Option<String> {
    match v.get(key)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o
            .get("content")
            .and_then(|c| c.as_str())
            .map(str::to_string),
        _ => None,
    }
}

/// Reads `<folder>/tokenizer.json` and, when present, `<folder>/tokenizer_config.json`.
pub fn load_tokenizer(folder: &Path) -> Result<TokenizerBundle, ModelError> {
    let path = folder.join("tokenizer.json");
    let file = path.display().to_string();
    let bytes =
        crate::safe_fs::read_limited(&path, crate::safe_fs::TOKENIZER_LIMIT).map_err(|e| {
            ModelError::Io {
                file: file.clone(),
                message: e.to_string(),
            }
        })?;
    let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
        file: file.clone(),
        message: e.to_string(),
    })?;
    let cfg_path = folder.join("tokenizer_config.json");
    let config = if cfg_path.exists() {
        let cfile = cfg_path.display().to_string();
        let text = crate::safe_fs::read_text_limited(&cfg_path, crate::safe_fs::JSON_LIMIT)
            .map_err(|e| ModelError::Io {
                file: cfile.clone(),
                message: e.to_string(),
            })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| ModelError::Config {
            file: cfile,
            message: format!("invalid JSON: {e}"),
        })?;
        TokenizerConfig {
            bos_token: token_field(&v, "bos_token"),
            eos_token: token_field(&v, "eos_token"),
            pad_token: token_field(&v, "pad_token"),
            chat_template: v
                .get("chat_template")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            model_max_length: v.get("model_max_length").and_then(|m| m.as_u64()),
        }
    } else {
        TokenizerConfig::default()
    };
    let id = |t: &Option<String>| t.as_deref().and_then(|t| tokenizer.token_to_id(t));
    Ok(TokenizerBundle {
        bos_id: id(&config.bos_token),
        eos_id: id(&config.eos_token),
        pad_id: id(&config.pad_token),
        tokenizer,
        config,
    })
}
