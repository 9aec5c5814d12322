//! Tests: the BERT model, bottleneck adapters, the GGUF source and tokenizer, real models.
mod bottleneck;
mod gguf;
mod gguf_gpt2;
mod gguf_pipeline;
mod gguf_spm;
mod gguf_stays_quantized;
mod gradients;
mod parity;
mod real_models;
mod smollm2_greedy;
mod support;
