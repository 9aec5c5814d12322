//! The tokenizer of a GGUF file, rebuilt from its metadata (`tokenizer.ggml.*`) as a
//! `tokenizers::Tokenizer` (byte-level BPE, as Hugging Face's `tokenizer.json` would describe
//! it), plus the `tokenizer_config.json` equivalent (chat template, special tokens).
//!
//! Supports `tokenizer.ggml.model = gpt2` (byte-level BPE) with the pre-tokenizers llama.cpp
//! names `smollm`, `gpt2` / `default`, `llama-bpe` / `llama3` and `qwen2`, and `llama`
//! (SentencePiece, built in [`crate::runtime::models::gguf_spm`]). Other tokenizer models
//! (`t5`, `bert`, `rwkv`, ...) are refused with a clear error. Must not read tensor data.

use crate::runtime::models::gguf::GgufModel;
use crate::runtime::models::gguf_spm::{spm_tokenizer_json, SpmVocab};
use crate::runtime::models::source::LoadError;
use candle_core::quantized::gguf_file::Value;
use serde_json::json;

/// The special tokens and chat template of a GGUF file, as `tokenizer_config.json` holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTokenizerConfig {
    /// Jinja chat template (`tokenizer.chat_template`).
    pub chat_template: Option<String>,
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Unknown token text.
    pub unk_token: Option<String>,
    /// Whether the BOS token is prepended on encoding.
    pub add_bos_token: bool,
    /// Whether the EOS token is appended on encoding.
    pub add_eos_token: bool,
}

impl GgufTokenizerConfig {
    /// As `tokenizer_config.json`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "chat_template": self.chat_template,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
            "pad_token": self.pad_token,
            "unk_token": self.unk_token,
            "add_bos_token": self.add_bos_token,
            "add_eos_token": self.add_eos_token,
        })
    }
}

// Pre-tokenizer regexes as llama.cpp (llama-vocab.cpp) and the matching HF tokenizer.json use them.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

impl GgufModel {
    fn strings(&self, key: &str) -> Result<Vec<String>, LoadError> {
        let err = |message: String| LoadError::Other {
            file: self.file(),
            message: format!("`{key}`: {message}"),
        };
        let v = self.metadata(key).ok_or_else(|| err("missing".into()))?;
        let items = v.to_vec().map_err(|e| err(e.to_string()))?;
        items
            .iter()
            .map(|x| x.to_string().cloned().map_err(|e| err(e.to_string())))
            .collect()
    }

    fn token_types(&self, n: usize) -> Vec<i32> {
        match self
            .metadata("tokenizer.ggml.token_type")
            .map(|v| v.to_vec())
        {
            Some(Ok(items)) => items
                .iter()
                .map(|x| match x {
                    Value::I32(i) => *i,
                    Value::U32(u) => *u as i32,
                    Value::I8(i) => i32::from(*i),
                    Value::U8(u) => i32::from(*u),
                    _ => 1,
                })
                .collect(),
            _ => vec![1; n],
        }
    }

    fn token_id(&self, key: &str) -> Option<u32> {
        let v = self.metadata(key)?;
        v.to_u32()
            .or_else(|_| v.to_i32().map(|i| i.max(0) as u32))
            .ok()
    }

    fn flag(&self, key: &str) -> Option<bool> {
        self.metadata(key).and_then(|v| v.to_bool().ok())
    }

    /// The `tokenizer.json` equivalent of the metadata.
    pub fn tokenizer_json(&self) -> Result<serde_json::Value, LoadError> {
        let other = |message: String| LoadError::Other {
            file: self.file(),
            message,
        };
        let model = self
            .metadata("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_default();
        match model.as_str() {
            "gpt2" => {}
            "llama" => return self.sentencepiece_json(),
            _ => {
                return Err(other(format!(
                    "tokenizer.ggml.model `{model}` is not supported (byte-level BPE `gpt2` and SentencePiece `llama` are)"
                )))
            }
        }
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let merges = self.strings("tokenizer.ggml.merges")?;
        let types = self.token_types(tokens.len());
        let added: Vec<serde_json::Value> = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let ty = types.get(i).copied().unwrap_or(1);
                // 3 = control (special), 4 = user-defined (added, not special).
                (ty == 3 || ty == 4).then(|| {
                    json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": ty != 3, "special": ty == 3})
                })
            })
            .collect();
        let pre = self
            .metadata("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_else(|| "default".into());
        let bl = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let bl_no_regex = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false});
        let split = |re: &str| json!({"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false});
        let pre_tokenizer = match pre.as_str() {
            "smollm" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, bl.clone()]}),
            "default" | "gpt2" | "gpt-2" => bl.clone(),
            "llama-bpe" | "llama3" | "llama-v3" => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), bl_no_regex]})
            }
            "qwen2" => {
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), bl_no_regex]})
            }
            other => {
                return Err(other_pre(&self.file(), other));
            }
        };
        let vocab: serde_json::Map<String, serde_json::Value> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), json!(i)))
            .collect();
        let cfg = self.tokenizer_config()?;
        let mut post = bl.clone();
        post["trim_offsets"] = json!(false);
        let post_processor = match (
            cfg.add_bos_token,
            cfg.bos_token.as_ref(),
            self.token_id("tokenizer.ggml.bos_token_id"),
        ) {
            (true, Some(bos), Some(id)) => json!({"type": "Sequence", "processors": [post,
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {bos.clone(): {"id": bos, "ids": [id], "tokens": [bos]}}}]}),
            _ => post,
        };
        Ok(json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": bl,
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "ignore_merges": false, "vocab": vocab, "merges": merges}
        }))
    }

    /// The SentencePiece (`llama`) vocabulary as transformers builds it.
    fn sentencepiece_json(&self) -> Result<serde_json::Value, LoadError> {
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let scores = self.scores(tokens.len())?;
        let merges = match self.metadata("tokenizer.ggml.merges") {
            Some(_) => Some(self.strings("tokenizer.ggml.merges")?),
            None => None,
        };
        let types = self.token_types(tokens.len());
        let cfg = self.tokenizer_config()?;
        // Control tokens (type 3) and the named special tokens are special; user-defined ones
        // (type 4) are added whole but not special. None is normalized.
        let named: Vec<&String> = [
            &cfg.bos_token,
            &cfg.eos_token,
            &cfg.unk_token,
            &cfg.pad_token,
        ]
        .into_iter()
        .flatten()
        .collect();
        let added = tokens
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let ty = types.get(i).copied().unwrap_or(1);
                let special = ty == 3 || named.contains(&t);
                (special || ty == 4).then(|| {
                    json!({"id": i, "content": t, "single_word": false, "lstrip": false,
                           "rstrip": false, "normalized": false, "special": special})
                })
            })
            .collect();
        let named_id =
            |text: &Option<String>, key: &str| Some((text.clone()?, self.token_id(key)?));
        let bos =
            named_id(&cfg.bos_token, "tokenizer.ggml.bos_token_id").filter(|_| cfg.add_bos_token);
        let eos =
            named_id(&cfg.eos_token, "tokenizer.ggml.eos_token_id").filter(|_| cfg.add_eos_token);
        Ok(spm_tokenizer_json(&SpmVocab {
            tokens: &tokens,
            scores: &scores,
            merges: merges.as_deref(),
            added,
            bos,
            eos,
        }))
    }

    /// `tokenizer.ggml.scores`; all zero when absent.
    fn scores(&self, n: usize) -> Result<Vec<f32>, LoadError> {
        let Some(v) = self.metadata("tokenizer.ggml.scores") else {
            return Ok(vec![0.0; n]);
        };
        let items = v.to_vec().map_err(|e| LoadError::Other {
            file: self.file(),
            message: format!("`tokenizer.ggml.scores`: {e}"),
        })?;
        Ok(items
            .iter()
            .map(|x| match x {
                Value::F32(f) => *f,
                Value::F64(f) => *f as f32,
                _ => 0.0,
            })
            .collect())
    }

    /// The tokenizer rebuilt from the metadata.
    pub fn tokenizer(&self) -> Result<tokenizers::Tokenizer, LoadError> {
        let text = self.tokenizer_json()?.to_string();
        text.parse::<tokenizers::Tokenizer>()
            .map_err(|e| LoadError::Other {
                file: self.file(),
                message: format!("tokenizer: {e}"),
            })
    }

    /// Chat template and special tokens.
    pub fn tokenizer_config(&self) -> Result<GgufTokenizerConfig, LoadError> {
        let tokens = self.strings("tokenizer.ggml.tokens")?;
        let text = |key: &str| {
            self.token_id(key)
                .and_then(|i| tokens.get(i as usize).cloned())
        };
        Ok(GgufTokenizerConfig {
            chat_template: self
                .metadata("tokenizer.chat_template")
                .and_then(|v| v.to_string().ok().cloned()),
            bos_token: text("tokenizer.ggml.bos_token_id"),
            eos_token: text("tokenizer.ggml.eos_token_id"),
            pad_token: text("tokenizer.ggml.padding_token_id"),
            unk_token: text("tokenizer.ggml.unknown_token_id"),
            // llama.cpp (and transformers) add BOS to a SentencePiece vocabulary that does not
            // say otherwise.
            add_bos_token: self
                .flag("tokenizer.ggml.add_bos_token")
                .unwrap_or(self.tokenizer_model().as_deref() == Some("llama")),
            add_eos_token: self.flag("tokenizer.ggml.add_eos_token").unwrap_or(false),
        })
    }

    /// `tokenizer.ggml.model`.
    fn tokenizer_model(&self) -> Option<String> {
        self.metadata("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok().cloned())
    }
}

fn other_pre(file: &str, pre: &str) -> LoadError {
    LoadError::Other {
        file: file.to_string(),
        message: format!(
            "tokenizer.ggml.pre `{pre}` is not supported (known: smollm, gpt2, default, llama-bpe, qwen2)"
        ),
    }
}
