//! The single integration-test binary: one module per area, so candle is linked once.
mod data;
mod examples;
mod exec;
mod fmt;
mod frontend;
mod lsp;
mod pipeline;
mod quant;
mod runtime_bert;
mod runtime_models;
mod slurm;
mod train;
mod watch;
