//! Loading a PEFT adapter folder (from peftc or Python PEFT) onto a model as a named adapter.
//!
//! Weights are matched to layers by key (`base_model.model.<path>.lora_A.weight`, ...), not by
//! re-running target matching, so whatever PEFT adapted is restored exactly; a key that fits
//! no layer, or a weight of the wrong shape, is an error naming the file and key. `<path>` is
//! the layer's path in the class PEFT wraps for the task ([`AdaptableModel::peft_aliases`]):
//! `bert.encoder...` for a BERT classifier even when its checkpoint is a bare `BertModel`.

use crate::runtime::adapters::lora::LoraAdapter;
use crate::runtime::model_api::AdaptableModel;
use crate::runtime::models::safetensors_source::SafetensorsSource;
use crate::runtime::models::source::TensorSource;
use crate::runtime::peft_format::adapter_config::AdapterConfig;
use crate::runtime::peft_format::error::PeftFormatError;
use candle_core::{DType, Tensor, Var};
use std::collections::BTreeSet;
use std::path::Path;

const PREFIX: &str = "base_model.model.";

/// Loads `<dir>` as adapter `name` and makes it the only active adapter. Returns its config.
pub fn load_adapter(
    model: &mut dyn AdaptableModel,
    dir: &Path,
    name: &str,
) -> Result<AdapterConfig, PeftFormatError> {
    let config = AdapterConfig::read(dir)?;
    let file_path = dir.join("adapter_model.safetensors");
    let file = file_path.display().to_string();
    let device = model.device().clone();
    let src = SafetensorsSource::from_files(std::slice::from_ref(&file_path), &device)?;
    let mut unused: BTreeSet<String> = src.names().into_iter().collect();
    let read = |key: &str, shape: &[usize]| -> Result<Tensor, PeftFormatError> {
        let found = src.shape(key)?;
        if found != shape {
            return Err(PeftFormatError::Shape {
                file: file.clone(),
                key: key.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        Ok(src.tensor(key, DType::F32)?)
    };
    // Each layer's module path in the file: the first of its PEFT names the file uses.
    let modules: Vec<String> = model
        .linears()
        .iter()
        .map(|l| {
            let aliases = model.peft_aliases(&l.path);
            let prefixed = |m: &String| format!("{PREFIX}{m}.");
            aliases
                .iter()
                .find(|m| unused.iter().any(|k| k.starts_with(&prefixed(m))))
                .or(aliases.first())
                .cloned()
                .unwrap_or_else(|| l.path.clone())
        })
        .collect();
    let mut loaded = 0usize;
    for (layer, module) in model.linears_mut().into_iter().zip(&modules) {
        let p = format!("{PREFIX}{module}");
        let (out_f, in_f) = layer.dims();
        let (ka, kb, km) = (
            format!("{p}.lora_A.weight"),
            format!("{p}.lora_B.weight"),
            format!("{p}.lora_magnitude_vector"),
        );
        if src.contains(&ka) || src.contains(&kb) {
            let r = src.shape(&ka)?.first().copied().unwrap_or(0);
            let a = read(&ka, &[r, in_f])?;
            let b = read(&kb, &[out_f, r])?;
            let magnitude = if src.contains(&km) {
                unused.remove(&km);
                let m = read(&km, &[out_f])?;
                Some(Var::from_tensor(&m).map_err(PeftFormatError::tensor(&km))?)
            } else if config.use_dora {
                return Err(PeftFormatError::Config {
                    file: file.clone(),
                    message: format!("use_dora is set but `{km}` is missing"),
                });
            } else {
                None
            };
            let adapter = LoraAdapter {
                a: Var::from_tensor(&a).map_err(PeftFormatError::tensor(&ka))?,
                b: Var::from_tensor(&b).map_err(PeftFormatError::tensor(&kb))?,
                scale: config.scale_for(&layer.path),
                dropout: config.lora_dropout as f32,
                magnitude,
                use_rslora: config.use_rslora,
            };
            unused.remove(&ka);
            unused.remove(&kb);
            layer.add_adapter(name, adapter);
            loaded += 1;
        }
        let (kw, kbias) = (format!("{p}.weight"), format!("{p}.bias"));
        if src.contains(&kw) {
            layer
                .add_full_copy(name)
                .map_err(PeftFormatError::tensor(&kw))?;
            let w = read(&kw, &[out_f, in_f])?;
            let bias = if src.contains(&kbias) {
                Some(read(&kbias, &[out_f])?)
            } else {
                None
            };
            if let Some(copy) = layer.full_copy(name) {
                copy.weight.set(&w).map_err(PeftFormatError::tensor(&kw))?;
                if let (Some(v), Some(t)) = (&copy.bias, &bias) {
                    v.set(t).map_err(PeftFormatError::tensor(&kbias))?;
                }
            }
            unused.remove(&kw);
            unused.remove(&kbias);
            loaded += 1;
        }
    }
    if let Some(key) = unused.into_iter().next() {
        return Err(PeftFormatError::UnexpectedKey { file, key });
    }
    if loaded == 0 {
        return Err(PeftFormatError::Empty { file });
    }
    crate::runtime::adapters::attach::set_active(model, &[(name.to_string(), 1.0)]);
    Ok(config)
}
