//! Configuration of bottleneck adapters in AdapterHub's terms: placement (Houlsby / Pfeiffer),
//! width, activation, initialisation, where the weights live in a checkpoint, and the reading of
//! AdapterHub's `adapter_config.json` `config` object (refusing options peftc lacks).
//!
//! Must not hold weights.

use crate::runtime::adapters::residual::Site;
use candle_core::{Result, Tensor};

/// Errors of bottleneck adapter configuration, saving and loading; each names the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BottleneckError {
    /// The adapter configuration asks for something this implementation does not have.
    #[error("{file}: unsupported bottleneck adapter option `{option}`")]
    #[diagnostic(
        code(peftc::bottleneck::unsupported),
        help("peftc supports sequential Houlsby / Pfeiffer adapters without extra layer norms, gating or PHM layers")
    )]
    Unsupported { file: String, option: String },
    /// The bottleneck would have no width.
    #[error("bottleneck width for hidden size {hidden} is zero")]
    #[diagnostic(code(peftc::bottleneck::width))]
    ZeroWidth { hidden: usize },
    /// A file could not be read, parsed or written.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::bottleneck::io))]
    Io { file: String, message: String },
    /// A weight is missing or has the wrong shape.
    #[error("{file}: tensor `{name}`: {message}")]
    #[diagnostic(code(peftc::bottleneck::tensor))]
    Tensor {
        file: String,
        name: String,
        message: String,
    },
}

/// The two published placements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BottleneckKind {
    /// Houlsby et al. (2019): after attention and after the feed-forward block.
    Houlsby,
    /// Pfeiffer et al. (2020): after the feed-forward block only, reading the normed stream.
    Pfeiffer,
}

/// The bottleneck non-linearity (AdapterHub's `non_linearity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `relu`.
    Relu,
    /// `gelu`: the exact, erf-based GELU (transformers' `gelu`).
    Gelu,
    /// `gelu_new` / `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    /// From AdapterHub's / transformers' activation name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "relu" => Some(Self::Relu),
            "gelu" => Some(Self::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    /// The name written to `adapter_config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Gelu => "gelu",
            Self::GeluTanh => "gelu_new",
            Self::Silu => "swish",
        }
    }

    pub(crate) fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Relu => x.relu(),
            Self::Gelu => crate::runtime::ops::gelu::gelu_erf(x),
            Self::GeluTanh => x.gelu(),
            Self::Silu => x.silu(),
        }
    }
}

/// The bottleneck width.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Width {
    /// A fixed number of bottleneck units.
    Size(usize),
    /// `hidden / reduction_factor` units (floored, at least 1), as AdapterHub computes it.
    ReductionFactor(f64),
}

impl Width {
    /// The number of bottleneck units for a hidden size.
    pub fn units(self, hidden: usize) -> usize {
        match self {
            Self::Size(m) => m,
            Self::ReductionFactor(rf) => ((hidden as f64 / rf).floor() as usize).max(1),
        }
    }
}

/// How the new weights are initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// AdapterHub's default (`bert`): both projections N(0, 0.02), biases zero.
    Bert,
    /// AdapterHub's `mam_adapter`: down Kaiming-uniform, up and biases zero (starts exactly
    /// as the base model).
    ZeroUp,
}

/// A bottleneck adapter's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BottleneckConfig {
    /// Placement (Houlsby or Pfeiffer).
    pub kind: BottleneckKind,
    /// Bottleneck width.
    pub width: Width,
    /// Non-linearity.
    pub activation: Activation,
    /// Dropout on the up-projection output while training.
    pub dropout: f32,
    /// Multiplies the up-projection output.
    pub scaling: f64,
    /// Layers without adapters.
    pub leave_out: Vec<usize>,
    /// Initialisation of new weights.
    pub init: Init,
    /// Seed for the initialisation.
    pub seed: u64,
}

impl BottleneckConfig {
    /// A config with AdapterHub's defaults for `kind` (reduction factor 16; relu for Pfeiffer,
    /// swish for Houlsby).
    pub fn new(kind: BottleneckKind) -> Self {
        Self {
            kind,
            width: Width::ReductionFactor(16.0),
            activation: match kind {
                BottleneckKind::Houlsby => Activation::Silu,
                BottleneckKind::Pfeiffer => Activation::Relu,
            },
            dropout: 0.0,
            scaling: 1.0,
            leave_out: Vec::new(),
            init: Init::Bert,
            seed: 0,
        }
    }

    pub(crate) fn has_site(&self, layer: usize, site: Site) -> bool {
        if self.leave_out.contains(&layer) {
            return false;
        }
        match (self.kind, site) {
            (BottleneckKind::Houlsby, _) => true,
            (BottleneckKind::Pfeiffer, Site::AfterFeedForward) => true,
            (BottleneckKind::Pfeiffer, Site::AfterAttention) => false,
        }
    }

    pub(crate) fn original_ln_before(&self) -> bool {
        self.kind == BottleneckKind::Pfeiffer
    }

    /// AdapterHub's `reduction_factor` for a hidden size: for a fixed size, a factor whose floor
    /// division gives that size back.
    pub(crate) fn reduction_factor(&self, hidden: usize) -> f64 {
        match self.width {
            Width::ReductionFactor(rf) => rf,
            Width::Size(m) => {
                let mut rf = hidden as f64 / m as f64;
                while ((hidden as f64 / rf).floor() as usize) < m {
                    rf *= 1.0 - 1e-12;
                }
                rf
            }
        }
    }
}

/// Where the adapters of each layer live in the checkpoint, as AdapterHub names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteNames {
    /// Module path of the attention site with `{layer}` for the layer index.
    pub attention: String,
    /// Module path of the feed-forward site with `{layer}` for the layer index.
    pub feed_forward: String,
    /// `model_type` written to `adapter_config.json`.
    pub model_type: String,
    /// `model_class` written to `adapter_config.json`.
    pub model_class: String,
}

impl SiteNames {
    /// BERT: `<prefix>encoder.layer.{layer}.attention.output` and `<prefix>encoder.layer.{layer}.output`;
    /// `prefix` is `bert.` for task models, empty for a bare `BertModel`.
    pub fn bert(prefix: &str, model_class: &str) -> Self {
        Self {
            attention: format!("{prefix}encoder.layer.{{layer}}.attention.output"),
            feed_forward: format!("{prefix}encoder.layer.{{layer}}.output"),
            model_type: "bert".into(),
            model_class: model_class.into(),
        }
    }

    /// Llama family: `model.layers.{layer}.attention_adapters` and `model.layers.{layer}.output_adapters`.
    pub fn llama(model_type: &str, model_class: &str) -> Self {
        Self {
            attention: "model.layers.{layer}.attention_adapters".into(),
            feed_forward: "model.layers.{layer}.output_adapters".into(),
            model_type: model_type.into(),
            model_class: model_class.into(),
        }
    }

    pub(crate) fn module(&self, layer: usize, site: Site, name: &str) -> String {
        let t = match site {
            Site::AfterAttention => &self.attention,
            Site::AfterFeedForward => &self.feed_forward,
        };
        format!(
            "{}.adapters.{name}",
            t.replace("{layer}", &layer.to_string())
        )
    }
}

/// Reads AdapterHub's `config` object, refusing options this implementation lacks.
pub(crate) fn parse_config(
    c: &serde_json::Value,
    file: &str,
) -> std::result::Result<BottleneckConfig, BottleneckError> {
    let unsupported = |option: &str| BottleneckError::Unsupported {
        file: file.to_string(),
        option: option.to_string(),
    };
    let flag = |k: &str, default: bool| c.get(k).and_then(|v| v.as_bool()).unwrap_or(default);
    for (k, bad) in [
        ("ln_before", true),
        ("ln_after", true),
        ("use_gating", true),
        ("is_parallel", true),
        ("phm_layer", true),
        ("adapter_residual_before_ln", true),
        ("cross_adapter", true),
        ("original_ln_after", false),
        ("residual_before_ln", false),
        ("output_adapter", false),
    ] {
        if flag(k, !bad) == bad {
            return Err(unsupported(k));
        }
    }
    if c.get("residual_before_ln")
        .map(|v| v.is_string())
        .unwrap_or(false)
    {
        return Err(unsupported("residual_before_ln"));
    }
    if c.get("inv_adapter").map(|v| !v.is_null()).unwrap_or(false) {
        return Err(unsupported("inv_adapter"));
    }
    let mh = flag("mh_adapter", false);
    let ln_before = flag("original_ln_before", false);
    let kind = match (mh, ln_before) {
        (true, false) => BottleneckKind::Houlsby,
        (false, true) => BottleneckKind::Pfeiffer,
        _ => return Err(unsupported("mh_adapter/original_ln_before combination")),
    };
    let rf = c
        .get("reduction_factor")
        .and_then(|v| v.as_f64())
        .ok_or_else(|| unsupported("reduction_factor (per-layer mapping)"))?;
    let act_name = c
        .get("non_linearity")
        .and_then(|v| v.as_str())
        .unwrap_or("relu");
    let activation = Activation::from_name(act_name)
        .ok_or_else(|| unsupported(&format!("non_linearity={act_name}")))?;
    let scaling = match c.get("scaling") {
        None => 1.0,
        Some(v) => v
            .as_f64()
            .ok_or_else(|| unsupported("scaling (learned/channel)"))?,
    };
    let leave_out = c
        .get("leave_out")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_u64())
                .map(|x| x as usize)
                .collect()
        })
        .unwrap_or_default();
    Ok(BottleneckConfig {
        kind,
        width: Width::ReductionFactor(rf),
        activation,
        dropout: c.get("dropout").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32,
        scaling,
        leave_out,
        init: Init::Bert,
        seed: 0,
    })
}
