//! Quantized base weights: bitsandbytes parity (NF4/FP4, double quantization), input gradients
//! through every format, LoRA training on a quantized stack, the disk cache and merging.

mod bnb_reference;
mod cache_source;
mod gguf;
mod gradients;
mod llama_nf4;
mod lora_training;
mod merge;
