//! # peftc: declarative, checked and incremental parameter-efficient fine-tuning
//!
//! A `.peft` pipeline goes through these steps, one module each:
//!
//! 1. [`syntax`]: source text to a typed AST with spans; never fails, returns diagnostics.
//! 2. [`check`]: names, schemas, types, model-aware lints and figures (params, memory, FLOPs).
//!    The front end (`syntax`, `check`) does not depend on candle.
//! 3. [`plan`]: a checked program to a DAG of stages with content keys.
//! 4. [`exec`]: the content-addressed cache, scheduling, progress, watch.
//! 5. [`runtime`]: candle models, adapters, quantization, data, training and evaluation.
//!
//! [`cli`] and [`lsp`] sit on top. See `ARCHITECTURE.md` for the invariants.

pub mod check;
pub mod cli;
pub mod exec;
pub mod fmt;
pub mod lsp;
pub mod plan;
pub mod runtime;
pub mod safe_fs;
pub mod serve;
pub mod stages;
pub mod syntax;
