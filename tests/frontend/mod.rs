//! Tests of the language front end: parser, checker, diagnostics, CLI.
mod cli;
mod examples;
mod fuzz;
mod incremental;
mod models;
mod parse;
mod runtime_errors;
mod support;
mod ui;
