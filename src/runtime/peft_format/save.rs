//! Saving one adapter of a model as a PEFT folder: `adapter_config.json`,
//! `adapter_model.safetensors` (PEFT's saved key names, f32) and `peftc.lineage.json`.
//!
//! Keys name each layer by its path in the Hugging Face class PEFT wraps for the model's task
//! ([`AdaptableModel::peft_path`]), so the file loads in PEFT with no missing or unexpected key.

use crate::runtime::model_api::AdaptableModel;
use crate::runtime::peft_format::adapter_config::AdapterConfig;
use crate::runtime::peft_format::error::PeftFormatError;
use crate::runtime::peft_format::files::{write_json, write_safetensors};
use crate::runtime::peft_format::lineage::Lineage;
use candle_core::DType;
use std::path::Path;

/// Writes adapter `name` of `model` to `dir` (created if needed). The lineage gets the adapter
/// config filled in.
pub fn save_adapter(
    model: &dyn AdaptableModel,
    name: &str,
    config: &AdapterConfig,
    lineage: &Lineage,
    dir: &Path,
) -> Result<(), PeftFormatError> {
    std::fs::create_dir_all(dir).map_err(PeftFormatError::io(dir))?;
    let mut tensors = Vec::new();
    for layer in model.linears() {
        for (key, var) in layer.named_vars_at(name, &model.peft_path(&layer.path)) {
            let t = var
                .as_tensor()
                .to_dtype(DType::F32)
                .map_err(PeftFormatError::tensor(&key))?;
            tensors.push((key, t));
        }
    }
    if tensors.is_empty() {
        return Err(PeftFormatError::Empty {
            file: dir.display().to_string(),
        });
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&dir.join("adapter_model.safetensors"), &tensors)?;
    let cfg_json = config.to_json()?;
    write_json(&dir.join("adapter_config.json"), &cfg_json)?;
    let mut lineage = lineage.clone();
    lineage.adapter_config = cfg_json;
    lineage.write(dir)
}
