//! Saving a model with its merged adapters as a plain Hugging Face folder: every tensor of the
//! base checkpoint, with each linear weight replaced by the layer's current (merged) weight in
//! the checkpoint's dtype and layout (`[in, out]` for GPT-2 `Conv1D`), plus the config and
//! tokenizer files. Adapters that are active but not merged are not included: merge first.

use crate::runtime::model_api::AdaptableModel;
use crate::runtime::models::safetensors_source::SafetensorsSource;
use crate::runtime::peft_format::error::PeftFormatError;
use crate::runtime::peft_format::files::write_safetensors;
use std::collections::HashMap;
use std::path::Path;

const COPIED: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "tokenizer.model",
];

/// Writes `model` (base from `base_folder`) to `out` as `model.safetensors` + copied files.
pub fn save_merged(
    model: &dyn AdaptableModel,
    base_folder: &Path,
    out: &Path,
) -> Result<(), PeftFormatError> {
    std::fs::create_dir_all(out).map_err(PeftFormatError::io(out))?;
    let src = SafetensorsSource::from_folder(base_folder, model.device())?;
    let layers: HashMap<String, _> = model
        .linears()
        .into_iter()
        .map(|l| (l.path.clone(), l))
        .collect();
    let mut tensors = Vec::new();
    for name in src.names() {
        let stored = src.raw(&name)?;
        let stem = name.strip_suffix(".weight");
        let layer = stem.and_then(|s| {
            layers
                .get(s)
                .or_else(|| layers.get(&format!("transformer.{s}")))
        });
        let t = match layer {
            Some(l) if !l.merged().is_empty() => {
                let w = l
                    .merged_weight(stored.dtype())
                    .map_err(PeftFormatError::tensor(&name))?;
                if l.conv1d_layout() {
                    w.t()
                        .and_then(|t| t.contiguous())
                        .map_err(PeftFormatError::tensor(&name))?
                } else {
                    w
                }
            }
            _ => stored,
        };
        tensors.push((name, t));
    }
    write_safetensors(&out.join("model.safetensors"), &tensors)?;
    for f in COPIED {
        let from = base_folder.join(f);
        if from.is_file() {
            std::fs::copy(&from, out.join(f)).map_err(PeftFormatError::io(&from))?;
        }
    }
    Ok(())
}
