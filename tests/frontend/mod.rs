//! Tests of the language front end: parser, checker, diagnostics, CLI.
mod parse;
