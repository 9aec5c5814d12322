//! Bottleneck (residual) adapters as AdapterHub's `adapters` package defines them: Houlsby
//! (`DoubleSeqBnConfig`: after attention and after the feed-forward block) and Pfeiffer
//! (`SeqBnConfig`: after the feed-forward block only), with a size or a reduction factor and a
//! relu / gelu / silu bottleneck.
//!
//! At a site whose sub-block output is `h`, residual input `x` and post-add norm `LN` (identity in
//! pre-LN models), AdapterHub's sequential adapter computes (`adapters/methods/modeling.py`,
//! `Adapter.pre_forward` / `forward` / `post_forward`, with `residual_before_ln = true`):
//!
//! ```text
//! a   = original_ln_before ? LN(h + x) : h          // the adapter's input
//! out = up(act(down(a))) * scaling + h              // dropout on the up branch when training
//! new = original_ln_after ? LN(out + x) : out       // the new residual stream
//! ```
//!
//! Houlsby has `original_ln_before = false`, Pfeiffer `true`. Saved and loaded in AdapterHub's
//! format: `adapter_config.json` (`{"config": {...}, "name", "hidden_size", "model_type", ...}`)
//! and `adapter.safetensors` with keys such as
//! `bert.encoder.layer.0.output.adapters.<name>.adapter_down.0.weight`.
//!
//! Must not touch the base model's weights; it owns only the adapter parameters.

use crate::runtime::adapters::bottleneck_config::parse_config;
pub use crate::runtime::adapters::bottleneck_config::{
    Activation, BottleneckConfig, BottleneckError, BottleneckKind, Init, SiteNames, Width,
};
use crate::runtime::adapters::residual::{ResidualHook, Site, SubBlock};
use candle_core::{DType, Device, Result, Tensor, Var};
use rand::SeedableRng;
use rand_distr_free::normal_vec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One bottleneck: `up(act(down(x)))`.
#[derive(Debug, Clone)]
struct Bottleneck {
    down_w: Var,
    down_b: Var,
    up_w: Var,
    up_b: Var,
}

impl Bottleneck {
    fn forward(&self, x: &Tensor, cfg: &BottleneckConfig, train: bool) -> Result<Tensor> {
        // Parameters are f32; compute in the activations' dtype (a differentiable cast).
        let p = |v: &Var| -> Result<Tensor> {
            let t = crate::runtime::ops::no_grad::param(v);
            if t.dtype() == x.dtype() {
                Ok(t)
            } else {
                t.to_dtype(x.dtype())
            }
        };
        // As one 2-D matmul per projection over all tokens: a batched matmul against a
        // broadcast weight is several times slower on the CPU.
        let dims = x.dims().to_vec();
        let hidden = dims.last().copied().unwrap_or(0);
        let tokens = x.elem_count() / hidden.max(1);
        let x2 = x.reshape((tokens, hidden))?;
        let d = x2
            .matmul(&p(&self.down_w)?.t()?)?
            .broadcast_add(&p(&self.down_b)?)?;
        let d = cfg.activation.apply(&d)?;
        let u = d
            .matmul(&p(&self.up_w)?.t()?)?
            .broadcast_add(&p(&self.up_b)?)?
            .reshape(dims)?;
        let u = if cfg.scaling != 1.0 {
            u.affine(cfg.scaling, 0.0)?
        } else {
            u
        };
        if train && cfg.dropout > 0.0 {
            crate::runtime::ops::dropout::dropout(&u, cfg.dropout)
        } else {
            Ok(u)
        }
    }

    fn tensors(&self) -> [(&'static str, &Var); 4] {
        [
            ("adapter_down.0.weight", &self.down_w),
            ("adapter_down.0.bias", &self.down_b),
            ("adapter_up.weight", &self.up_w),
            ("adapter_up.bias", &self.up_b),
        ]
    }
}

/// A named bottleneck adapter over every layer of a model: the [`ResidualHook`] that models call.
#[derive(Debug, Clone)]
pub struct BottleneckAdapter {
    name: String,
    config: BottleneckConfig,
    names: SiteNames,
    hidden: usize,
    modules: BTreeMap<(usize, u8), Bottleneck>,
}

fn site_key(site: Site) -> u8 {
    match site {
        Site::AfterAttention => 0,
        Site::AfterFeedForward => 1,
    }
}

fn site_of(key: u8) -> Site {
    if key == 0 {
        Site::AfterAttention
    } else {
        Site::AfterFeedForward
    }
}

impl BottleneckAdapter {
    /// New, initialised adapters for a model with `num_layers` blocks of width `hidden`.
    pub fn new(
        name: &str,
        config: BottleneckConfig,
        names: SiteNames,
        num_layers: usize,
        hidden: usize,
        device: &Device,
    ) -> std::result::Result<Self, BottleneckError> {
        let m = config.width.units(hidden);
        if m == 0 || hidden == 0 {
            return Err(BottleneckError::ZeroWidth { hidden });
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
        let mut modules = BTreeMap::new();
        let err = |e: candle_core::Error| BottleneckError::Io {
            file: name.to_string(),
            message: e.to_string(),
        };
        for layer in 0..num_layers {
            for site in [Site::AfterAttention, Site::AfterFeedForward] {
                if !config.has_site(layer, site) {
                    continue;
                }
                let (down, up) = match config.init {
                    Init::Bert => (
                        normal_vec(&mut rng, m * hidden, 0.02),
                        normal_vec(&mut rng, hidden * m, 0.02),
                    ),
                    Init::ZeroUp => {
                        let bound = 1.0 / (hidden as f64).sqrt();
                        (
                            rand_distr_free::uniform_vec(&mut rng, m * hidden, bound),
                            vec![0f32; hidden * m],
                        )
                    }
                };
                let var = |v: Vec<f32>, shape: (usize, usize)| {
                    Var::from_tensor(&Tensor::from_vec(v, shape, device)?)
                };
                let b = Bottleneck {
                    down_w: var(down, (m, hidden)).map_err(err)?,
                    down_b: Var::zeros(m, DType::F32, device).map_err(err)?,
                    up_w: var(up, (hidden, m)).map_err(err)?,
                    up_b: Var::zeros(hidden, DType::F32, device).map_err(err)?,
                };
                modules.insert((layer, site_key(site)), b);
            }
        }
        Ok(Self {
            name: name.to_string(),
            config,
            names,
            hidden,
            modules,
        })
    }

    /// The adapter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &BottleneckConfig {
        &self.config
    }

    /// Number of trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.modules
            .values()
            .flat_map(|b| b.tensors())
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// Writes `adapter_config.json` and `adapter.safetensors` into `dir` (created if needed),
    /// as AdapterHub's `model.save_adapter(dir, name, use_safetensors=True)` does.
    pub fn save(&self, dir: &Path) -> std::result::Result<(), BottleneckError> {
        let io = |file: &Path, e: &dyn std::fmt::Display| BottleneckError::Io {
            file: file.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, &e))?;
        let cfg_path = dir.join("adapter_config.json");
        let json =
            serde_json::to_string_pretty(&self.config_json()).map_err(|e| io(&cfg_path, &e))?;
        std::fs::write(&cfg_path, json).map_err(|e| io(&cfg_path, &e))?;
        let st_path = dir.join("adapter.safetensors");
        let mut tensors = Vec::new();
        for (key, var) in self.trainable() {
            tensors.push((key, var.as_tensor().clone()));
        }
        candle_core::safetensors::save(
            &tensors
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
            &st_path,
        )
        .map_err(|e| io(&st_path, &e))
    }

    fn config_json(&self) -> serde_json::Value {
        let c = &self.config;
        let rf = c.reduction_factor(self.hidden);
        let houlsby = c.kind == BottleneckKind::Houlsby;
        serde_json::json!({
            "config": {
                "adapter_residual_before_ln": false,
                "cross_adapter": false,
                "dropout": c.dropout,
                "factorized_phm_W": true,
                "factorized_phm_rule": false,
                "hypercomplex_nonlinearity": "glorot-uniform",
                "init_weights": match c.init { Init::Bert => "bert", Init::ZeroUp => "mam_adapter" },
                "init_weights_seed": null,
                "inv_adapter": null,
                "inv_adapter_reduction_factor": null,
                "is_parallel": false,
                "learn_phm": true,
                "leave_out": c.leave_out,
                "ln_after": false,
                "ln_before": false,
                "mh_adapter": houlsby,
                "non_linearity": c.activation.name(),
                "original_ln_after": true,
                "original_ln_before": !houlsby,
                "output_adapter": true,
                "phm_bias": true,
                "phm_c_init": "normal",
                "phm_dim": 4,
                "phm_init_range": 0.0001,
                "phm_layer": false,
                "phm_rank": 1,
                "reduction_factor": rf,
                "residual_before_ln": true,
                "scaling": c.scaling,
                "shared_W_phm": false,
                "shared_phm_rule": true,
                "stochastic_depth": 0.0,
                "use_gating": false
            },
            "hidden_size": self.hidden,
            "model_class": self.names.model_class,
            "model_name": "",
            "model_type": self.names.model_type,
            "name": self.name,
            "version": "adapters.1.3.0"
        })
    }

    /// Loads an adapter saved by AdapterHub (`save_adapter(..., use_safetensors=True)`) or by
    /// [`BottleneckAdapter::save`]. The weights' names must match `names`.
    pub fn load(
        dir: &Path,
        names: SiteNames,
        num_layers: usize,
        device: &Device,
    ) -> std::result::Result<Self, BottleneckError> {
        let cfg_path = dir.join("adapter_config.json");
        let file = cfg_path.display().to_string();
        let io = |f: &PathBuf, e: &dyn std::fmt::Display| BottleneckError::Io {
            file: f.display().to_string(),
            message: e.to_string(),
        };
        let text = crate::safe_fs::read_text_limited(&cfg_path, crate::safe_fs::JSON_LIMIT)
            .map_err(|e| io(&cfg_path, &e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| io(&cfg_path, &e))?;
        let name = v["name"].as_str().unwrap_or("bottleneck").to_string();
        let hidden = v["hidden_size"]
            .as_u64()
            .ok_or_else(|| BottleneckError::Io {
                file: file.clone(),
                message: "missing `hidden_size`".into(),
            })? as usize;
        let config = parse_config(&v["config"], &file)?;
        let st_path = dir.join("adapter.safetensors");
        let tensors =
            candle_core::safetensors::load(&st_path, device).map_err(|e| io(&st_path, &e))?;
        let st_file = st_path.display().to_string();
        let m = config.width.units(hidden);
        let mut modules = BTreeMap::new();
        for layer in 0..num_layers {
            for site in [Site::AfterAttention, Site::AfterFeedForward] {
                if !config.has_site(layer, site) {
                    continue;
                }
                let module = names.module(layer, site, &name);
                let get = |suffix: &str, shape: &[usize]| {
                    let key = format!("{module}.{suffix}");
                    let t = tensors.get(&key).ok_or_else(|| BottleneckError::Tensor {
                        file: st_file.clone(),
                        name: key.clone(),
                        message: "missing".into(),
                    })?;
                    if t.dims() != shape {
                        return Err(BottleneckError::Tensor {
                            file: st_file.clone(),
                            name: key,
                            message: format!("shape {:?}, expected {shape:?}", t.dims()),
                        });
                    }
                    t.to_dtype(DType::F32)
                        .and_then(|t| Var::from_tensor(&t))
                        .map_err(|e| BottleneckError::Tensor {
                            file: st_file.clone(),
                            name: key,
                            message: e.to_string(),
                        })
                };
                modules.insert(
                    (layer, site_key(site)),
                    Bottleneck {
                        down_w: get("adapter_down.0.weight", &[m, hidden])?,
                        down_b: get("adapter_down.0.bias", &[m])?,
                        up_w: get("adapter_up.weight", &[hidden, m])?,
                        up_b: get("adapter_up.bias", &[hidden])?,
                    },
                );
            }
        }
        Ok(Self {
            name,
            config,
            names,
            hidden,
            modules,
        })
    }
}

impl ResidualHook for BottleneckAdapter {
    fn apply(&self, layer: usize, site: Site, hidden: &Tensor, train: bool) -> Result<Tensor> {
        match self.modules.get(&(layer, site_key(site))) {
            Some(b) => hidden + b.forward(hidden, &self.config, train)?,
            None => Ok(hidden.clone()),
        }
    }

    fn combine(
        &self,
        layer: usize,
        site: Site,
        block: &SubBlock<'_>,
        train: bool,
    ) -> Result<Tensor> {
        let Some(b) = self.modules.get(&(layer, site_key(site))) else {
            return block.normed(&(block.output + block.residual)?);
        };
        let input = if self.config.original_ln_before() {
            block.normed(&(block.output + block.residual)?)?
        } else {
            block.output.clone()
        };
        let out = (b.forward(&input, &self.config, train)? + block.output)?;
        block.normed(&(out + block.residual)?)
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (&(layer, key), b) in &self.modules {
            let module = self.names.module(layer, site_of(key), &self.name);
            for (suffix, var) in b.tensors() {
                out.push((format!("{module}.{suffix}"), var.clone()));
            }
        }
        out
    }
}

/// Seeded random vectors without another dependency.
mod rand_distr_free {
    use rand::Rng;

    /// `n` samples of N(0, std²) (Box-Muller).
    pub fn normal_vec(rng: &mut impl Rng, n: usize, std: f64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let u1: f64 = rng.gen_range(f64::EPSILON..1.0);
                let u2: f64 = rng.gen();
                ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std) as f32
            })
            .collect()
    }

    /// `n` samples of U(-bound, bound).
    pub fn uniform_vec(rng: &mut impl Rng, n: usize, bound: f64) -> Vec<f32> {
        (0..n)
            .map(|_| rng.gen_range(-bound..bound) as f32)
            .collect()
    }
}
