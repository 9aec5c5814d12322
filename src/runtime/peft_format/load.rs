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

/// An adapter folder read into memory, not yet attached to a model.
#[derive(Debug)]
pub struct ReadAdapter {
    /// `adapter_config.json`.
    pub config: AdapterConfig,
    /// Per layer path, its LoRA (or DoRA) matrices.
    pub lora: Vec<(String, LoraAdapter)>,
    /// Per layer path, a `modules_to_save` copy: weight `[out, in]` and optional bias.
    pub full_copies: Vec<(String, Tensor, Option<Tensor>)>,
}

impl ReadAdapter {
    /// Bytes of every tensor held.
    pub fn bytes(&self) -> usize {
        let t = |x: &Tensor| x.elem_count() * x.dtype().size_in_bytes();
        let mut n = 0;
        for (_, a) in &self.lora {
            n += t(a.a.as_tensor()) + t(a.b.as_tensor());
            n += a.magnitude.as_ref().map_or(0, |m| t(m.as_tensor()));
        }
        for (_, w, b) in &self.full_copies {
            n += t(w) + b.as_ref().map_or(0, t);
        }
        n
    }
}

/// One linear layer of a model, as [`read_adapter`] needs it.
#[derive(Debug, Clone)]
pub struct LayerShape {
    /// The layer's module path in the runtime's model.
    pub path: String,
    /// Its module paths in the classes PEFT wraps ([`AdaptableModel::peft_aliases`]).
    pub aliases: Vec<String>,
    /// `(out, in)`.
    pub dims: (usize, usize),
}

/// Reads `<dir>` for a model whose linear layers are `layers`: every key must fit a layer with
/// the right shape. Needs no model, so it can run on another thread while the model is in use.
pub fn read_adapter(
    dir: &Path,
    layers: &[LayerShape],
    device: &candle_core::Device,
) -> Result<ReadAdapter, PeftFormatError> {
    let config = AdapterConfig::read(dir)?;
    let file_path = dir.join("adapter_model.safetensors");
    let file = file_path.display().to_string();
    let src = SafetensorsSource::from_files(std::slice::from_ref(&file_path), device)?;
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
    let mut out = ReadAdapter {
        config,
        lora: Vec::new(),
        full_copies: Vec::new(),
    };
    for layer in layers {
        let (path, (out_f, in_f)) = (&layer.path, layer.dims);
        // The layer's module path in the file: the first of its PEFT names the file uses.
        let module = layer
            .aliases
            .iter()
            .find(|m| {
                let prefixed = format!("{PREFIX}{m}.");
                unused.iter().any(|k| k.starts_with(&prefixed))
            })
            .or(layer.aliases.first())
            .unwrap_or(path);
        let p = format!("{PREFIX}{module}");
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
            } else if out.config.use_dora {
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
                scale: out.config.scale_for(path),
                dropout: out.config.lora_dropout as f32,
                magnitude,
                use_rslora: out.config.use_rslora,
            };
            unused.remove(&ka);
            unused.remove(&kb);
            out.lora.push((path.clone(), adapter));
        }
        let (kw, kbias) = (format!("{p}.weight"), format!("{p}.bias"));
        if src.contains(&kw) {
            let w = read(&kw, &[out_f, in_f])?;
            let bias = if src.contains(&kbias) {
                Some(read(&kbias, &[out_f])?)
            } else {
                None
            };
            unused.remove(&kw);
            unused.remove(&kbias);
            out.full_copies.push((path.clone(), w, bias));
        }
    }
    if let Some(key) = unused.into_iter().next() {
        return Err(PeftFormatError::UnexpectedKey { file, key });
    }
    if out.lora.is_empty() && out.full_copies.is_empty() {
        return Err(PeftFormatError::Empty { file });
    }
    Ok(out)
}

/// Every linear layer of `model` with its PEFT names and shape, for [`read_adapter`].
pub fn layer_shapes(model: &dyn AdaptableModel) -> Vec<LayerShape> {
    model
        .linears()
        .iter()
        .map(|l| LayerShape {
            path: l.path.clone(),
            aliases: model.peft_aliases(&l.path),
            dims: l.dims(),
        })
        .collect()
}

/// Attaches a read adapter to `model` as `name` (not made active).
pub fn attach_read(
    model: &mut dyn AdaptableModel,
    read: &ReadAdapter,
    name: &str,
) -> Result<(), PeftFormatError> {
    for layer in model.linears_mut() {
        if let Some((_, ad)) = read.lora.iter().find(|(p, _)| *p == layer.path) {
            layer.add_adapter(name, ad.clone());
        }
        if let Some((_, w, bias)) = read.full_copies.iter().find(|(p, _, _)| *p == layer.path) {
            let key = format!("{PREFIX}{}.weight", layer.path);
            layer
                .add_full_copy(name)
                .map_err(PeftFormatError::tensor(&key))?;
            if let Some(copy) = layer.full_copy(name) {
                copy.weight.set(w).map_err(PeftFormatError::tensor(&key))?;
                if let (Some(v), Some(t)) = (&copy.bias, bias) {
                    v.set(t).map_err(PeftFormatError::tensor(&key))?;
                }
            }
        }
    }
    Ok(())
}

/// Loads `<dir>` as adapter `name` and makes it the only active adapter. Returns its config.
pub fn load_adapter(
    model: &mut dyn AdaptableModel,
    dir: &Path,
    name: &str,
) -> Result<AdapterConfig, PeftFormatError> {
    let device = model.device().clone();
    let read = read_adapter(dir, &layer_shapes(model), &device)?;
    attach_read(model, &read, name)?;
    crate::runtime::adapters::attach::set_active(model, &[(name.to_string(), 1.0)]);
    Ok(read.config)
}
