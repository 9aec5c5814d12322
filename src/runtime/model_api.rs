//! What training and evaluation need from a model with adapters attached.
//!
//! The model implementations (llama family, gpt2, bert) implement [`AdaptedModel`]; the trainer and
//! the evaluator only see this trait, so they never depend on an architecture.

use candle_core::{Device, Result, Tensor, Var};

/// The head a model carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    /// Next-token prediction; logits are `[batch, seq, vocab]`.
    CausalLm,
    /// Sequence classification; logits are `[batch, num_labels]`.
    Classify { num_labels: usize },
}

/// A base model with its adapters, ready to run forward and to be trained.
pub trait AdaptedModel {
    /// The head this model carries.
    fn task(&self) -> TaskKind;
    /// Logits for a batch. `input_ids`: `[b, s]` u32; `attention_mask`: `[b, s]` u8.
    /// `train` switches dropout on.
    fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Result<Tensor>;
    /// For a causal LM whose output layer is a plain frozen dense weight, where
    /// [`linear_cross_entropy::applies`](crate::runtime::train::linear_cross_entropy::applies):
    /// the final hidden states `[b, s, h]` and that weight `[vocab, h]`, so that the loss is
    /// taken without whole logits; `forward` is `hidden W^T`. `None` (the default), decided
    /// before running anything: use `forward`.
    fn hidden_and_output(
        &self,
        _input_ids: &Tensor,
        _attention_mask: &Tensor,
        _train: bool,
    ) -> Result<Option<(Tensor, Tensor)>> {
        Ok(None)
    }
    /// Every trainable parameter (active adapters' weights and `modules_to_save`) with its PEFT
    /// key name (e.g. `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`), in a
    /// stable order. The frozen base is never in this list.
    fn trainable(&self) -> Vec<(String, Var)>;
    /// The device the model lives on.
    fn device(&self) -> &Device;
}

use crate::runtime::adapters::linear::AdaptableLinear;
use crate::runtime::adapters::residual::ResidualHook;
use std::sync::Arc;

/// A model whose linear layers and residual stream accept adapters. Every architecture
/// implements it, so adapter code never depends on an architecture.
pub trait AdaptableModel: AdaptedModel {
    /// Every adaptable linear layer, in a stable order. `AdaptableLinear::path` is the module
    /// path as in the Hugging Face checkpoint without `.weight`
    /// (e.g. `model.layers.0.self_attn.q_proj`, `encoder.layer.0.attention.self.query`).
    fn linears(&self) -> Vec<&AdaptableLinear>;
    /// The same layers, mutable, to attach, merge or remove adapters.
    fn linears_mut(&mut self) -> Vec<&mut AdaptableLinear>;
    /// Installs the residual (bottleneck) adapters.
    fn set_residual_hook(&mut self, hook: Arc<dyn ResidualHook>);
    /// Number of transformer blocks.
    fn num_layers(&self) -> usize;
    /// Hidden size of the residual stream.
    fn hidden_size(&self) -> usize;
    /// The module path PEFT names the layer at `path` by: its path in the Hugging Face class
    /// PEFT wraps for this model's task (`BertForSequenceClassification` names the encoder
    /// `bert.encoder...` even when the checkpoint is a bare `BertModel`). Identity by default.
    fn peft_path(&self, path: &str) -> String {
        path.to_string()
    }
    /// Every module path an adapter file may name the layer at `path` by, PEFT's first (an
    /// adapter saved on the bare encoder class names it without the task class's prefix).
    fn peft_aliases(&self, path: &str) -> Vec<String> {
        vec![self.peft_path(path)]
    }
}
