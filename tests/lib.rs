//! The single integration-test binary: one module per area, so candle is linked once.
mod data;
mod examples;
mod exec;
mod fmt;
mod frontend;
mod lsp;
mod peft_format;
mod pipeline;
mod quant;
mod runtime_bert;
mod runtime_models;
mod scripts;
mod serve;
mod slurm;
mod train;
mod watch;
