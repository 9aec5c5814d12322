//! Adapters: the adaptable linear layer (LoRA, DoRA) and residual (bottleneck) adapters.

pub mod linear;
pub mod residual;
