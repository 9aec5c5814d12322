//! Tests: runtime_models (ops, adapters, llama / gpt2 loading, PEFT parity both ways).
mod bottleneck_llama;
mod common;
mod errors;
mod generation;
mod gradients;
mod packing;
mod parity;
mod peft_files;
mod reverse;
mod sliding_window;
