//! The llama family: Llama 2/3, Mistral and Qwen2 (<https://arxiv.org/abs/2302.13971>):
//! pre-RMSNorm decoder blocks, rotary embeddings (theta, linear / llama3 scaling), grouped-query
//! attention, SwiGLU feed-forward, optional q/k/v bias (Qwen2), optional tied embeddings.
//!
//! Every linear layer is an [`AdaptableLinear`] named by its Hugging Face module path
//! (`model.layers.0.self_attn.q_proj`, `lm_head`). The [`ResidualHook`] is applied to the
//! attention and feed-forward outputs before each residual add. The training path
//! ([`AdaptedModel::forward`]) uses only differentiable ops; [`Decoder::step`] may use fused
//! kernels. Sliding-window layers (Mistral, Qwen2 with `use_sliding_window`) mask keys older
//! than the window, as transformers does. Must not open files: weights come from a
//! [`TensorSource`].

use crate::runtime::adapters::attach::trainable_vars;
use crate::runtime::adapters::fused_block;
use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::adapters::residual::{NoHook, ResidualHook, Site, SubBlock};
use crate::runtime::dense::DenseWeight;
use crate::runtime::model_api::{AdaptableModel, AdaptedModel, TaskKind};
use crate::runtime::models::config::LlamaConfig;
use crate::runtime::models::decoder::{Decoder, KvCache};
use crate::runtime::models::error::ModelError;
use crate::runtime::models::reader::WeightReader;
use crate::runtime::models::score_head::{load_score, pool_last};
use crate::runtime::ops::attention::{attention, Kernels};
use crate::runtime::ops::fused_attention::{self, FusedAttention, Heads};
use crate::runtime::ops::lora_mlp::Activation;
use crate::runtime::ops::mask::{attention_bias, MaskKind, MaskSpec};
use crate::runtime::ops::norm::rms_norm;
use crate::runtime::ops::rope::{apply_rotary, RopeTables, Rotary};
use crate::runtime::ops::swiglu::swiglu;
use crate::runtime::train::linear_cross_entropy;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::sync::Arc;

#[derive(Debug, Clone)]
struct Block {
    q: AdaptableLinear,
    k: AdaptableLinear,
    v: AdaptableLinear,
    o: AdaptableLinear,
    gate: AdaptableLinear,
    up: AdaptableLinear,
    down: AdaptableLinear,
    input_norm: Tensor,
    post_norm: Tensor,
}

/// A llama-family causal language model.
#[derive(Debug, Clone)]
pub struct Llama {
    cfg: LlamaConfig,
    embed: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    lm_head: AdaptableLinear,
    /// The sequence-classification head, when the model classifies (replaces `lm_head`).
    score: Option<AdaptableLinear>,
    rotary: Rotary,
    hook: Arc<dyn ResidualHook>,
    device: Device,
    dtype: DType,
}

/// How one forward pass runs.
struct Pass<'a> {
    train: bool,
    kernels: Kernels,
    cache: Caches<'a>,
}

/// The key/value caches of a pass.
enum Caches<'a> {
    /// No cache (training, evaluation).
    None,
    /// One cache for the whole batch (rows padded to one length).
    Shared(&'a mut KvCache),
    /// One cache per row, each of its own length (continuous batching): attention runs per
    /// row, every linear layer once for the whole batch.
    PerRow(&'a mut [KvCache]),
}

fn linear(
    w: &WeightReader,
    path: &str,
    out: usize,
    inp: usize,
    bias: bool,
) -> std::result::Result<AdaptableLinear, ModelError> {
    let weight = w.linear(&format!("{path}.weight"), out, inp)?;
    let b = if bias {
        Some(w.tensor(&format!("{path}.bias"), &[out])?)
    } else {
        None
    };
    Ok(AdaptableLinear::new(path, weight, b))
}

impl Llama {
    /// Builds the model from `config.json` fields and weights with Hugging Face names.
    pub fn load(
        cfg: &LlamaConfig,
        w: &WeightReader,
        device: &Device,
    ) -> std::result::Result<Self, ModelError> {
        let (h, v, inter) = (cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size);
        let (nh, nkv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        if nh == 0 || nkv == 0 || nh % nkv != 0 {
            return Err(ModelError::Config {
                file: w.file.into(),
                message: format!("{nh} attention heads cannot share {nkv} key/value heads"),
            });
        }
        let embed = w.tensor("model.embed_tokens.weight", &[v, h])?;
        let qkv_bias = cfg.qkv_bias();
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mb = cfg.mlp_bias;
            layers.push(Block {
                q: linear(w, &format!("{p}.self_attn.q_proj"), nh * hd, h, qkv_bias)?,
                k: linear(w, &format!("{p}.self_attn.k_proj"), nkv * hd, h, qkv_bias)?,
                v: linear(w, &format!("{p}.self_attn.v_proj"), nkv * hd, h, qkv_bias)?,
                o: linear(w, &format!("{p}.self_attn.o_proj"), h, nh * hd, false)?,
                gate: linear(w, &format!("{p}.mlp.gate_proj"), inter, h, mb)?,
                up: linear(w, &format!("{p}.mlp.up_proj"), inter, h, mb)?,
                down: linear(w, &format!("{p}.mlp.down_proj"), h, inter, mb)?,
                input_norm: w.tensor(&format!("{p}.input_layernorm.weight"), &[h])?,
                post_norm: w.tensor(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
            });
        }
        let norm = w.tensor("model.norm.weight", &[h])?;
        let lm_head = if cfg.tied() || !w.has("lm_head.weight") {
            AdaptableLinear::new("lm_head", Arc::new(DenseWeight::new(embed.clone())), None)
        } else {
            linear(w, "lm_head", v, h, false)?
        };
        let rotary = Rotary::new(hd, cfg.theta(), &cfg.scaling(w.file)?);
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            score: None,
            rotary,
            hook: Arc::new(NoHook),
            device: device.clone(),
            dtype: w.dtype,
        })
    }

    /// The model with a sequence-classification head of `num_labels` classes read from
    /// `score.weight` (transformers' `LlamaForSequenceClassification`).
    pub fn with_score(
        mut self,
        w: &WeightReader,
        num_labels: usize,
    ) -> std::result::Result<Self, ModelError> {
        self.score = Some(load_score(w, num_labels, self.cfg.hidden_size)?);
        Ok(self)
    }

    /// The parsed config.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    fn norm(&self, x: &Tensor, w: &Tensor, kernels: Kernels) -> Result<Tensor> {
        match kernels {
            Kernels::Differentiable => rms_norm(x, w, self.cfg.rms_norm_eps),
            Kernels::Fused => {
                candle_nn::ops::rms_norm(&x.contiguous()?, w, self.cfg.rms_norm_eps as f32)
            }
        }
    }

    /// The residual stream after layer `i`'s attention part (norm, attention, residual add
    /// through the hook). On the CPU without a cache the part is one op where its layers allow
    /// it ([`fused_block::attention`]), with the norm and the residual add inside when no
    /// residual adapter sits between.
    fn attention_sub_block(
        &self,
        (i, l): (usize, &Block),
        x: &Tensor,
        (layer_bias, rope): (Option<&Tensor>, &RopeTables),
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let hd = self.cfg.head_dim();
        let heads = Heads {
            q: self.cfg.num_attention_heads,
            kv: self.cfg.kv_heads(),
            dim: hd,
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let layers = [&l.q, &l.k, &l.v, &l.o];
        let fused_bias = match &pass.cache {
            Caches::None if x.device().is_cpu() => layer_bias,
            _ => None,
        };
        let tables = Some((&rope.cos_half, &rope.sin_half));
        let dtype = x.dtype();
        let op = |bias| move || FusedAttention::new(tables, bias, (heads, scale), None, dtype);
        if let (Some(bias), true) = (fused_bias, self.hook.is_identity()) {
            let pre = Some((&l.input_norm, self.cfg.rms_norm_eps));
            let whole = fused_block::attention(x, layers, (heads, op(bias)), (pass.train, pre))?;
            if let Some(x) = whole {
                return Ok(x);
            }
        }
        let hs = self.norm(x, &l.input_norm, pass.kernels)?;
        let block = match fused_bias {
            Some(bias) => {
                fused_block::attention(&hs, layers, (heads, op(bias)), (pass.train, None))?
            }
            None => None,
        };
        let a = match block {
            Some(a) => a,
            None => self.attention_part(l, &hs, (i, layer_bias), rope, pass)?,
        };
        self.residual_sum((i, Site::AfterAttention), &a, x, pass.train)
    }

    /// Pre-LN: `residual + output` through the hook is the new residual stream (no norm after
    /// the add).
    fn residual_sum(
        &self,
        (i, site): (usize, Site),
        output: &Tensor,
        residual: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let block = SubBlock {
            output,
            residual,
            norm: None,
        };
        self.hook.combine(i, site, &block, train)
    }

    /// The residual stream after layer `i`'s feed-forward part (norm, SwiGLU MLP, residual add
    /// through the hook), fused as [`Llama::attention_sub_block`] is.
    fn mlp_sub_block(&self, (i, l): (usize, &Block), x: &Tensor, pass: &Pass) -> Result<Tensor> {
        let mlp = [&l.gate, &l.up, &l.down];
        if self.hook.is_identity() {
            let pre = Some((&l.post_norm, self.cfg.rms_norm_eps));
            if let Some(x) = fused_block::mlp(x, Activation::SwiGlu, &mlp, (pass.train, pre))? {
                return Ok(x);
            }
        }
        let hs = self.norm(x, &l.post_norm, pass.kernels)?;
        let m = match fused_block::mlp(&hs, Activation::SwiGlu, &mlp, (pass.train, None))? {
            Some(m) => m,
            None => {
                let g = l.gate.forward(&hs, pass.train)?;
                let u = l.up.forward(&hs, pass.train)?;
                l.down.forward(&swiglu(&g, &u)?, pass.train)?
            }
        };
        self.residual_sum((i, Site::AfterFeedForward), &m, x, pass.train)
    }

    /// The attention part of layer `i` as separate ops: q, k, v, rotary embedding and
    /// attention (with the pass's caches), o.
    fn attention_part(
        &self,
        l: &Block,
        hs: &Tensor,
        (i, layer_bias): (usize, Option<&Tensor>),
        rope: &RopeTables,
        pass: &mut Pass,
    ) -> Result<Tensor> {
        let (b, s, _) = hs.dims3()?;
        let (nh, nkv, hd) = (
            self.cfg.num_attention_heads,
            self.cfg.kv_heads(),
            self.cfg.head_dim(),
        );
        let scale = 1.0 / (hd as f64).sqrt();
        let q = l.q.forward(hs, pass.train)?;
        let k = l.k.forward(hs, pass.train)?;
        let v = l.v.forward(hs, pass.train)?;
        let a = match (&mut pass.cache, layer_bias) {
            // Without a cache: rotary embedding and attention as one op where it applies.
            (Caches::None, Some(bias)) if fused_attention::applies(&q, &k, &v) => {
                let heads = Heads {
                    q: nh,
                    kv: nkv,
                    dim: hd,
                };
                fused_attention::fused_attention(
                    (&q, &k, &v),
                    Some((&rope.cos_half, &rope.sin_half)),
                    bias,
                    (heads, scale),
                    None,
                )?
            }
            (cache, layer_bias) => {
                let q = q.reshape((b, s, nh, hd))?.transpose(1, 2)?;
                let k = k.reshape((b, s, nkv, hd))?.transpose(1, 2)?;
                let v = v.reshape((b, s, nkv, hd))?.transpose(1, 2)?;
                let q = apply_rotary(&q, rope)?;
                let k = apply_rotary(&k, rope)?;
                let a = match cache {
                    Caches::PerRow(caches) => {
                        self.attend_per_row(i, &q, &k, &v, caches, scale, pass.kernels)?
                    }
                    cache => {
                        let (k, v) = match cache {
                            Caches::Shared(c) => c.append(i, k.contiguous()?, v.contiguous()?)?,
                            _ => (k, v),
                        };
                        let Some(layer_bias) = layer_bias else {
                            candle_core::bail!("attention bias missing")
                        };
                        attention(&q, &k, &v, layer_bias, scale, pass.kernels)?
                    }
                };
                a.transpose(1, 2)?.reshape((b, s, nh * hd))?
            }
        };
        l.o.forward(&a, pass.train)
    }

    /// Attention of layer `layer` row by row, each row over its own cache: `q: [b, h, s, d]`,
    /// `k`, `v`: `[b, h_kv, s, d]` of the new tokens. Row `r`'s queries sit at positions
    /// `caches[r].len ..`; the bias is causal (and windowed on sliding-window layers).
    #[allow(clippy::too_many_arguments)]
    fn attend_per_row(
        &self,
        layer: usize,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        caches: &mut [KvCache],
        scale: f64,
        kernels: Kernels,
    ) -> Result<Tensor> {
        let s = q.dim(2)?;
        let mut rows = Vec::with_capacity(caches.len());
        for (r, cache) in caches.iter_mut().enumerate() {
            let (kr, vr) = cache.append(
                layer,
                k.narrow(0, r, 1)?.contiguous()?,
                v.narrow(0, r, 1)?.contiguous()?,
            )?;
            let offset = cache.len;
            let bias = attention_bias(
                None,
                MaskSpec {
                    batch: 1,
                    q_len: s,
                    k_len: offset + s,
                    offset,
                    kind: MaskKind::Causal,
                    window: self.cfg.layer_window(layer),
                },
                self.dtype,
                &self.device,
            )?;
            rows.push(attention(
                &q.narrow(0, r, 1)?,
                &kr,
                &vr,
                &bias,
                scale,
                kernels,
            )?);
        }
        Tensor::cat(&rows, 0)
    }

    fn run(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        positions: &Tensor,
        mut pass: Pass,
    ) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let h = self.cfg.hidden_size;
        let offset = match &pass.cache {
            Caches::Shared(c) => c.len,
            _ => 0,
        };
        let mut x = self
            .embed
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, h))?;
        let spec = MaskSpec {
            batch: b,
            q_len: s,
            k_len: offset + s,
            offset,
            kind: MaskKind::Causal,
            window: None,
        };
        // Per-row caches build their own biases (each row has its own length).
        let per_row = matches!(pass.cache, Caches::PerRow(_));
        let bias = if per_row {
            None
        } else {
            Some(attention_bias(mask, spec, self.dtype, &self.device)?)
        };
        // Layers with a sliding window (Mistral, some Qwen2) share one windowed bias.
        let windowed = match (0..self.layers.len()).find_map(|i| self.cfg.layer_window(i)) {
            Some(w) if !per_row => Some(attention_bias(
                mask,
                MaskSpec {
                    window: Some(w),
                    ..spec
                },
                self.dtype,
                &self.device,
            )?),
            _ => None,
        };
        let rope = RopeTables::new(&self.rotary, positions, self.dtype)?;
        for (i, l) in self.layers.iter().enumerate() {
            let layer_bias = match (&windowed, self.cfg.layer_window(i), &bias) {
                (Some(w), Some(_), _) => Some(w),
                (_, _, Some(b)) => Some(b),
                _ => None,
            };
            x = self.attention_sub_block((i, l), &x, (layer_bias, &rope), &mut pass)?;
            x = self.mlp_sub_block((i, l), &x, &pass)?;
        }
        match pass.cache {
            Caches::Shared(c) => c.len += s,
            Caches::PerRow(caches) => caches.iter_mut().for_each(|c| c.len += s),
            Caches::None => {}
        }
        let x = self.norm(&x, &self.norm, pass.kernels)?;
        Ok(x)
    }
}

impl Llama {
    /// The final hidden states `[b, s, h]` (after the last norm) of a training or evaluation
    /// pass without a cache.
    fn hidden(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        // Packed sequences restart positions at every example.
        let positions = match crate::runtime::ops::mask::packed_positions(attention_mask)? {
            Some(p) => p,
            None => Rotary::positions(b, s, 0, &self.device)?,
        };
        let pass = Pass {
            train,
            kernels: Kernels::Differentiable,
            cache: Caches::None,
        };
        self.run(input_ids, Some(attention_mask), &positions, pass)
    }
}

impl AdaptedModel for Llama {
    fn task(&self) -> TaskKind {
        match &self.score {
            Some(score) => TaskKind::Classify {
                num_labels: score.dims().0,
            },
            None => TaskKind::CausalLm,
        }
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        let x = self.hidden(input_ids, attention_mask, train)?;
        match &self.score {
            Some(score) => score.forward(&pool_last(&x, attention_mask)?, train),
            None => self.lm_head.forward(&x, train),
        }
    }

    fn hidden_and_output(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
    ) -> Result<Option<(Tensor, Tensor)>> {
        let w = match (&self.score, self.lm_head.frozen_dense()) {
            (None, Some(w)) if linear_cross_entropy::applies(&self.device, self.dtype, w) => {
                w.clone()
            }
            _ => return Ok(None),
        };
        Ok(Some((self.hidden(input_ids, attention_mask, train)?, w)))
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

impl AdaptableModel for Llama {
    fn linears(&self) -> Vec<&AdaptableLinear> {
        let mut v = Vec::new();
        for l in &self.layers {
            v.extend([&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]);
        }
        v.push(self.score.as_ref().unwrap_or(&self.lm_head));
        v
    }

    fn linears_mut(&mut self) -> Vec<&mut AdaptableLinear> {
        let mut v = Vec::new();
        for l in &mut self.layers {
            v.extend([
                &mut l.q,
                &mut l.k,
                &mut l.v,
                &mut l.o,
                &mut l.gate,
                &mut l.up,
                &mut l.down,
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
        self.cfg.hidden_size
    }
}

impl Decoder for Llama {
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
            cache: Caches::Shared(cache),
        };
        let x = self.run(input_ids, Some(attention_mask), positions, pass)?;
        self.lm_head.forward(&x, false)
    }

    fn step_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [KvCache],
    ) -> Result<Tensor> {
        if caches.len() != input_ids.dim(0)? {
            candle_core::bail!(
                "{} caches for a batch of {} rows",
                caches.len(),
                input_ids.dim(0)?
            )
        }
        let pass = Pass {
            train: false,
            kernels: Kernels::Fused,
            cache: Caches::PerRow(caches),
        };
        let x = self.run(input_ids, None, positions, pass)?;
        self.lm_head.forward(&x, false)
    }
}
