//! Adapters: the adaptable linear layer (LoRA, DoRA) and residual (bottleneck) adapters.

pub mod bottleneck;
pub mod linear;
pub mod residual;
