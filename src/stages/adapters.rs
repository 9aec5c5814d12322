//! Attaching, saving and loading the adapters of a stage's model: LoRA (and DoRA) through the
//! adaptable layers, bottleneck adapters through the residual hook, the classification head as
//! `modules_to_save`. Shared by the train, eval and merge stages. Adapter `i` of a train is
//! saved in `adapters/<i>/` of its stage folder. It must not train or evaluate.

use super::loaded::Loaded;
use crate::plan::configs::{AdapterConfig, AdapterPick};
use crate::runtime::adapters::attach::{attach_lora, set_active, LoraConfig};
use crate::runtime::adapters::bottleneck::BottleneckAdapter;
use crate::runtime::adapters::bottleneck_config::{
    Activation, BottleneckConfig, BottleneckKind, SiteNames, Width,
};
use crate::runtime::adapters::combine::{add_weighted_adapter, Combination};
use crate::runtime::adapters::convert::{snapshot, to_plain_lora, InitialAdapter};
use crate::runtime::adapters::lora::{LoraInit, LoraSpec};
use crate::runtime::adapters::targets::TargetModules;
use crate::runtime::model_api::TaskKind;
use crate::runtime::peft_format::adapter_config::AdapterConfig as PeftConfig;
use crate::runtime::peft_format::lineage::Lineage;
use crate::runtime::peft_format::load::load_adapter;
use crate::runtime::peft_format::save::save_adapter;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Folder of adapter `index` inside a train stage's output.
pub fn adapter_dir(stage_dir: &Path, index: usize) -> PathBuf {
    stage_dir.join("adapters").join(index.to_string())
}

/// The in-model name of adapter `index` of input `slot`.
pub fn adapter_name(slot: &str, index: usize) -> String {
    format!("{}_{index}", slot.replace('.', "_"))
}

/// What [`attach`] made: LoRA configs by adapter name, the bottleneck adapter if any, and the
/// head trained alone (a linear probe: a classifier train with `adapters = []`).
pub struct Attached {
    pub lora: Vec<(String, LoraConfig)>,
    /// The initial matrices of adapters whose init moved part of the base into them (PiSSA,
    /// OLoRA): [`save_all`] saves those as plain LoRAs on the original base.
    pub initial: Vec<(String, InitialAdapter)>,
    pub bottleneck: Option<(String, Arc<BottleneckAdapter>)>,
    pub probe: Option<String>,
}

/// The file a linear probe's head is saved in (inside `adapters/0/`).
const PROBE_FILE: &str = "probe.safetensors";

/// Whether a layer is the classification head.
fn is_head(path: &str) -> bool {
    [HEAD_BERT, crate::runtime::models::score_head::SCORE]
        .iter()
        .any(|h| path == *h || path.ends_with(&format!(".{h}")))
}

/// The module path of BERT's classification head.
const HEAD_BERT: &str = "classifier";

/// The head a classifier's first adapter saves in full (`modules_to_save`): BERT's
/// `classifier`, the decoders' `score`.
fn head_name(loaded: &Loaded) -> &'static str {
    if loaded.arch == "bert" {
        HEAD_BERT
    } else {
        crate::runtime::models::score_head::SCORE
    }
}

/// Attaches fresh adapters (a stack: all active) to the model.
pub fn attach(
    loaded: &mut Loaded,
    adapters: &[AdapterConfig],
    seed: u64,
) -> anyhow::Result<Attached> {
    let classify = matches!(loaded.model.task(), TaskKind::Classify { .. });
    let mut attached = Attached {
        lora: Vec::new(),
        initial: Vec::new(),
        bottleneck: None,
        probe: None,
    };
    if adapters.is_empty() && classify {
        // A linear probe: only the head (a full trainable copy, PEFT's modules_to_save) learns.
        let name = adapter_name("train", 0);
        let mut found = false;
        for layer in loaded.model.as_adaptable_mut().linears_mut() {
            if is_head(&layer.path) {
                layer.add_full_copy(name.clone())?;
                found = true;
            }
        }
        if !found {
            bail!("a train without adapters trains the classification head alone, but this model has none");
        }
        set_active(loaded.model.as_adaptable_mut(), &[(name.clone(), 1.0)]);
        attached.probe = Some(name);
        return Ok(attached);
    }
    for (i, a) in adapters.iter().enumerate() {
        let name = adapter_name("train", i);
        match a {
            AdapterConfig::Lora {
                r,
                alpha,
                dropout,
                targets,
                rslora,
                dora,
                init,
                ..
            } => {
                let spec = LoraSpec {
                    r: *r as usize,
                    alpha: *alpha,
                    use_rslora: *rslora,
                    use_dora: *dora,
                    dropout: *dropout as f32,
                    init: match init.as_str() {
                        "gaussian" => LoraInit::Gaussian,
                        "pissa" => LoraInit::Pissa,
                        "olora" => LoraInit::Olora,
                        _ => LoraInit::KaimingUniform,
                    },
                    seed: seed.wrapping_add(i as u64),
                };
                let cfg = LoraConfig {
                    spec,
                    target_modules: TargetModules::Names(targets.clone()),
                    modules_to_save: if classify && i == 0 {
                        vec![head_name(loaded).into()]
                    } else {
                        Vec::new()
                    },
                    ..LoraConfig::default()
                };
                attach_lora(loaded.model.as_adaptable_mut(), &name, &cfg)
                    .with_context(|| format!("attaching adapter {i}"))?;
                if cfg.spec.init.mutates_base() {
                    let initial = snapshot(loaded.model.as_adaptable(), &name)?;
                    attached.initial.push((name.clone(), initial));
                }
                attached.lora.push((name, cfg));
            }
            AdapterConfig::Bottleneck {
                size,
                reduction,
                placement,
                activation,
            } => {
                if attached.bottleneck.is_some() {
                    bail!("only one bottleneck adapter per model is supported");
                }
                let mut cfg = BottleneckConfig::new(if placement == "pfeiffer" {
                    BottleneckKind::Pfeiffer
                } else {
                    BottleneckKind::Houlsby
                });
                cfg.width = match (size, reduction) {
                    (Some(s), _) => Width::Size(*s as usize),
                    (None, Some(r)) => Width::ReductionFactor(f64::from(*r)),
                    (None, None) => Width::ReductionFactor(16.0),
                };
                cfg.activation = match activation.as_str() {
                    "gelu" => Activation::Gelu,
                    "silu" => Activation::Silu,
                    _ => Activation::Relu,
                };
                cfg.seed = seed.wrapping_add(i as u64);
                let hook = Arc::new(BottleneckAdapter::new(
                    &name,
                    cfg,
                    site_names(loaded),
                    loaded.model.num_layers(),
                    loaded.model.hidden_size(),
                    loaded.model.device(),
                )?);
                loaded
                    .model
                    .as_adaptable_mut()
                    .set_residual_hook(hook.clone());
                attached.bottleneck = Some((name, hook));
            }
        }
    }
    let active: Vec<(String, f64)> = attached
        .lora
        .iter()
        .map(|(n, _)| (n.clone(), 1.0))
        .collect();
    set_active(loaded.model.as_adaptable_mut(), &active);
    Ok(attached)
}

fn site_names(loaded: &Loaded) -> SiteNames {
    if loaded.arch == "bert" {
        SiteNames::bert("bert.", "BertForSequenceClassification")
    } else {
        SiteNames::llama(&loaded.arch, "LlamaForCausalLM")
    }
}

fn task_type(loaded: &Loaded) -> &'static str {
    if matches!(loaded.model.task(), TaskKind::Classify { .. }) {
        "SEQ_CLS"
    } else {
        "CAUSAL_LM"
    }
}

/// Saves every attached adapter into `adapters/<i>/` of `out`. A PiSSA or OLoRA adapter is
/// saved converted to a plain LoRA on the original base (PEFT's
/// `path_initial_model_for_weight_conversion`), so every later stage uses the unmodified base.
pub fn save_all(loaded: &mut Loaded, attached: &Attached, out: &Path) -> anyhow::Result<()> {
    let lineage = Lineage::for_base(&loaded.base_id, loaded.folder.as_deref())?;
    let mut i = 0;
    for (name, cfg) in &attached.lora {
        let converted;
        let cfg = match attached.initial.iter().find(|(n, _)| n == name) {
            Some((_, initial)) => {
                converted = to_plain_lora(loaded.model.as_adaptable_mut(), name, cfg, initial)?;
                &converted
            }
            None => cfg,
        };
        // Save one adapter at a time as the only active one, so keys are PEFT's saved names.
        set_active(loaded.model.as_adaptable_mut(), &[(name.clone(), 1.0)]);
        let peft = PeftConfig::from_model(
            loaded.model.as_adaptable(),
            name,
            cfg,
            &loaded.name_or_path,
            task_type(loaded),
        );
        save_adapter(
            loaded.model.as_adaptable(),
            name,
            &peft,
            &lineage,
            &adapter_dir(out, i),
        )?;
        i += 1;
    }
    if let Some((_, hook)) = &attached.bottleneck {
        hook.save(&adapter_dir(out, i))?;
    }
    if let Some(name) = &attached.probe {
        let mut tensors = Vec::new();
        for layer in loaded.model.as_adaptable().linears() {
            for (key, var) in layer.named_vars(name) {
                tensors.push((key, var.as_tensor().to_dtype(candle_core::DType::F32)?));
            }
        }
        let dir = adapter_dir(out, 0);
        std::fs::create_dir_all(&dir)?;
        crate::runtime::peft_format::files::write_safetensors(&dir.join(PROBE_FILE), &tensors)?;
    }
    Ok(())
}

/// Loads a linear probe's head saved by [`save_all`] as adapter `name`.
fn load_probe(loaded: &mut Loaded, file: &Path, name: &str) -> anyhow::Result<()> {
    let tensors = candle_core::safetensors::load(file, loaded.model.device())?;
    for layer in loaded.model.as_adaptable_mut().linears_mut() {
        if !is_head(&layer.path) {
            continue;
        }
        layer.add_full_copy(name.to_string())?;
        let key = format!("base_model.model.{}", layer.path);
        let copy = layer.full_copy(name).context("the head's copy")?;
        let w = tensors
            .get(&format!("{key}.weight"))
            .with_context(|| format!("{} has no `{key}.weight`", file.display()))?;
        copy.weight.set(w)?;
        if let (Some(b), Some(t)) = (&copy.bias, tensors.get(&format!("{key}.bias"))) {
            b.set(t)?;
        }
    }
    Ok(())
}

/// Loads the adapters picked from train inputs, combines them (weighted mix) or activates them
/// together (stack). `dirs(slot)` gives an input's folder.
pub fn load_picks(
    loaded: &mut Loaded,
    picks: &[AdapterPick],
    weights: Option<&[f64]>,
    dirs: &dyn Fn(&str) -> Option<PathBuf>,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for pick in picks {
        let dir = dirs(&pick.slot).with_context(|| format!("missing input `{}`", pick.slot))?;
        let count = std::fs::read_dir(dir.join("adapters"))
            .map(|d| d.count())
            .unwrap_or(0);
        let indices: Vec<usize> = match pick.index {
            Some(i) => vec![i],
            None => (0..count).collect(),
        };
        for i in indices {
            let adir = adapter_dir(&dir, i);
            let name = adapter_name(&pick.slot, i);
            if adir.join(PROBE_FILE).is_file() {
                load_probe(loaded, &adir.join(PROBE_FILE), &name)?;
                names.push(name);
            } else if adir.join("adapter_config.json").is_file() && PeftConfig::read(&adir).is_ok()
            {
                load_adapter(loaded.model.as_adaptable_mut(), &adir, &name)
                    .with_context(|| format!("loading {}", adir.display()))?;
                names.push(name);
            } else {
                let hook = BottleneckAdapter::load(
                    &adir,
                    site_names(loaded),
                    loaded.model.num_layers(),
                    loaded.model.device(),
                )?;
                loaded
                    .model
                    .as_adaptable_mut()
                    .set_residual_hook(Arc::new(hook));
            }
        }
    }
    match weights {
        Some(w) if names.len() > 1 => {
            let sources: Vec<(String, f64)> =
                names.iter().cloned().zip(w.iter().copied()).collect();
            // PEFT's `linear` needs equal ranks; `cat` combines any.
            if add_weighted_adapter(
                loaded.model.as_adaptable_mut(),
                &sources,
                "mix",
                Combination::Linear,
            )
            .is_err()
            {
                add_weighted_adapter(
                    loaded.model.as_adaptable_mut(),
                    &sources,
                    "mix",
                    Combination::Cat,
                )?;
            }
            set_active(loaded.model.as_adaptable_mut(), &[("mix".into(), 1.0)]);
            Ok(vec!["mix".into()])
        }
        _ => {
            let active: Vec<(String, f64)> = names.iter().map(|n| (n.clone(), 1.0)).collect();
            set_active(loaded.model.as_adaptable_mut(), &active);
            Ok(names)
        }
    }
}
