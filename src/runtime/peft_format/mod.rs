//! The PEFT on-disk format: `adapter_config.json` + `adapter_model.safetensors` with exactly
//! PEFT's key names and fields (so adapters move between peftc and Python PEFT both ways), a
//! merged model saved as a plain Hugging Face folder, and `peftc.lineage.json`.

pub mod adapter_config;
pub mod error;
pub mod files;
pub mod lineage;
pub mod load;
pub mod merged;
pub mod save;
