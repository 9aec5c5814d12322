//! Tests of the language front end: parser, checker, diagnostics, CLI.
mod cli;
mod cli_robust;
mod examples;
pub mod fuzz;
mod incremental;
mod models;
mod parse;
pub mod regressions;
mod runtime_errors;
mod support;
mod ui;
