//! BERT (Devlin et al., 2019, <https://arxiv.org/abs/1810.04805>): word + position + token-type
//! embeddings, a post-LN encoder (self-attention, GELU feed-forward), a tanh pooler over `[CLS]`,
//! a sequence-classification head, and mean-pooled sentence embeddings as sentence-transformers
//! computes them.
//!
//! Every linear layer is an [`AdaptableLinear`] named by its Hugging Face module path
//! (`bert.encoder.layer.0.attention.self.query`, or `encoder.layer.0...` for a bare `BertModel`
//! checkpoint such as all-MiniLM-L6-v2). Bottleneck adapters enter through the
//! [`ResidualHook`] at both sub-block joins. The classifier can be trained fully
//! (`modules_to_save`).
//!
//! Training path: only differentiable ops (composite layer norm, `candle_nn::ops::softmax` with a
//! dim); never candle's fused `layer_norm` / `softmax_last_dim`, which cut the gradient graph.
//! Must not open files: weights come from a [`TensorSource`].

use crate::runtime::adapters::fused_block;
use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::adapters::residual::{NoHook, ResidualHook, Site, SubBlock};
use crate::runtime::model_api::{AdaptableModel, AdaptedModel, TaskKind};
use crate::runtime::models::bert_config::{BertConfig, HiddenAct};
use crate::runtime::models::bert_layers::{dense, dropout, linear, LayerNorm};
use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::ops::dropout::draw_keep;
use crate::runtime::ops::fused_attention::{self, AttentionDropout, FusedAttention, Heads};
use crate::runtime::ops::lora_mlp::Activation;
use candle_core::{DType, Device, Result, Tensor, Var};
use std::sync::Arc;

/// Which head to load on top of the encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BertHead {
    /// Encoder (and pooler when present) only, e.g. a sentence-embedding model.
    None,
    /// `classifier` over the pooled output (`BertForSequenceClassification`).
    SequenceClassification,
}

/// How to load a BERT model.
#[derive(Clone, Copy, Debug)]
pub struct BertLoadConfig {
    /// The head to load.
    pub head: BertHead,
    /// Compute dtype of dense tensors (f32 for training and parity).
    pub dtype: DType,
}

impl Default for BertLoadConfig {
    fn default() -> Self {
        Self {
            head: BertHead::SequenceClassification,
            dtype: DType::F32,
        }
    }
}

/// Options for [`BertModel::sentence_embeddings`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmbeddingConfig {
    /// L2-normalise each embedding (sentence-transformers' `Normalize` module).
    pub normalize: bool,
}

#[derive(Debug, Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
}

#[derive(Debug, Clone)]
struct Layer {
    query: AdaptableLinear,
    key: AdaptableLinear,
    value: AdaptableLinear,
    attn_out: AdaptableLinear,
    attn_norm: LayerNorm,
    intermediate: AdaptableLinear,
    output: AdaptableLinear,
    out_norm: LayerNorm,
}

/// The classifier, frozen or fully trainable (`modules_to_save`).
#[derive(Debug, Clone)]
struct Classifier {
    linear: AdaptableLinear,
    /// The frozen bias, kept to seed the trainable copy.
    bias: Option<Tensor>,
    /// Trainable copies of weight `[labels, d]` and bias `[labels]` when in `modules_to_save`.
    trainable: Option<(Var, Var)>,
}

impl Classifier {
    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        match &self.trainable {
            Some((w, b)) => {
                let (w, b) = (
                    crate::runtime::ops::no_grad::param(w).to_dtype(x.dtype())?,
                    crate::runtime::ops::no_grad::param(b).to_dtype(x.dtype())?,
                );
                x.broadcast_matmul(&w.t()?)?.broadcast_add(&b)
            }
            None => self.linear.forward(x, train),
        }
    }
}

/// A BERT encoder with an optional pooler and classification head.
#[derive(Debug, Clone)]
pub struct BertModel {
    config: BertConfig,
    prefix: String,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<AdaptableLinear>,
    classifier: Option<Classifier>,
    hook: Arc<dyn ResidualHook>,
    device: Device,
    dtype: DType,
}

impl BertModel {
    /// Loads the model from `src` (Hugging Face names, with or without the `bert.` prefix).
    pub fn load(
        src: &dyn TensorSource,
        config: &BertConfig,
        opts: BertLoadConfig,
    ) -> std::result::Result<Self, LoadError> {
        let c = config;
        let prefix = if src.contains("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let p = |s: &str| format!("{prefix}{s}");
        let d = c.hidden_size;
        let dt = opts.dtype;
        let embeddings = Embeddings {
            word: dense(
                src,
                &p("embeddings.word_embeddings.weight"),
                &[c.vocab_size, d],
                dt,
            )?,
            position: dense(
                src,
                &p("embeddings.position_embeddings.weight"),
                &[c.max_position_embeddings, d],
                dt,
            )?,
            token_type: dense(
                src,
                &p("embeddings.token_type_embeddings.weight"),
                &[c.type_vocab_size, d],
                dt,
            )?,
            norm: LayerNorm::load(src, &p("embeddings.LayerNorm"), d, dt, c.layer_norm_eps)?,
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = |s: &str| p(&format!("encoder.layer.{i}.{s}"));
            layers.push(Layer {
                query: linear(src, &l("attention.self.query"), d, d, dt)?,
                key: linear(src, &l("attention.self.key"), d, d, dt)?,
                value: linear(src, &l("attention.self.value"), d, d, dt)?,
                attn_out: linear(src, &l("attention.output.dense"), d, d, dt)?,
                attn_norm: LayerNorm::load(
                    src,
                    &l("attention.output.LayerNorm"),
                    d,
                    dt,
                    c.layer_norm_eps,
                )?,
                intermediate: linear(src, &l("intermediate.dense"), c.intermediate_size, d, dt)?,
                output: linear(src, &l("output.dense"), d, c.intermediate_size, dt)?,
                out_norm: LayerNorm::load(src, &l("output.LayerNorm"), d, dt, c.layer_norm_eps)?,
            });
        }
        let pooler_name = p("pooler.dense.weight");
        let pooler = if src.contains(&pooler_name) || opts.head == BertHead::SequenceClassification
        {
            Some(linear(src, &p("pooler.dense"), d, d, dt)?)
        } else {
            None
        };
        let classifier = match opts.head {
            BertHead::None => None,
            BertHead::SequenceClassification => Some(Classifier {
                linear: linear(src, "classifier", c.num_labels, d, dt)?,
                bias: if src.contains("classifier.bias") {
                    Some(dense(src, "classifier.bias", &[c.num_labels], dt)?)
                } else {
                    None
                },
                trainable: None,
            }),
        };
        let device = embeddings.word.device().clone();
        Ok(Self {
            config: c.clone(),
            prefix: prefix.to_string(),
            embeddings,
            layers,
            pooler,
            classifier,
            hook: Arc::new(NoHook),
            device,
            dtype: dt,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// `bert.` for task checkpoints, empty for a bare encoder checkpoint.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Makes the classifier fully trainable (PEFT's `modules_to_save = ["classifier"]`), starting
    /// from its current weights. Errors when the model has no classifier.
    pub fn set_classifier_trainable(&mut self, trainable: bool) -> Result<()> {
        let Some(cls) = self.classifier.as_mut() else {
            candle_core::bail!("this BERT model has no classification head")
        };
        if !trainable {
            cls.trainable = None;
            return Ok(());
        }
        if cls.trainable.is_none() {
            let w = cls.linear.base().dequantize(DType::F32)?;
            let b = match &cls.bias {
                Some(b) => b.to_dtype(DType::F32)?,
                None => Tensor::zeros(w.dim(0)?, DType::F32, w.device())?,
            };
            cls.trainable = Some((Var::from_tensor(&w)?, Var::from_tensor(&b)?));
        }
        Ok(())
    }

    /// Replaces the trainable classifier's weight `[labels, d]` and bias `[labels]` (loading
    /// PEFT's `modules_to_save` weights), making the classifier trainable.
    pub fn set_classifier_weights(&mut self, weight: &Tensor, bias: &Tensor) -> Result<()> {
        let n = self.config.num_labels;
        let d = self.config.hidden_size;
        if weight.dims() != [n, d] || bias.dims() != [n] {
            candle_core::bail!(
                "classifier weights have shapes {:?} / {:?}, expected [{n}, {d}] / [{n}]",
                weight.dims(),
                bias.dims()
            )
        }
        let Some(cls) = self.classifier.as_mut() else {
            candle_core::bail!("this BERT model has no classification head")
        };
        cls.trainable = Some((
            Var::from_tensor(&weight.to_dtype(DType::F32)?)?,
            Var::from_tensor(&bias.to_dtype(DType::F32)?)?,
        ));
        Ok(())
    }

    /// The last hidden state `[b, s, d]`. `token_type_ids`: `[b, s]` u32, zeros when `None`.
    pub fn encode(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let (b, s) = input_ids.dims2()?;
        if s > self.config.max_position_embeddings {
            candle_core::bail!(
                "sequence length {s} exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
            )
        }
        let c = &self.config;
        let e = &self.embeddings;
        let ids = input_ids.to_dtype(DType::U32)?.flatten_all()?;
        let words = e
            .word
            .index_select(&ids, 0)?
            .reshape((b, s, c.hidden_size))?;
        let pos_ids = Tensor::arange(0u32, s as u32, &self.device)?;
        let pos = e.position.index_select(&pos_ids, 0)?.unsqueeze(0)?;
        let types = match token_type_ids {
            Some(t) => e
                .token_type
                .index_select(&t.to_dtype(DType::U32)?.flatten_all()?, 0)?
                .reshape((b, s, c.hidden_size))?,
            None => e.token_type.get(0)?.reshape((1, 1, c.hidden_size))?,
        };
        let x = words.broadcast_add(&pos)?.broadcast_add(&types)?;
        let mut x = dropout(&e.norm.forward(&x)?, c.hidden_dropout_prob, train)?;
        // Additive key mask [b, 1, 1, s]: 0 for real tokens, -1e9 for padding.
        let mask = attention_mask.to_dtype(self.dtype)?;
        let mask = ((mask - 1.0)? * 1e9)?.reshape((b, 1, 1, s))?;
        for (i, layer) in self.layers.iter().enumerate() {
            x = self.layer_forward(i, layer, &x, &mask, train)?;
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        i: usize,
        l: &Layer,
        x: &Tensor,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (b, s, d) = x.dims3()?;
        let (h, hd) = (c.num_attention_heads, c.head_dim());
        let heads = Heads {
            q: h,
            kv: h,
            dim: hd,
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let p = c.attention_probs_dropout_prob as f32;
        // The probabilities' dropout mask, drawn as `dropout` draws it.
        let probs_dropout = || {
            (train && p > 0.0).then(|| AttentionDropout {
                keep: std::sync::Arc::new(draw_keep(b * h * s * s, p)),
                scale: f64::from(1.0f32 / (1.0 - p)),
            })
        };
        // On the CPU the whole attention part is one op where its layers allow it.
        let block = match x.device().is_cpu() {
            true => {
                let make =
                    || FusedAttention::new(None, mask, (heads, scale), probs_dropout(), x.dtype());
                let layers = [&l.query, &l.key, &l.value, &l.attn_out];
                fused_block::attention(x, layers, (heads, make), (train, None))?
            }
            false => None,
        };
        let attn = match block {
            Some(a) => a,
            None => {
                let q = l.query.forward(x, train)?;
                let k = l.key.forward(x, train)?;
                let v = l.value.forward(x, train)?;
                let ctx = if fused_attention::applies(&q, &k, &v) {
                    let dropout = probs_dropout();
                    fused_attention::fused_attention(
                        (&q, &k, &v),
                        None,
                        mask,
                        (heads, scale),
                        dropout,
                    )?
                } else {
                    let heads = |t: Tensor| t.reshape((b, s, h, hd))?.transpose(1, 2)?.contiguous();
                    let (q, k, v) = (heads(q)?, heads(k)?, heads(v)?);
                    let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(mask)?;
                    let probs = crate::runtime::ops::softmax::softmax(&scores)?;
                    let probs = dropout(&probs, c.attention_probs_dropout_prob, train)?;
                    probs.matmul(&v)?.transpose(1, 2)?.reshape((b, s, d))?
                };
                l.attn_out.forward(&ctx, train)?
            }
        };
        let attn = dropout(&attn, c.hidden_dropout_prob, train)?;
        let attn_norm = |t: &Tensor| l.attn_norm.forward(t);
        let x = self.hook.combine(
            i,
            Site::AfterAttention,
            &SubBlock {
                output: &attn,
                residual: x,
                norm: Some(&attn_norm),
            },
            train,
        )?;
        let layers = [&l.intermediate, &l.output];
        let fused = match c.hidden_act {
            HiddenAct::Gelu => fused_block::mlp(&x, Activation::GeluErf, &layers, (train, None))?,
            _ => None,
        };
        let out = match fused {
            Some(out) => out,
            None => {
                let inter = l.intermediate.forward(&x, train)?;
                let inter = match c.hidden_act {
                    HiddenAct::Gelu => crate::runtime::ops::gelu::gelu_erf(&inter)?,
                    HiddenAct::GeluTanh => inter.gelu()?,
                    HiddenAct::Relu => inter.relu()?,
                    HiddenAct::Silu => inter.silu()?,
                };
                l.output.forward(&inter, train)?
            }
        };
        let out = dropout(&out, c.hidden_dropout_prob, train)?;
        let out_norm = |t: &Tensor| l.out_norm.forward(t);
        self.hook.combine(
            i,
            Site::AfterFeedForward,
            &SubBlock {
                output: &out,
                residual: &x,
                norm: Some(&out_norm),
            },
            train,
        )
    }

    /// The pooler output `tanh(dense(h[:, 0]))` `[b, d]`.
    pub fn pooled(&self, hidden: &Tensor, train: bool) -> Result<Tensor> {
        let Some(pooler) = &self.pooler else {
            candle_core::bail!("this BERT checkpoint has no pooler")
        };
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        pooler.forward(&cls, train)?.tanh()
    }

    /// Classification logits `[b, num_labels]`.
    pub fn classify(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        token_type_ids: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let Some(cls) = &self.classifier else {
            candle_core::bail!("this BERT model has no classification head")
        };
        let h = self.encode(input_ids, attention_mask, token_type_ids, train)?;
        let pooled = dropout(
            &self.pooled(&h, train)?,
            self.config.classifier_dropout,
            train,
        )?;
        cls.forward(&pooled, train)
    }

    /// Sentence embeddings `[b, d]` as sentence-transformers computes them: the mean of the last
    /// hidden state over real tokens, then (optionally) L2-normalised.
    pub fn sentence_embeddings(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        opts: EmbeddingConfig,
    ) -> Result<Tensor> {
        let h = self.encode(input_ids, attention_mask, None, false)?;
        mean_pool(&h, attention_mask, opts)
    }
}

/// Masked mean over the sequence (`[b, s, d]`, mask `[b, s]`) with sentence-transformers'
/// clamp of the token count at 1e-9, then optional L2 normalisation (norm clamped at 1e-12, as
/// `torch.nn.functional.normalize`).
pub fn mean_pool(
    hidden: &Tensor,
    attention_mask: &Tensor,
    opts: EmbeddingConfig,
) -> Result<Tensor> {
    let m = attention_mask.to_dtype(hidden.dtype())?.unsqueeze(2)?;
    let sum = hidden.broadcast_mul(&m)?.sum(1)?;
    let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = sum.broadcast_div(&count)?;
    if !opts.normalize {
        return Ok(mean);
    }
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

impl AdaptedModel for BertModel {
    fn task(&self) -> TaskKind {
        TaskKind::Classify {
            num_labels: self.config.num_labels,
        }
    }

    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor> {
        self.classify(input_ids, attention_mask, None, train)
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        let mut out = crate::runtime::adapters::attach::trainable_vars(&self.linears());
        out.extend(self.hook.trainable());
        if let Some(Classifier {
            trainable: Some((w, b)),
            ..
        }) = &self.classifier
        {
            // PEFT saves modules_to_save weights under the module's own name.
            out.push(("base_model.model.classifier.weight".into(), w.clone()));
            out.push(("base_model.model.classifier.bias".into(), b.clone()));
        }
        out
    }

    fn device(&self) -> &Device {
        &self.device
    }
}

impl AdaptableModel for BertModel {
    fn linears(&self) -> Vec<&AdaptableLinear> {
        let mut out = Vec::new();
        for l in &self.layers {
            out.extend([
                &l.query,
                &l.key,
                &l.value,
                &l.attn_out,
                &l.intermediate,
                &l.output,
            ]);
        }
        out.extend(self.pooler.iter());
        out.extend(self.classifier.iter().map(|c| &c.linear));
        out
    }

    fn linears_mut(&mut self) -> Vec<&mut AdaptableLinear> {
        let mut out = Vec::new();
        for l in &mut self.layers {
            out.extend([
                &mut l.query,
                &mut l.key,
                &mut l.value,
                &mut l.attn_out,
                &mut l.intermediate,
                &mut l.output,
            ]);
        }
        out.extend(self.pooler.iter_mut());
        out.extend(self.classifier.iter_mut().map(|c| &mut c.linear));
        out
    }

    fn set_residual_hook(&mut self, hook: Arc<dyn ResidualHook>) {
        self.hook = hook;
    }

    fn num_layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    /// With a head: `BertForSequenceClassification`'s names (`bert.encoder...`, `classifier`);
    /// without: `BertModel`'s (`encoder...`).
    fn peft_path(&self, path: &str) -> String {
        let bare = path.strip_prefix("bert.").unwrap_or(path);
        match &self.classifier {
            Some(c) if c.linear.path == path => path.to_string(),
            Some(_) => format!("bert.{bare}"),
            None => bare.to_string(),
        }
    }

    fn peft_aliases(&self, path: &str) -> Vec<String> {
        let first = self.peft_path(path);
        let bare = path.strip_prefix("bert.").unwrap_or(path).to_string();
        if bare == first {
            vec![first]
        } else {
            vec![first, bare]
        }
    }
}
