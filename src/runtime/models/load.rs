//! The entry point that turns `config.json` plus a [`TensorSource`] into a model with adaptable
//! layers. Adding an architecture is one match arm in [`load`].

use crate::runtime::model_api::AdaptableModel;
use crate::runtime::models::config::{Gpt2Config, LlamaConfig, ModelConfig};
use crate::runtime::models::decoder::Decoder;
use crate::runtime::models::error::ModelError;
use crate::runtime::models::gpt2::Gpt2;
use crate::runtime::models::llama::Llama;
use crate::runtime::models::reader::WeightReader;
use crate::runtime::models::safetensors_source::SafetensorsSource;
use crate::runtime::models::source::TensorSource;
use candle_core::{DType, Device};
use std::path::Path;

/// `model_type` values [`load`] accepts.
pub const SUPPORTED: &[&str] = &["llama", "mistral", "qwen2", "gpt2"];

/// A loaded model: adaptable, and a decoder when it is causal.
pub trait LoadedModel: AdaptableModel + Send + Sync {
    /// `model_type` from `config.json`.
    fn architecture(&self) -> &str;
    /// Step-wise decoding with a KV cache, for causal models.
    fn decoder(&self) -> Option<&dyn Decoder>;
    /// This model as an [`AdaptableModel`] (attach, merge, combine adapters).
    fn as_adaptable(&self) -> &dyn AdaptableModel;
    /// This model as a mutable [`AdaptableModel`].
    fn as_adaptable_mut(&mut self) -> &mut dyn AdaptableModel;
}

macro_rules! loaded_model {
    ($ty:ty, $self_:ident => $arch:expr) => {
        impl LoadedModel for $ty {
            fn architecture(&$self_) -> &str {
                $arch
            }
            fn decoder(&self) -> Option<&dyn Decoder> {
                Some(self)
            }
            fn as_adaptable(&self) -> &dyn AdaptableModel {
                self
            }
            fn as_adaptable_mut(&mut self) -> &mut dyn AdaptableModel {
                self
            }
        }
    };
}

loaded_model!(Llama, self => &self.config().model_type);
loaded_model!(Gpt2, self => "gpt2");

/// How to load.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// Compute dtype of dense tensors (f32 for training and parity).
    pub dtype: DType,
    /// Where the model lives.
    pub device: Device,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
        }
    }
}

/// Builds the architecture named by `config.model_type` from `src`.
pub fn load(
    config: &ModelConfig,
    src: &dyn TensorSource,
    how: &LoadConfig,
) -> Result<Box<dyn LoadedModel>, ModelError> {
    let w = WeightReader {
        src,
        file: &config.file,
        dtype: how.dtype,
    };
    match config.model_type.as_str() {
        "llama" | "mistral" | "qwen2" => Ok(Box::new(Llama::load(
            &config.parse::<LlamaConfig>()?,
            &w,
            &how.device,
        )?)),
        "gpt2" => Ok(Box::new(Gpt2::load(
            &config.parse::<Gpt2Config>()?,
            &w,
            &how.device,
        )?)),
        other => Err(ModelError::UnknownArchitecture {
            file: config.file.clone(),
            model_type: other.to_string(),
            supported: SUPPORTED.join(", "),
        }),
    }
}

/// [`load`] with a sequence-classification head of `num_labels` classes over the last
/// non-padding token: `score.weight` `[num_labels, hidden]` without bias, as transformers'
/// `*ForSequenceClassification` (the source supplies a fresh head when the checkpoint has none).
pub fn load_classifier(
    config: &ModelConfig,
    src: &dyn TensorSource,
    how: &LoadConfig,
    num_labels: usize,
) -> Result<Box<dyn LoadedModel>, ModelError> {
    let w = WeightReader {
        src,
        file: &config.file,
        dtype: how.dtype,
    };
    match config.model_type.as_str() {
        "llama" | "mistral" | "qwen2" => Ok(Box::new(
            Llama::load(&config.parse::<LlamaConfig>()?, &w, &how.device)?
                .with_score(&w, num_labels)?,
        )),
        "gpt2" => Ok(Box::new(
            Gpt2::load(&config.parse::<Gpt2Config>()?, &w, &how.device)?
                .with_score(&w, num_labels)?,
        )),
        other => Err(ModelError::UnknownArchitecture {
            file: config.file.clone(),
            model_type: other.to_string(),
            supported: SUPPORTED.join(", "),
        }),
    }
}

/// Loads a Hugging Face model folder (`config.json` + safetensors).
pub fn load_folder(folder: &Path, how: &LoadConfig) -> Result<Box<dyn LoadedModel>, ModelError> {
    let config = ModelConfig::from_folder(folder)?;
    let src = SafetensorsSource::from_folder(folder, &how.device)?;
    let folder_name = folder.display().to_string();
    let w = ModelConfig {
        file: folder_name,
        ..config
    };
    load(&w, &src, how)
}
