//! The single integration-test binary: one module per area, so candle is linked once.
mod frontend;
mod runtime_models;
mod quant;
mod data;
mod train;
mod exec;
