//! Models: weight sources, architectures (llama family, gpt2; bert in its own files), loading
//! from a Hugging Face folder, tokenizers and generation.

pub mod bert;
pub mod bert_config;
mod bert_layers;
pub mod config;
pub mod decoder;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod gguf_gpt2;
pub mod gguf_merged;
pub mod gguf_spm;
pub mod gguf_tokenizer;
pub mod gguf_weight;
pub mod gpt2;
pub mod hub;
pub mod layout;
pub mod llama;
pub mod load;
pub mod reader;
pub mod safetensors_source;
pub mod score_head;
pub mod source;
pub mod tokenizer;
