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
mod incremental;
mod shift;
pub mod span;

pub use diagnostic::{Code, Diagnostic, Label, Severity};
pub use errors::is_keyword;
pub use incremental::ParseCache;
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
    parse_file_cached(source, file, None)
}

/// Parses `source` like [`parse_file`], taking every item whose text is unchanged since the
/// cache's last round from `cache` instead of parsing it again. The result equals
/// [`parse_file`]'s.
pub fn parse_file_cached(
    source: &str,
    file: FileId,
    cache: Option<&ParseCache>,
) -> (ast::File, Vec<Diagnostic>) {
    let bad_strings = chunks::unterminated_strings(source);
    let mut diags = chunks::string_errors(&bad_strings, file);
    let mut items = Vec::new();
    for (start, end) in chunks::split(source) {
        let text = &source[start..end];
        if let Some(item) = cache.and_then(|c| c.get(text, start)) {
            items.push(item);
            continue;
        }
        let before = diags.len();
        let clean = !bad_strings
            .iter()
            .any(|s| (start..end).contains(&(s.start as usize)));
        if let Some(item) = chunks::parse_chunk(source, start, end, file, &bad_strings, &mut diags)
        {
            if let Some(c) = cache.filter(|_| clean && diags.len() == before) {
                if !matches!(item, ast::Item::Error(_)) {
                    c.put(text, start, &item);
                }
            }
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
