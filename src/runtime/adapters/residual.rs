//! Hooks where bottleneck adapters enter the residual stream.
//!
//! Model code calls [`ResidualHook::apply`] on a sub-block's output (after the attention output
//! projection, after the feed-forward down projection) before the residual add / layer norm.
//! The default, [`NoHook`], returns its input.

use candle_core::{Result, Tensor};

/// Where in a transformer block a residual adapter sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Site {
    /// On the attention sub-block's output.
    AfterAttention,
    /// On the feed-forward sub-block's output.
    AfterFeedForward,
}

/// Applies the residual adapters configured for a layer and site.
pub trait ResidualHook: Send + Sync + std::fmt::Debug {
    /// `hidden`: the sub-block output `[b, s, d]`; returns the adapted output.
    fn apply(&self, layer: usize, site: Site, hidden: &Tensor, train: bool) -> Result<Tensor>;
}

/// No residual adapters.
#[derive(Debug, Default)]
pub struct NoHook;

impl ResidualHook for NoHook {
    fn apply(&self, _layer: usize, _site: Site, hidden: &Tensor, _train: bool) -> Result<Tensor> {
        Ok(hidden.clone())
    }
}
