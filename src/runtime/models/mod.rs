//! Models: weight sources, architectures (llama family, gpt2; bert in its own files), loading
//! from a Hugging Face folder, tokenizers and generation.

pub mod config;
pub mod decoder;
pub mod error;
pub mod generate;
pub mod gpt2;
pub mod hub;
pub mod llama;
pub mod load;
pub mod reader;
pub mod safetensors_source;
pub mod source;
pub mod tokenizer;
