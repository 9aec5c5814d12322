//! The pest parser generated from `grammar/peft.pest`. Only `build.rs`, `chunks.rs` and
//! `errors.rs` see its types; the AST holds none of them.

#[derive(pest_derive::Parser)]
#[grammar = "grammar/peft.pest"]
pub struct PeftParser;
