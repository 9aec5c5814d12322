//! GPT-2 (Radford et al., 2019): learned absolute positions, pre-LayerNorm decoder blocks with a
//! fused `c_attn` (q, k, v in one `Conv1D`), GELU (tanh) feed-forward, `lm_head` tied to `wte`.
//!
//! `Conv1D` checkpoints store weights `[in, out]`; they are transposed once at load into the
//! `[out, in]` base of an [`AdaptableLinear`] marked `with_conv1d_layout` (so a merged export
//! writes them back `[in, out]`). Module paths follow `GPT2LMHeadModel`
//! (`transformer.h.0.attn.c_attn`), whether or not the checkpoint has the `transformer.` prefix.
//! The [`ResidualHook`] is applied to the attention and MLP outputs before each residual add.
//! The training path uses only differentiable ops. Must not open files.

use crate::runtime::adapters::attach::trainable_vars;
use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::adapters::residual::{NoHook, ResidualHook, Site, SubBlock};
use crate::runtime::dense::DenseWeight;
use crate::runtime::model_api::{AdaptableModel, AdaptedModel, TaskKind};
use crate::runtime::models::config::Gpt2Config;
use crate::runtime::models::decoder::{Decoder, KvCache};
use crate::runtime::models::error::ModelError;
use crate::runtime::models::reader::WeightReader;
use crate::runtime::models::score_head::{load_score, pool_last};
use crate::runtime::ops::attention::{attention, Kernels};
use crate::runtime::ops::mask::{attention_bias, MaskKind, MaskSpec};
use crate::runtime::ops::norm::layer_norm;
use crate::runtime::ops::rope::Rotary;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: Norm,
    c_attn: AdaptableLinear,
    attn_proj: AdaptableLinear,
    ln_2: Norm,
    c_fc: AdaptableLinear,
    mlp_proj: AdaptableLinear,
}

/// Which activation the MLP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Act {
    GeluTanh,
    GeluErf,
    Relu,
}

/// A GPT-2 causal language model.
#[derive(Debug, Clone)]
pub struct Gpt2 {
    cfg: Gpt2Config,
    wte: Tensor,
    wpe: Tensor,
    layers: Vec<Block>,
    ln_f: Norm,
    lm_head: AdaptableLinear,
    /// The sequence-classification head, when the model classifies (replaces `lm_head`).
    score: Option<AdaptableLinear>,
    act: Act,
    hook: Arc<dyn ResidualHook>,
    device: Device,
    dtype: DType,
}

fn conv1d(
    w: &WeightReader,
    prefix: &str,
    path: &str,
    inp: usize,
    out: usize,
) -> std::result::Result<AdaptableLinear, ModelError> {
    let name = format!("{prefix}{path}.weight");
    let weight = w.conv1d(&name, inp, out)?;
    let bias = w.tensor(&format!("{prefix}{path}.bias"), &[out])?;
    let full_path = format!("transformer.{path}");
    Ok(AdaptableLinear::new(full_path, weight, Some(bias)).with_conv1d_layout())
}

fn norm(w: &WeightReader, name: &str, d: usize) -> std::result::Result<Norm, ModelError> {
    Ok(Norm {
        weight: w.tensor(&format!("{name}.weight"), &[d])?,
        bias: w.tensor(&format!("{name}.bias"), &[d])?,
    })
}

struct Pass<'a> {
    train: bool,
    kernels: Kernels,
    cache: Option<&'a mut KvCache>,
}

impl Gpt2 {
    /// Builds the model from `config.json` fields and weights with Hugging Face names.
    pub fn load(
        cfg: &Gpt2Config,
        w: &WeightReader,
        device: &Device,
    ) -> std::result::Result<Self, ModelError> {
        let prefix = if w.has("transformer.wte.weight") {
            "transformer."
        } else {
            ""
        };
        let (d, v) = (cfg.n_embd, cfg.vocab_size);
        let inner = cfg.n_inner.unwrap_or(4 * d);
        if cfg.n_head == 0 || d % cfg.n_head != 0 {
            return Err(ModelError::Config {
                file: w.file.into(),
                message: format!("n_embd {d} is not divisible by n_head {}", cfg.n_head),
            });
        }
        let act = match cfg.activation_function.as_str() {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Act::GeluTanh,
            "gelu" => Act::GeluErf,
            "relu" => Act::Relu,
            other => {
                return Err(ModelError::Config {
                    file: w.file.into(),
                    message: format!("activation_function `{other}` is not supported"),
                })
            }
        };
        let wte = w.tensor(&format!("{prefix}wte.weight"), &[v, d])?;
        let wpe = w.tensor(&format!("{prefix}wpe.weight"), &[cfg.n_positions, d])?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = format!("h.{i}");
            layers.push(Block {
                ln_1: norm(w, &format!("{prefix}{p}.ln_1"), d)?,
                c_attn: conv1d(w, prefix, &format!("{p}.attn.c_attn"), d, 3 * d)?,
                attn_proj: conv1d(w, prefix, &format!("{p}.attn.c_proj"), d, d)?,
                ln_2: norm(w, &format!("{prefix}{p}.ln_2"), d)?,
                c_fc: conv1d(w, prefix, &format!("{p}.mlp.c_fc"), d, inner)?,
                mlp_proj: conv1d(w, prefix, &format!("{p}.mlp.c_proj"), inner, d)?,
            });
        }
        let ln_f = norm(w, &format!("{prefix}ln_f"), d)?;
        let lm_head = if cfg.tie_word_embeddings.unwrap_or(true) || !w.has("lm_head.weight") {
            AdaptableLinear::new("lm_head", Arc::new(DenseWeight::new(wte.clone())), None)
        } else {
            AdaptableLinear::new("lm_head", w.linear("lm_head.weight", v, d)?, None)
        };
        Ok(Self {
            cfg: cfg.clone(),
            wte,
            wpe,
            layers,
            ln_f,
            lm_head,
            score: None,
            act,
            hook: Arc::new(NoHook),
            device: device.clone(),
            dtype: w.dtype,
        })
    }

    /// The model with a sequence-classification head of `num_labels` classes read from
    /// `score.weight` (transformers' `GPT2ForSequenceClassification`).
    pub fn with_score(
        mut self,
        w: &WeightReader,
        num_labels: usize,
    ) -> std::result::Result<Self, ModelError> {
        self.score = Some(load_score(w, num_labels, self.cfg.n_embd)?);
        Ok(self)
    }

    /// The parsed config.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    fn ln(&self, x: &Tensor, n: &Norm, kernels: Kernels) -> Result<Tensor> {
        let eps = self.cfg.layer_norm_epsilon;
        match kernels {
            Kernels::Differentiable => layer_norm(x, &n.weight, Some(&n.bias), eps),
            Kernels::Fused => {
                candle_nn::ops::layer_norm(&x.contiguous()?, &n.weight, &n.bias, eps as f32)
            }
        }
    }

    fn run(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        positions: &Tensor,
        mut pass: Pass,
    ) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let d = self.cfg.n_embd;
        let nh = self.cfg.n_head;
        let hd = d / nh;
        let offset = pass.cache.as_ref().map_or(0, |c| c.len);
        let tok = self
            .wte
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, d))?;
        let pos = self
            .wpe
            .index_select(&positions.flatten_all()?, 0)?
            .reshape((b, s, d))?;
        let mut x = (tok + pos)?;
        let spec = MaskSpec {
            batch: b,
            q_len: s,
            k_len: offset + s,
            offset,
            kind: MaskKind::Causal,
            window: None,
        };
        let bias = attention_bias(mask, spec, self.dtype, &self.device)?;
        let scale = if self.cfg.scale_attn_weights {
            1.0 / (hd as f64).sqrt()
        } else {
            1.0
        };
        for (i, l) in self.layers.iter().enumerate() {
            let hs = self.ln(&x, &l.ln_1, pass.kernels)?;
            let qkv = l.c_attn.forward(&hs, pass.train)?;
            let heads =
                |t: Tensor| -> Result<Tensor> { t.reshape((b, s, nh, hd))?.transpose(1, 2) };
            let q = heads(qkv.narrow(2, 0, d)?)?;
            let k = heads(qkv.narrow(2, d, d)?)?;
            let v = heads(qkv.narrow(2, 2 * d, d)?)?;
            let (k, v) = match pass.cache.as_deref_mut() {
                Some(c) => c.append(i, k.contiguous()?, v.contiguous()?)?,
                None => (k, v),
            };
            let a = attention(&q, &k, &v, &bias, scale, pass.kernels)?;
            let a = l
                .attn_proj
                .forward(&a.transpose(1, 2)?.reshape((b, s, d))?, pass.train)?;
            // Pre-LN: the sum is the new residual stream (no norm after the add).
            let block = SubBlock {
                output: &a,
                residual: &x,
                norm: None,
            };
            x = self
                .hook
                .combine(i, Site::AfterAttention, &block, pass.train)?;
            let hs = self.ln(&x, &l.ln_2, pass.kernels)?;
            let f = l.c_fc.forward(&hs, pass.train)?;
            let f = match self.act {
                Act::GeluTanh => f.gelu()?,
                Act::GeluErf => crate::runtime::ops::gelu::gelu_erf(&f)?,
                Act::Relu => f.relu()?,
            };
            let m = l.mlp_proj.forward(&f, pass.train)?;
            let block = SubBlock {
                output: &m,
                residual: &x,
                norm: None,
            };
            x = self
                .hook
                .combine(i, Site::AfterFeedForward, &block, pass.train)?;
        }
        if let Some(c) = pass.cache {
            c.len += s;
        }
        let x = self.ln(&x, &self.ln_f, pass.kernels)?;
        Ok(x)
    }
}

impl AdaptedModel for Gpt2 {
    fn task(&self) -> TaskKind {
        match &self.score {
            Some(score) => TaskKind::Classify {
                num_labels: score.dims().0,
            },
            None => TaskKind::CausalLm,
        }
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        // Packed sequences restart positions at every example.
        let positions = match crate::runtime::ops::mask::packed_positions(attention_mask)? {
            Some(p) => p,
            None => Rotary::positions(b, s, 0, &self.device)?,
        };
        let pass = Pass {
            train,
            kernels: Kernels::Differentiable,
            cache: None,
        };
        let x = self.run(input_ids, Some(attention_mask), &positions, pass)?;
        match &self.score {
            Some(score) => score.forward(&pool_last(&x, attention_mask)?, train),
            None => self.lm_head.forward(&x, train),
        }
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = trainable_vars(&self.linears());
        out.extend(self.hook.trainable());
        out
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

impl AdaptableModel for Gpt2 {
    fn linears(&self) -> Vec<&AdaptableLinear> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.extend([&l.c_attn, &l.attn_proj, &l.c_fc, &l.mlp_proj]);
        }
        v.push(self.score.as_ref().unwrap_or(&self.lm_head));
        v
    }

    fn linears_mut(&mut self) -> Vec<&mut AdaptableLinear> {
        let mut v = Vec::new();
        for l in &mut self.layers {
            v.extend([
                &mut l.c_attn,
                &mut l.attn_proj,
                &mut l.c_fc,
                &mut l.mlp_proj,
            ]);
        }
        v.push(match self.score.as_mut() {
            Some(score) => score,
            None => &mut self.lm_head,
        });
        v
    }

    fn set_residual_hook(&mut self, hook: Arc<dyn ResidualHook>) {
        self.hook = hook;
    }

    fn num_layers(&self) -> usize {
        self.layers.len()
    }

    fn hidden_size(&self) -> usize {
        self.cfg.n_embd
    }
}

impl Decoder for Gpt2 {
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    fn step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        positions: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let pass = Pass {
            train: false,
            kernels: Kernels::Fused,
            cache: Some(cache),
        };
        let x = self.run(input_ids, Some(attention_mask), positions, pass)?;
        self.lm_head.forward(&x, false)
    }
}
