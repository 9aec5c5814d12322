//! Attaching a LoRA / DoRA configuration to every matching linear layer of a model, choosing
//! the active adapters, merging, and listing trainable variables under PEFT's key names.
//!
//! Works on any [`AdaptableModel`], so it never depends on an architecture.

use crate::runtime::adapters::error::AdapterError;
use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::adapters::lora::{row_norms, LoraAdapter, LoraInit, LoraSpec};
use crate::runtime::adapters::olora::olora_adapter;
use crate::runtime::adapters::pissa::pissa_adapter;
use crate::runtime::adapters::targets::{component_match, TargetMatcher, TargetModules};
use crate::runtime::model_api::AdaptableModel;
use candle_core::{DType, Var};

/// A LoRA adapter declaration, as PEFT's `LoraConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// Rank, alpha, rsLoRA, DoRA, dropout, init, seed.
    pub spec: LoraSpec,
    /// Which linear layers get the adapter.
    pub target_modules: TargetModules,
    /// Layers never adapted (suffix match).
    pub exclude_modules: Vec<String>,
    /// Layers trained as full copies (e.g. a classification head).
    pub modules_to_save: Vec<String>,
    /// Only these layer indices, when given.
    pub layers_to_transform: Option<Vec<usize>>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            spec: LoraSpec::default(),
            target_modules: TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
            exclude_modules: Vec::new(),
            modules_to_save: Vec::new(),
            layers_to_transform: None,
        }
    }
}

/// What an attach did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttachReport {
    /// Paths that got a LoRA adapter.
    pub adapted: Vec<String>,
    /// Paths that got a trainable full copy.
    pub full_copies: Vec<String>,
    /// Number of trainable parameters added.
    pub trainable_params: usize,
}

/// Attaches adapter `name` to every matching linear layer and makes it the only active adapter.
/// Errors when nothing matches (as PEFT does) or when the rank does not fit a layer.
pub fn attach_lora(
    model: &mut dyn AdaptableModel,
    name: &str,
    cfg: &LoraConfig,
) -> Result<AttachReport, AdapterError> {
    let matcher = TargetMatcher::new(
        &cfg.target_modules,
        &cfg.exclude_modules,
        &cfg.modules_to_save,
        cfg.layers_to_transform.as_deref(),
    )?;
    let device = model.device().clone();
    let mut report = AttachReport::default();
    let example = model
        .linears()
        .first()
        .map(|l| l.path.clone())
        .unwrap_or_default();
    for (i, layer) in model.linears_mut().into_iter().enumerate() {
        if cfg
            .modules_to_save
            .iter()
            .any(|m| component_match(&layer.path, m))
        {
            layer
                .add_full_copy(name)
                .map_err(AdapterError::tensor(&layer.path))?;
            let (o, inp) = layer.dims();
            report.trainable_params += o * inp + if layer.bias().is_some() { o } else { 0 };
            report.full_copies.push(layer.path.clone());
            continue;
        }
        if !matcher.matches(&layer.path) {
            continue;
        }
        let (out_f, in_f) = layer.dims();
        let r = cfg.spec.r;
        if r == 0 || r > out_f.min(in_f) {
            return Err(AdapterError::BadRank {
                r,
                layer: layer.path.clone(),
                out: out_f,
                input: in_f,
            });
        }
        let mut spec = cfg.spec.clone();
        spec.seed = spec.seed.wrapping_add(i as u64);
        let adapter = build_adapter(layer, &spec, &device)?;
        report.trainable_params += r * (in_f + out_f) + if spec.use_dora { out_f } else { 0 };
        layer.add_adapter(name, adapter);
        report.adapted.push(layer.path.clone());
    }
    if report.adapted.is_empty() && report.full_copies.is_empty() {
        return Err(AdapterError::NoTarget {
            targets: cfg.target_modules.describe(),
            example,
        });
    }
    set_active(model, &[(name.to_string(), 1.0)]);
    Ok(report)
}

fn build_adapter(
    layer: &mut AdaptableLinear,
    spec: &LoraSpec,
    device: &candle_core::Device,
) -> Result<LoraAdapter, AdapterError> {
    let err = AdapterError::tensor(&layer.path);
    let (out_f, in_f) = layer.dims();
    let mut adapter = if spec.init.mutates_base() {
        let (adapter, delta) = if spec.init == LoraInit::Pissa {
            pissa_adapter(layer.base().as_ref(), spec)
        } else {
            olora_adapter(layer.base().as_ref(), spec)
        }
        .map_err(AdapterError::tensor(&layer.path))?;
        layer
            .subtract_from_base(&delta)
            .map_err(AdapterError::tensor(&layer.path))?;
        adapter
    } else {
        LoraAdapter::init(spec, out_f, in_f, device).map_err(AdapterError::tensor(&layer.path))?
    };
    if spec.use_dora {
        let magnitude = init_magnitude(layer, &adapter).map_err(err)?;
        adapter.magnitude = Some(magnitude);
    }
    Ok(adapter)
}

/// DoRA's initial magnitude: `||W + s B A||` per output row.
pub fn init_magnitude(layer: &AdaptableLinear, adapter: &LoraAdapter) -> candle_core::Result<Var> {
    let w = layer.base().dequantize(DType::F32)?;
    Var::from_tensor(&row_norms(&(w + adapter.delta()?)?)?)
}

/// Makes these adapters (with weights) the active set on every layer.
pub fn set_active(model: &mut dyn AdaptableModel, active: &[(String, f64)]) {
    for layer in model.linears_mut() {
        layer.set_active(active);
    }
}

/// Sets (or clears) the per-row adapters of every layer (continuous batching across adapters).
pub fn set_row_adapters(
    model: &mut dyn AdaptableModel,
    rows: Option<std::sync::Arc<crate::runtime::adapters::linear::RowAdapters>>,
) {
    for layer in model.linears_mut() {
        layer.set_row_adapters(rows.clone());
    }
}

/// Names of every adapter on the model, in first-seen order.
pub fn adapter_names(model: &dyn AdaptableModel) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for layer in model.linears() {
        for n in layer.adapter_names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// Merges adapter `name` into the base of every layer that has it.
pub fn merge_adapter(model: &mut dyn AdaptableModel, name: &str) -> Result<(), AdapterError> {
    if !adapter_names(model).iter().any(|n| n == name) {
        return Err(AdapterError::Unknown {
            name: name.to_string(),
        });
    }
    for layer in model.linears_mut() {
        let path = layer.path.clone();
        layer.merge(name).map_err(AdapterError::tensor(&path))?;
    }
    Ok(())
}

/// Undoes [`merge_adapter`].
pub fn unmerge_adapter(model: &mut dyn AdaptableModel, name: &str) -> Result<(), AdapterError> {
    for layer in model.linears_mut() {
        let path = layer.path.clone();
        layer.unmerge(name).map_err(AdapterError::tensor(&path))?;
    }
    Ok(())
}

/// Removes adapter `name` from every layer.
pub fn remove_adapter(model: &mut dyn AdaptableModel, name: &str) -> Result<(), AdapterError> {
    for layer in model.linears_mut() {
        let path = layer.path.clone();
        layer
            .remove_adapter(name)
            .map_err(AdapterError::tensor(&path))?;
    }
    Ok(())
}

/// Trainable variables of the active, unmerged adapters with PEFT key names. With one active
/// adapter the keys are PEFT's saved names (`...q_proj.lora_A.weight`); with several, the
/// adapter name is inserted as in PEFT's in-memory names (`...q_proj.lora_A.<name>.weight`).
pub fn trainable_vars(linears: &[&AdaptableLinear]) -> Vec<(String, Var)> {
    let mut active: Vec<String> = Vec::new();
    for l in linears {
        for (n, _) in l.active() {
            if !active.contains(n) {
                active.push(n.clone());
            }
        }
    }
    let several = active.len() > 1;
    let mut out = Vec::new();
    for l in linears {
        for (n, _) in l.active() {
            if l.merged().contains(n) {
                continue;
            }
            for (key, var) in l.named_vars(n) {
                let key = if several { in_memory_key(&key, n) } else { key };
                out.push((key, var));
            }
        }
    }
    out
}

fn in_memory_key(key: &str, name: &str) -> String {
    for part in [".lora_A.weight", ".lora_B.weight"] {
        if let Some(stem) = key.strip_suffix(part) {
            let which = &part[1..7];
            return format!("{stem}.{which}.{name}.weight");
        }
    }
    if let Some(stem) = key.strip_suffix(".lora_magnitude_vector") {
        return format!("{stem}.lora_magnitude_vector.{name}.weight");
    }
    for part in [".weight", ".bias"] {
        if let Some(stem) = key.strip_suffix(part) {
            return format!("{stem}.modules_to_save.{name}{part}");
        }
    }
    key.to_string()
}

/// Keys of trainable variables that received no gradient: a silent graph cut. The trainer
/// refuses to go on when this is not empty after the first backward.
pub fn vars_without_gradient(
    vars: &[(String, Var)],
    grads: &candle_core::backprop::GradStore,
) -> Vec<String> {
    vars.iter()
        .filter(|(_, v)| grads.get(v.as_tensor()).is_none())
        .map(|(k, _)| k.clone())
        .collect()
}
