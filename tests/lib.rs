//! The single integration-test binary: one module per area, so candle is linked once.
mod data;
mod exec;
mod frontend;
mod quant;
mod runtime_bert;
mod runtime_models;
mod train;
mod watch;
