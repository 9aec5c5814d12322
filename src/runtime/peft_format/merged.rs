//! Saving a model with its merged adapters as a plain Hugging Face folder: every tensor of the
//! base checkpoint, with each linear weight replaced by the layer's current (merged) weight in
//! the checkpoint's dtype and layout (`[in, out]` for GPT-2 `Conv1D`), plus the config and
//! tokenizer files. Adapters that are active but not merged are not included: merge first.
//! A layer whose active adapter replaces it with a trained full copy (`modules_to_save`, e.g. a
//! classification head) is written from that copy, also when the base checkpoint lacks it (a
//! new head); with [`MergedHead`] the config names the classification model and its labels, as
//! transformers writes them.

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

/// A sequence-classification head the merged model carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedHead {
    /// transformers' class, e.g. `BertForSequenceClassification`.
    pub architecture: String,
    /// Class names in label-id order.
    pub labels: Vec<String>,
}

/// Writes `model` (base from `base_folder`) to `out` as `model.safetensors` + copied files.
pub fn save_merged(
    model: &dyn AdaptableModel,
    base_folder: &Path,
    out: &Path,
) -> Result<(), PeftFormatError> {
    save_merged_with_head(model, base_folder, out, None)
}

/// [`save_merged`], recording a classification head in `config.json`.
pub fn save_merged_with_head(
    model: &dyn AdaptableModel,
    base_folder: &Path,
    out: &Path,
    head: Option<&MergedHead>,
) -> Result<(), PeftFormatError> {
    std::fs::create_dir_all(out).map_err(PeftFormatError::io(out))?;
    let src = SafetensorsSource::from_folder(base_folder, model.device())?;
    let layers: HashMap<String, _> = model
        .linears()
        .into_iter()
        .map(|l| (l.path.clone(), l))
        .collect();
    let mut tensors = Vec::new();
    let names = src.names();
    // Trained full copies replace their layer's weight and bias.
    let mut copies: HashMap<String, candle_core::Tensor> = HashMap::new();
    for l in model.linears() {
        let Some(copy) = l.active().iter().find_map(|(n, _)| l.full_copy(n)) else {
            continue;
        };
        let w = copy.weight.as_tensor().to_dtype(candle_core::DType::F32);
        let w = w.map_err(PeftFormatError::tensor(&l.path))?;
        let w = if l.conv1d_layout() {
            w.t()
                .and_then(|t| t.contiguous())
                .map_err(PeftFormatError::tensor(&l.path))?
        } else {
            w
        };
        let stem = checkpoint_stem(&names, &l.path);
        copies.insert(format!("{stem}.weight"), w);
        if let Some(b) = &copy.bias {
            let b = b.as_tensor().to_dtype(candle_core::DType::F32);
            copies.insert(
                format!("{stem}.bias"),
                b.map_err(PeftFormatError::tensor(&l.path))?,
            );
        }
    }
    for name in names.iter().filter(|n| !copies.contains_key(*n)) {
        let name = name.clone();
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
    for (name, t) in copies {
        let dtype = names
            .iter()
            .find(|n| **n == name)
            .and_then(|n| src.raw(n).ok())
            .map_or(candle_core::DType::F32, |t| t.dtype());
        let t = t.to_dtype(dtype).map_err(PeftFormatError::tensor(&name))?;
        tensors.push((name, t));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_safetensors(&out.join("model.safetensors"), &tensors)?;
    for f in COPIED {
        let from = base_folder.join(f);
        if from.is_file() {
            std::fs::copy(&from, out.join(f)).map_err(PeftFormatError::io(&from))?;
        }
    }
    if let Some(head) = head {
        write_head_config(&out.join("config.json"), head)?;
    }
    Ok(())
}

/// The checkpoint name of a layer path: as is, or without a `transformer.` prefix (GPT-2).
fn checkpoint_stem(names: &[String], path: &str) -> String {
    let stripped = path.strip_prefix("transformer.").unwrap_or(path);
    if names.iter().any(|n| n == &format!("{stripped}.weight")) {
        stripped.to_string()
    } else {
        path.to_string()
    }
}

/// Sets `architectures`, `id2label` and `label2id` in the merged model's `config.json`.
fn write_head_config(path: &Path, head: &MergedHead) -> Result<(), PeftFormatError> {
    let text = std::fs::read_to_string(path).map_err(PeftFormatError::io(path))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PeftFormatError::Config {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
    if let Some(obj) = config.as_object_mut() {
        obj.insert(
            "architectures".into(),
            serde_json::json!([head.architecture]),
        );
        let id2label: serde_json::Map<String, serde_json::Value> = head
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = head
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), serde_json::json!(i)))
            .collect();
        obj.insert("id2label".into(), id2label.into());
        obj.insert("label2id".into(), label2id.into());
    }
    crate::runtime::peft_format::files::write_json(path, &config)
}
