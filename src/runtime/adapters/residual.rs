//! Hooks where bottleneck adapters enter the residual stream.
//!
//! Model code calls [`ResidualHook::combine`] where a sub-block (attention after its output
//! projection, feed-forward after its down projection) joins the residual stream: it hands the
//! sub-block output, the residual input and, for post-LN architectures (BERT), the sub-block's
//! layer norm, and gets the new residual stream back. The default returns
//! `norm(residual + apply(output))`, so a hook that only rewrites the sub-block output implements
//! [`ResidualHook::apply`] alone. [`NoHook`] changes nothing.
//!
//! Must not hold model weights: a hook owns only its adapters' parameters.

use candle_core::{Result, Tensor, Var};

/// Where in a transformer block a residual adapter sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// On the attention sub-block's output.
    AfterAttention,
    /// On the feed-forward sub-block's output.
    AfterFeedForward,
}

/// A layer norm (or any map) applied to the residual stream.
pub type NormFn<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;

/// A sub-block's output where it joins the residual stream.
pub struct SubBlock<'a> {
    /// The sub-block output `[b, s, d]` (after the output projection and its dropout).
    pub output: &'a Tensor,
    /// The residual stream that entered the sub-block `[b, s, d]`.
    pub residual: &'a Tensor,
    /// The layer norm applied after the residual add (post-LN models such as BERT); `None` for
    /// pre-LN models (llama, gpt2), where the sum is the new residual stream.
    pub norm: Option<NormFn<'a>>,
}

impl SubBlock<'_> {
    /// `norm(x)` when the block has a norm after the residual add, else `x`.
    pub fn normed(&self, x: &Tensor) -> Result<Tensor> {
        match self.norm {
            Some(norm) => norm(x),
            None => Ok(x.clone()),
        }
    }
}

/// Applies the residual adapters configured for a layer and site.
pub trait ResidualHook: Send + Sync + std::fmt::Debug {
    /// `hidden`: the sub-block output `[b, s, d]`; returns the adapted output.
    fn apply(&self, layer: usize, site: Site, hidden: &Tensor, train: bool) -> Result<Tensor>;

    /// The new residual stream after the sub-block: `norm(residual + output)` with the adapters
    /// inserted. Adapters that read the summed (and normed) stream, as Pfeiffer's does, override
    /// this; the default is `norm(residual + apply(output))`.
    fn combine(
        &self,
        layer: usize,
        site: Site,
        block: &SubBlock<'_>,
        train: bool,
    ) -> Result<Tensor> {
        let h = self.apply(layer, site, block.output, train)?;
        block.normed(&(h + block.residual)?)
    }

    /// Whether the hook changes nothing (`combine` is `residual + output`), so a model may
    /// fuse the residual add into the sub-block.
    fn is_identity(&self) -> bool {
        false
    }

    /// The hook's trainable parameters with their checkpoint key names, in a stable order.
    fn trainable(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
}

/// No residual adapters.
#[derive(Debug, Default)]
pub struct NoHook;

impl ResidualHook for NoHook {
    fn apply(&self, _layer: usize, _site: Site, hidden: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(hidden.clone())
    }

    fn is_identity(&self) -> bool {
        true
    }
}
