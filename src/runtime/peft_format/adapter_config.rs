//! `adapter_config.json`: PEFT's `LoraConfig` fields, read and written with PEFT's names.
//!
//! Fields peftc does not use are kept (`extra`) so a config survives a round trip.

use crate::runtime::adapters::attach::LoraConfig;
use crate::runtime::adapters::lora::{LoraInit, LoraSpec};
use crate::runtime::adapters::targets::TargetModules;
use crate::runtime::model_api::AdaptableModel;
use crate::runtime::peft_format::error::PeftFormatError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// How the adapted layers store their weights (PEFT's `fan_in_fan_out`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// `nn.Linear`: `[out, in]`.
    Linear,
    /// GPT-2 `Conv1D`: `[in, out]` (`fan_in_fan_out = true`).
    Conv1D,
}

/// PEFT's adapter config as stored in `adapter_config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    #[serde(default = "lora_type")]
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(default = "default_r")]
    pub r: usize,
    #[serde(default = "default_alpha")]
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    /// A list of names, or a regex / `all-linear` string.
    #[serde(default)]
    pub target_modules: Option<serde_json::Value>,
    #[serde(default)]
    pub exclude_modules: Option<serde_json::Value>,
    #[serde(default = "none_bias")]
    pub bias: String,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default = "default_init")]
    pub init_lora_weights: serde_json::Value,
    #[serde(default)]
    pub layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    pub layers_pattern: Option<serde_json::Value>,
    #[serde(default)]
    pub rank_pattern: BTreeMap<String, usize>,
    #[serde(default)]
    pub alpha_pattern: BTreeMap<String, f64>,
    #[serde(default = "default_true")]
    pub inference_mode: bool,
    /// Every other field, kept as is.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `LoraConfig().to_dict()` of the PEFT version whose format peftc writes (PEFT 0.21.2, made by
/// `tests/parity/make_peft_format_fixtures.py`), without `peft_version`.
const LORA_DEFAULTS: &str = include_str!("lora_defaults.json");

/// The head names PEFT adds to `modules_to_save` for sequence classification.
const SEQ_CLS_HEADS: [&str; 2] = ["classifier", "score"];

fn lora_type() -> String {
    "LORA".into()
}
fn default_r() -> usize {
    8
}
fn default_alpha() -> f64 {
    8.0
}
fn none_bias() -> String {
    "none".into()
}
fn default_init() -> serde_json::Value {
    serde_json::Value::Bool(true)
}
fn default_true() -> bool {
    true
}

/// PEFT's `get_pattern_key`: a pattern matches a path equal to it or ending in `.<pattern>`.
fn pattern_for<'a, T>(patterns: &'a BTreeMap<String, T>, path: &str) -> Option<&'a T> {
    patterns
        .iter()
        .find(|(k, _)| path == k.as_str() || path.ends_with(&format!(".{k}")))
        .map(|(_, v)| v)
}

impl AdapterConfig {
    /// Reads `<dir>/adapter_config.json`.
    pub fn read(dir: &Path) -> Result<Self, PeftFormatError> {
        let path = dir.join("adapter_config.json");
        let text = crate::safe_fs::read_text_limited(&path, crate::safe_fs::JSON_LIMIT)
            .map_err(PeftFormatError::io(&path))?;
        let cfg: Self = serde_json::from_str(&text).map_err(|e| PeftFormatError::Config {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        if cfg.peft_type != "LORA" {
            return Err(PeftFormatError::Config {
                file: path.display().to_string(),
                message: format!(
                    "peft_type `{}` is not loaded by peftc (LORA is)",
                    cfg.peft_type
                ),
            });
        }
        if cfg.bias != "none" {
            return Err(PeftFormatError::Config {
                file: path.display().to_string(),
                message: format!("bias = `{}` is not supported (only \"none\")", cfg.bias),
            });
        }
        Ok(cfg)
    }

    /// The config PEFT would write for adapter `name` of `model` declared by `lora`: the
    /// adapted paths (PEFT saves `all-linear` expanded, by the paths of the class it wraps) and
    /// `fan_in_fan_out` (GPT-2 `Conv1D`) come from the model's layers. For `SEQ_CLS`, PEFT adds
    /// the head names `classifier` and `score` to `modules_to_save`; so does this.
    pub fn from_model(
        model: &dyn AdaptableModel,
        name: &str,
        lora: &LoraConfig,
        base_model: &str,
        task_type: &str,
    ) -> Self {
        let layers: Vec<_> = model
            .linears()
            .into_iter()
            .filter(|l| l.adapter(name).is_some())
            .collect();
        let adapted: Vec<String> = layers.iter().map(|l| model.peft_path(&l.path)).collect();
        let layout = if layers.iter().any(|l| l.conv1d_layout()) {
            WeightLayout::Conv1D
        } else {
            WeightLayout::Linear
        };
        let mut config = Self::from_lora(lora, base_model, task_type, &adapted, layout);
        if task_type == "SEQ_CLS" {
            let mut keep: Vec<String> = config
                .modules_to_save
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|m| !SEQ_CLS_HEADS.contains(&m.as_str()))
                .collect();
            keep.extend(SEQ_CLS_HEADS.iter().map(|s| s.to_string()));
            config.modules_to_save = Some(keep);
        }
        config
    }

    /// The JSON PEFT writes: every field of PEFT's `LoraConfig` (its defaults where peftc sets
    /// nothing), keys sorted, integral `lora_alpha` as an integer. `peft_version` is left out
    /// (PEFT fills it in on load); fields read from a PEFT file are kept.
    pub fn to_json(&self) -> Result<serde_json::Value, PeftFormatError> {
        let err = |e: serde_json::Error| PeftFormatError::Config {
            file: "adapter_config.json".into(),
            message: e.to_string(),
        };
        let mut out: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(LORA_DEFAULTS).map_err(err)?;
        let ours = serde_json::to_value(self).map_err(err)?;
        if let serde_json::Value::Object(map) = ours {
            out.extend(map);
        }
        if self.lora_alpha.fract() == 0.0 && self.lora_alpha.abs() < 1e15 {
            out.insert(
                "lora_alpha".into(),
                serde_json::json!(self.lora_alpha as i64),
            );
        }
        Ok(serde_json::Value::Object(out.into_iter().collect()))
    }

    /// The config PEFT would write for `lora`, with the adapted layer paths (used for
    /// `all-linear`, which PEFT saves expanded) and the targets' weight layout.
    pub fn from_lora(
        lora: &LoraConfig,
        base_model: &str,
        task_type: &str,
        adapted: &[String],
        layout: WeightLayout,
    ) -> Self {
        let conv1d = layout == WeightLayout::Conv1D;
        let target_modules = match &lora.target_modules {
            TargetModules::Names(n) => serde_json::json!(n),
            TargetModules::Regex(r) => serde_json::json!(r),
            TargetModules::AllLinear => {
                let mut v = adapted.to_vec();
                v.sort();
                serde_json::json!(v)
            }
        };
        let init = match lora.spec.init {
            LoraInit::KaimingUniform | LoraInit::RandomBoth { .. } => serde_json::json!(true),
            LoraInit::Gaussian => serde_json::json!("gaussian"),
            LoraInit::Pissa => serde_json::json!("pissa"),
            LoraInit::Olora => serde_json::json!("olora"),
        };
        Self {
            peft_type: lora_type(),
            task_type: Some(task_type.to_string()),
            base_model_name_or_path: Some(base_model.to_string()),
            revision: None,
            r: lora.spec.r,
            lora_alpha: lora.spec.alpha,
            // The f32 as written (0.05, not 0.05000000074505806).
            lora_dropout: lora
                .spec
                .dropout
                .to_string()
                .parse()
                .unwrap_or(f64::from(lora.spec.dropout)),
            target_modules: Some(target_modules),
            exclude_modules: if lora.exclude_modules.is_empty() {
                None
            } else {
                Some(serde_json::json!(lora.exclude_modules))
            },
            bias: none_bias(),
            use_rslora: lora.spec.use_rslora,
            use_dora: lora.spec.use_dora,
            modules_to_save: if lora.modules_to_save.is_empty() {
                None
            } else {
                Some(lora.modules_to_save.clone())
            },
            fan_in_fan_out: conv1d,
            init_lora_weights: init,
            layers_to_transform: lora
                .layers_to_transform
                .as_ref()
                .map(|l| serde_json::json!(l)),
            layers_pattern: None,
            rank_pattern: BTreeMap::new(),
            alpha_pattern: BTreeMap::new(),
            inference_mode: true,
            extra: BTreeMap::new(),
        }
    }

    /// Rank of the layer at `path` (`rank_pattern` first).
    pub fn rank_for(&self, path: &str) -> usize {
        pattern_for(&self.rank_pattern, path)
            .copied()
            .unwrap_or(self.r)
    }

    /// Scale of the layer at `path`: `alpha / r` or `alpha / sqrt(r)` (rsLoRA), patterns applied.
    pub fn scale_for(&self, path: &str) -> f64 {
        let r = self.rank_for(path).max(1) as f64;
        let alpha = pattern_for(&self.alpha_pattern, path)
            .copied()
            .unwrap_or(self.lora_alpha);
        if self.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        }
    }

    /// The runtime declaration this config describes.
    pub fn to_lora(&self) -> LoraConfig {
        let strings = |v: &Option<serde_json::Value>| -> Vec<String> {
            match v {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
                Some(serde_json::Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let target_modules = match &self.target_modules {
            Some(serde_json::Value::String(s)) if s == "all-linear" => TargetModules::AllLinear,
            Some(serde_json::Value::String(s)) => TargetModules::Regex(s.clone()),
            other => TargetModules::Names(strings(other)),
        };
        let init = match self.init_lora_weights.as_str() {
            Some("gaussian") => LoraInit::Gaussian,
            Some(s) if s.starts_with("pissa") => LoraInit::Pissa,
            Some("olora") => LoraInit::Olora,
            _ => LoraInit::KaimingUniform,
        };
        let layers_to_transform = match &self.layers_to_transform {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(|n| vec![n as usize]),
            Some(serde_json::Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|v| v.as_u64().map(|n| n as usize))
                    .collect(),
            ),
            _ => None,
        };
        LoraConfig {
            spec: LoraSpec {
                r: self.r,
                alpha: self.lora_alpha,
                use_rslora: self.use_rslora,
                use_dora: self.use_dora,
                dropout: self.lora_dropout as f32,
                init,
                seed: 0,
            },
            target_modules,
            exclude_modules: strings(&self.exclude_modules),
            modules_to_save: self.modules_to_save.clone().unwrap_or_default(),
            layers_to_transform,
        }
    }
}
