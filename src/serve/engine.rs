//! Loading the base model once for serving: a Hugging Face folder (optionally quantized at
//! load, as a pipeline's `quantized` base) or a GGUF file (weights kept in their stored
//! quantized type), with its tokenizer, chat template and end-of-sequence ids. Only causal
//! llama-family models decode per row; others are refused here. Must not attach adapters.

use super::config::{BaseSource, BaseSpec};
use super::error::ServeError;
use crate::runtime::data::render::chat_template::ChatTemplate;
use crate::runtime::data::tokenizer::ModelTokenizer;
use crate::runtime::models::config::ModelConfig;
use crate::runtime::models::gguf::{GgufLoadConfig, GgufModel, LinearFormat};
use crate::runtime::models::load::{load, LoadConfig, LoadedModel};
use crate::runtime::models::safetensors_source::SafetensorsSource;
use crate::runtime::models::source::TensorSource;
use crate::runtime::quant::{QuantizingConfig, QuantizingSource};
use candle_core::Device;
use std::sync::Arc;

/// Architectures whose decoder has per-row caches.
pub const SERVABLE: &[&str] = &["llama", "mistral", "qwen2"];

/// The loaded base with what requests need around it.
pub struct Engine {
    pub model: Box<dyn LoadedModel>,
    pub tokenizer: ModelTokenizer,
    pub chat: Option<ChatTemplate>,
    /// Tokens that end a completion.
    pub eos: Vec<u32>,
    pub device: Device,
}

/// Loads the base of `spec` on `device`.
pub fn load_engine(spec: &BaseSpec, device: &Device) -> Result<Engine, ServeError> {
    let how = LoadConfig {
        dtype: candle_core::DType::F32,
        device: device.clone(),
    };
    let (model, tokenizer, config) = match &spec.source {
        BaseSource::Folder(dir) => {
            let config = ModelConfig::from_folder(dir)?;
            check_arch(&config.model_type)?;
            let src: Arc<dyn TensorSource> = Arc::new(
                SafetensorsSource::from_folder(dir, device)
                    .map_err(|e| ServeError::Load(e.to_string()))?,
            );
            let src: Arc<dyn TensorSource> = match &spec.quant {
                Some(q) => Arc::new(
                    QuantizingSource::new(
                        src,
                        q.clone(),
                        QuantizingConfig {
                            cache: None,
                            keep_dense: vec!["lm_head".into()],
                        },
                    )
                    .map_err(|e| ServeError::Load(e.to_string()))?,
                ),
                None => src,
            };
            let named = ModelConfig {
                file: dir.display().to_string(),
                ..config.clone()
            };
            let model = load(&named, src.as_ref(), &how)?;
            let tok =
                ModelTokenizer::from_dir(dir).map_err(|e| ServeError::Tokenizer(e.to_string()))?;
            (model, tok, config)
        }
        BaseSource::Gguf(file) => {
            let gguf = GgufModel::open(
                file,
                device,
                GgufLoadConfig {
                    linear_format: LinearFormat::Stored,
                },
            )
            .map_err(|e| ServeError::Load(e.to_string()))?;
            let json = gguf
                .config_json()
                .map_err(|e| ServeError::Load(e.to_string()))?;
            let config = ModelConfig::from_json(&json.to_string(), &file.display().to_string())?;
            check_arch(&config.model_type)?;
            let tok = gguf_tokenizer(&gguf)?;
            let model = load(&config, &gguf, &how)?;
            (model, tok, config)
        }
    };
    let chat = match &tokenizer.config().chat_template {
        Some(src) => Some(
            ChatTemplate::new(src, tokenizer.config().special_tokens.clone())
                .map_err(|e| ServeError::ChatTemplate(e.to_string()))?,
        ),
        None => None,
    };
    let mut eos: Vec<u32> = tokenizer.eos_id().into_iter().collect();
    match config.raw.get("eos_token_id") {
        Some(serde_json::Value::Number(n)) => eos.extend(n.as_u64().map(|v| v as u32)),
        Some(serde_json::Value::Array(list)) => {
            eos.extend(list.iter().filter_map(|v| v.as_u64()).map(|v| v as u32))
        }
        _ => {}
    }
    eos.sort_unstable();
    eos.dedup();
    Ok(Engine {
        model,
        tokenizer,
        chat,
        eos,
        device: device.clone(),
    })
}

fn check_arch(arch: &str) -> Result<(), ServeError> {
    if SERVABLE.contains(&arch) {
        Ok(())
    } else {
        Err(ServeError::Unsupported { arch: arch.into() })
    }
}

/// The tokenizer in a GGUF file's metadata, through the Hugging Face files it converts to
/// (written into a fresh temporary folder that is removed again).
fn gguf_tokenizer(gguf: &GgufModel) -> Result<ModelTokenizer, ServeError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "peftc-serve-tokenizer-{}-{nanos}",
        std::process::id()
    ));
    if dir.exists() {
        return Err(ServeError::Load(format!(
            "temporary folder {} already exists",
            dir.display()
        )));
    }
    let result = gguf
        .write_hf_files(&dir)
        .map_err(|e| ServeError::Load(e.to_string()))
        .and_then(|()| {
            ModelTokenizer::from_dir(&dir).map_err(|e| ServeError::Tokenizer(e.to_string()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    result
}
