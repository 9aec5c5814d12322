//! Models: weight sources, architectures (llama family, gpt2, bert), loading and generation.

pub mod source;
