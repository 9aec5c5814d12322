//! Models: weight sources, architectures (llama family, gpt2, bert), loading and generation.

pub mod bert;
pub mod bert_config;
mod bert_layers;
pub mod gguf;
pub mod gguf_tokenizer;
pub mod gguf_weight;
pub mod source;
