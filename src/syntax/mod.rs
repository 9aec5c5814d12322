//! # syntax: `.peft` source text to a typed AST
//!
//! [`parse`] never fails: it returns an [`ast::File`] (with [`ast::Item::Error`] where a
//! declaration could not be read) and every syntax error found, each with a stable code and a
//! message in words. Spans are byte ranges ([`Span`]); comments and `///` doc comments are kept.
//! This module must not depend on candle or read files.
//!
//! ```
//! let (file, diags) = peftc::syntax::parse("adapter a = lora { r = 8 }");
//! assert!(diags.is_empty());
//! assert_eq!(file.items.len(), 1);
//! ```

pub mod ast;
mod build;
mod chunks;
mod comments;
pub mod diagnostic;
mod errors;
mod grammar;
pub mod span;

pub use diagnostic::{Code, Diagnostic, Label, Severity};
pub use errors::is_keyword;
pub use span::{FileId, LineCol, LineIndex, Loc, Span};

/// The fixed keyword list (editor grammars are generated from it).
pub const KEYWORDS: &[&str] = &[
    "use",
    "model",
    "quant",
    "adapter",
    "dataset",
    "train",
    "eval",
    "gate",
    "merge",
    "export",
    "device",
    "let",
    "to",
    "as",
    "on",
    "quantized",
    "sweep",
    "escalate",
    "mix",
    "baseline",
    "true",
    "false",
];

/// Parses `source` (as file 0). Never fails; see [`parse_file`].
pub fn parse(source: &str) -> (ast::File, Vec<Diagnostic>) {
    parse_file(source, FileId(0))
}

/// Parses `source`, tagging diagnostics with `file`.
pub fn parse_file(source: &str, file: FileId) -> (ast::File, Vec<Diagnostic>) {
    let bad_strings = chunks::unterminated_strings(source);
    let mut diags = chunks::string_errors(&bad_strings, file);
    let mut items = Vec::new();
    for (start, end) in chunks::split(source) {
        if let Some(item) = chunks::parse_chunk(source, start, end, file, &bad_strings, &mut diags)
        {
            items.push(item);
        }
    }
    let comments = comments::collect(source);
    for item in &mut items {
        match item {
            ast::Item::Decl(d) => {
                d.doc = comments::doc_above(source, &comments, d.span.start);
                if let Some(b) = &mut d.body {
                    attach_field_docs(source, &comments, b);
                }
            }
            ast::Item::Export(e) => e.doc = comments::doc_above(source, &comments, e.span.start),
            _ => {}
        }
    }
    diags.sort_by_key(|d| (d.loc.span.start, d.code));
    let file_ast = ast::File {
        items,
        comments,
        span: Span::new(0, source.len()),
    };
    (file_ast, diags)
}

fn attach_field_docs(source: &str, comments: &[ast::Comment], block: &mut ast::Block) {
    for e in &mut block.entries {
        if let ast::Entry::Field(f) = e {
            f.doc = comments::doc_above(source, comments, f.span.start);
        }
    }
}
