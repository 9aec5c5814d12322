//! What generation needs from a causal model: one forward step over new tokens with a
//! key/value cache.
//!
//! Steps run with [`Kernels::Fused`](crate::runtime::ops::attention::Kernels) (no gradients).
//! [`Decoder::step_rows`] serves continuous batching: every row has its own cache (its own
//! length), so requests can join and leave a running batch between steps.

use candle_core::{Result, Tensor};

/// Cached keys and values per layer, `[b, h_kv, t, d]`, and how many positions they hold.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    /// One entry per layer.
    pub layers: Vec<Option<(Tensor, Tensor)>>,
    /// Number of cached positions.
    pub len: usize,
}

impl KvCache {
    /// An empty cache for `n` layers.
    pub fn new(n: usize) -> Self {
        Self {
            layers: vec![None; n],
            len: 0,
        }
    }

    /// Appends this step's keys and values for `layer`, returning the full ones.
    pub fn append(&mut self, layer: usize, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| candle_core::Error::Msg(format!("kv cache has no layer {layer}")))?;
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }
}

/// A causal model that can decode step by step.
pub trait Decoder {
    /// A fresh cache.
    fn new_cache(&self) -> KvCache;
    /// Logits `[b, s, vocab]` for new tokens `input_ids: [b, s]` at `positions: [b, s]` (u32),
    /// with `attention_mask: [b, cache.len + s]` over cached and new tokens. Updates `cache`.
    fn step(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        positions: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor>;
    /// Logits `[b, s, vocab]` for new tokens `input_ids: [b, s]` at `positions: [b, s]` (u32),
    /// row `r` attending to its own `caches[r]` (no padding: each cache holds only its row's
    /// real tokens). Updates every cache. Architectures without it say so.
    fn step_rows(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        caches: &mut [KvCache],
    ) -> Result<Tensor> {
        let _ = (input_ids, positions, caches);
        candle_core::bail!("this architecture has no per-row decoding (continuous batching)")
    }
}
