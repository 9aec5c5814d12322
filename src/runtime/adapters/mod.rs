//! Adapters: the adaptable linear layer (LoRA, DoRA, `modules_to_save`), attaching adapters to a
//! model by target names, weighted combinations, and residual (bottleneck) adapter hooks.

pub mod attach;
pub mod bottleneck;
pub mod bottleneck_config;
pub mod combine;
pub mod combine_rules;
pub mod convert;
pub mod error;
pub mod fused_block;
pub mod linear;
pub mod lora;
pub mod olora;
pub mod pissa;
pub mod residual;
pub mod targets;
