//! Adapters: the adaptable linear layer (LoRA, DoRA) and residual (bottleneck) adapters.

pub mod bottleneck;
pub mod bottleneck_config;
pub mod linear;
pub mod residual;
