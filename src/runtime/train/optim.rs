//! Optimizers with PyTorch's formulas (single-tensor, for-loop `torch.optim.AdamW` and
//! `torch.optim.SGD`), parameter groups (LoRA+), and their state as named tensors.
//!
//! State exists only for the parameters handed in (the trainable ones): the frozen base never
//! gets any. The learning rate is given per step (the schedule lives outside); each group scales
//! it. This module must not know about models or data.

use crate::runtime::train::config::{AdamWConfig, DecayRule, OptimizerConfig, SgdConfig};
use candle_core::{Result, Tensor, Var};
use std::collections::{BTreeMap, HashMap};

/// Parameters sharing a learning-rate scale and a weight decay (a torch param group).
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// `default` or `lora_B` (LoRA+).
    pub name: String,
    /// Multiplies the step's learning rate.
    pub lr_scale: f64,
    /// Weight decay of this group.
    pub weight_decay: f64,
    /// `(PEFT name, Var)`.
    pub params: Vec<(String, Var)>,
}

/// Whether a parameter takes no weight decay in LoRA+ group B (biases and norm weights, as
/// Hugging Face's `decay_parameters`).
fn no_decay(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.contains("bias") || lower.contains("norm")
}

/// Splits trainable parameters into groups: without LoRA+ one group (or two, the second without
/// weight decay, under [`DecayRule::SkipBiasAndNorm`]); with LoRA+ the split of
/// `peft.optimizers.create_loraplus_optimizer`: group B holds every parameter whose name contains
/// `lora_B` or that is 1-D, at `ratio` times the learning rate, and within B biases and norm
/// weights take no weight decay. Unlike PEFT (whose `loraplus_weight_decay` defaults to 0), the
/// other groups use the optimizer's weight decay; LoRA embeddings are not given PEFT's separate
/// fixed rate.
pub fn param_groups(
    params: Vec<(String, Var)>,
    config: &OptimizerConfig,
    lora_plus_ratio: Option<f64>,
    decay: DecayRule,
) -> Vec<ParamGroup> {
    let weight_decay = match config {
        OptimizerConfig::AdamW(c) => c.weight_decay,
        OptimizerConfig::Sgd(c) => c.weight_decay,
    };
    let Some(ratio) = lora_plus_ratio else {
        let (nd, d): (Vec<_>, Vec<_>) = match decay {
            DecayRule::All => (Vec::new(), params),
            DecayRule::SkipBiasAndNorm => params.into_iter().partition(|(n, _)| no_decay(n)),
        };
        return vec![
            ParamGroup {
                name: "default".into(),
                lr_scale: 1.0,
                weight_decay,
                params: d,
            },
            ParamGroup {
                name: "no_decay".into(),
                lr_scale: 1.0,
                weight_decay: 0.0,
                params: nd,
            },
        ];
    };
    let (b, a): (Vec<_>, Vec<_>) = params
        .into_iter()
        .partition(|(n, v)| n.contains("lora_B") || v.rank() == 1);
    let (b_nd, b): (Vec<_>, Vec<_>) = b.into_iter().partition(|(n, _)| no_decay(n));
    vec![
        ParamGroup {
            name: "default".into(),
            lr_scale: 1.0,
            weight_decay,
            params: a,
        },
        ParamGroup {
            name: "lora_B".into(),
            lr_scale: ratio,
            weight_decay,
            params: b,
        },
        ParamGroup {
            name: "lora_B_no_decay".into(),
            lr_scale: ratio,
            weight_decay: 0.0,
            params: b_nd,
        },
    ]
}

/// Per-parameter state.
#[derive(Clone, Debug)]
enum ParamState {
    Adam {
        step: u64,
        exp_avg: Tensor,
        exp_avg_sq: Tensor,
    },
    Sgd {
        momentum_buffer: Option<Tensor>,
    },
}

/// An optimizer over parameter groups.
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    groups: Vec<ParamGroup>,
    state: HashMap<String, ParamState>,
}

/// Optimizer state as named tensors plus per-parameter step counts, for checkpoints.
#[derive(Debug, Default)]
pub struct OptimizerState {
    /// `<param>.exp_avg`, `<param>.exp_avg_sq` (AdamW) or `<param>.momentum_buffer` (SGD).
    pub tensors: HashMap<String, Tensor>,
    /// AdamW's per-parameter `step`.
    pub steps: BTreeMap<String, u64>,
}

impl Optimizer {
    /// An optimizer with empty state (state is created at a parameter's first step, as torch).
    pub fn new(config: OptimizerConfig, groups: Vec<ParamGroup>) -> Self {
        Self {
            config,
            groups,
            state: HashMap::new(),
        }
    }

    /// The groups.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// One step at learning rate `lr` (before group scaling). `grads` maps PEFT names to
    /// gradients; a parameter without one is skipped (torch skips `p.grad is None`).
    pub fn step(&mut self, grads: &HashMap<String, Tensor>, lr: f64) -> Result<()> {
        for group in &self.groups {
            let glr = lr * group.lr_scale;
            for (name, var) in &group.params {
                let Some(grad) = grads.get(name) else {
                    continue;
                };
                let grad = grad.to_dtype(var.dtype())?;
                let new = match self.config {
                    OptimizerConfig::AdamW(c) => adamw_update(
                        &mut self.state,
                        name,
                        var,
                        &grad,
                        glr,
                        group.weight_decay,
                        &c,
                    )?,
                    OptimizerConfig::Sgd(c) => sgd_update(
                        &mut self.state,
                        name,
                        var,
                        &grad,
                        glr,
                        group.weight_decay,
                        &c,
                    )?,
                };
                var.set(&new)?;
            }
        }
        Ok(())
    }

    /// The state, for a checkpoint.
    pub fn state(&self) -> OptimizerState {
        let mut out = OptimizerState::default();
        for (name, st) in &self.state {
            match st {
                ParamState::Adam {
                    step,
                    exp_avg,
                    exp_avg_sq,
                } => {
                    out.tensors
                        .insert(format!("{name}.exp_avg"), exp_avg.clone());
                    out.tensors
                        .insert(format!("{name}.exp_avg_sq"), exp_avg_sq.clone());
                    out.steps.insert(name.clone(), *step);
                }
                ParamState::Sgd {
                    momentum_buffer: Some(b),
                } => {
                    out.tensors
                        .insert(format!("{name}.momentum_buffer"), b.clone());
                }
                ParamState::Sgd {
                    momentum_buffer: None,
                } => {}
            }
        }
        out
    }

    /// Restores state saved by [`Optimizer::state`]. Returns the name of a parameter whose
    /// state is missing or misshapen, if any.
    pub fn load_state(&mut self, saved: &OptimizerState) -> std::result::Result<(), String> {
        let mut state = HashMap::new();
        for group in &self.groups {
            for (name, var) in &group.params {
                let get = |suffix: &str| -> std::result::Result<Option<Tensor>, String> {
                    match saved.tensors.get(&format!("{name}.{suffix}")) {
                        None => Ok(None),
                        Some(t) if t.dims() == var.dims() => Ok(Some(t.clone())),
                        Some(t) => Err(format!(
                            "{name}.{suffix}: shape {:?}, parameter has {:?}",
                            t.dims(),
                            var.dims()
                        )),
                    }
                };
                match self.config {
                    OptimizerConfig::AdamW(_) => {
                        let Some(step) = saved.steps.get(name) else {
                            continue;
                        };
                        let (Some(exp_avg), Some(exp_avg_sq)) =
                            (get("exp_avg")?, get("exp_avg_sq")?)
                        else {
                            return Err(format!("{name}: AdamW moments missing"));
                        };
                        state.insert(
                            name.clone(),
                            ParamState::Adam {
                                step: *step,
                                exp_avg,
                                exp_avg_sq,
                            },
                        );
                    }
                    OptimizerConfig::Sgd(_) => {
                        if let Some(b) = get("momentum_buffer")? {
                            state.insert(
                                name.clone(),
                                ParamState::Sgd {
                                    momentum_buffer: Some(b),
                                },
                            );
                        }
                    }
                }
            }
        }
        self.state = state;
        Ok(())
    }
}

fn scalar(x: f64, like: &Tensor) -> Result<Tensor> {
    Tensor::new(x, like.device())?.to_dtype(like.dtype())
}

/// torch `lerp_(end, w)` on CPU: `self + w * (end - self)` for `|w| < 0.5`, else
/// `end - (end - self) * (1 - w)`.
fn lerp(start: &Tensor, end: &Tensor, w: f64) -> Result<Tensor> {
    let diff = (end - start)?;
    if w.abs() < 0.5 {
        start + diff.affine(w, 0.0)?
    } else {
        end - diff.affine(1.0 - w, 0.0)?
    }
}

fn adamw_update(
    state: &mut HashMap<String, ParamState>,
    name: &str,
    var: &Var,
    grad: &Tensor,
    lr: f64,
    weight_decay: f64,
    c: &AdamWConfig,
) -> Result<Tensor> {
    let param = var.as_tensor();
    if !state.contains_key(name) {
        let fresh = ParamState::Adam {
            step: 0,
            exp_avg: param.zeros_like()?,
            exp_avg_sq: param.zeros_like()?,
        };
        state.insert(name.to_string(), fresh);
    }
    let Some(ParamState::Adam {
        step,
        exp_avg,
        exp_avg_sq,
    }) = state.get_mut(name)
    else {
        candle_core::bail!("optimizer state of `{name}` is not AdamW state")
    };
    *step += 1;
    // param.mul_(1 - lr * weight_decay)
    let p = if weight_decay != 0.0 {
        param.affine(1.0 - lr * weight_decay, 0.0)?
    } else {
        param.clone()
    };
    // exp_avg.lerp_(grad, 1 - beta1)
    *exp_avg = lerp(exp_avg, grad, 1.0 - c.beta1)?;
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    *exp_avg_sq = (exp_avg_sq.affine(c.beta2, 0.0)? + (grad.affine(1.0 - c.beta2, 0.0)? * grad)?)?;
    let t = *step as i32;
    let bias_correction1 = 1.0 - c.beta1.powi(t);
    let bias_correction2 = 1.0 - c.beta2.powi(t);
    let step_size = lr / bias_correction1;
    let bias_correction2_sqrt = bias_correction2.sqrt();
    // denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    let denom = exp_avg_sq
        .sqrt()?
        .broadcast_div(&scalar(bias_correction2_sqrt, grad)?)?
        .broadcast_add(&scalar(c.eps, grad)?)?;
    // param.addcdiv_(exp_avg, denom, value=-step_size)
    p + (exp_avg.affine(-step_size, 0.0)? / denom)?
}

fn sgd_update(
    state: &mut HashMap<String, ParamState>,
    name: &str,
    var: &Var,
    grad: &Tensor,
    lr: f64,
    weight_decay: f64,
    c: &SgdConfig,
) -> Result<Tensor> {
    let param = var.as_tensor();
    // grad = grad.add(param, alpha=weight_decay)
    let mut g = if weight_decay != 0.0 {
        (grad + param.affine(weight_decay, 0.0)?)?
    } else {
        grad.clone()
    };
    if c.momentum != 0.0 {
        let entry = state.entry(name.to_string()).or_insert(ParamState::Sgd {
            momentum_buffer: None,
        });
        let ParamState::Sgd { momentum_buffer } = entry else {
            candle_core::bail!("optimizer state of `{name}` is not SGD state")
        };
        let buf = match momentum_buffer.take() {
            None => g.clone(),
            // buf.mul_(momentum).add_(grad, alpha=1 - dampening)
            Some(b) => (b.affine(c.momentum, 0.0)? + g.affine(1.0 - c.dampening, 0.0)?)?,
        };
        g = if c.nesterov {
            (&g + buf.affine(c.momentum, 0.0)?)?
        } else {
            buf.clone()
        };
        *momentum_buffer = Some(buf);
    }
    // param.add_(grad, alpha=-lr)
    param + g.affine(-lr, 0.0)?
}
