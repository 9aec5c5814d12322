//! Names in a checked document: the declarations visible from it (its own, `use`d files',
//! stdlib modules') and every place a name is written. Go to definition, references, rename,
//! document symbols and completion read this. Built from syntax trees; no checking.

use super::state::Analysis;
use super::text::path_to_uri;
use crate::syntax::ast::{self, DeclKind, Entry, Expr, ExprKind, Item};
use crate::syntax::{FileId, Span};
use lsp_types::Uri;
use std::path::{Path, PathBuf};

/// A declaration and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub file: FileId,
    pub kind: DeclKind,
    pub name: String,
    pub name_span: Span,
    pub span: Span,
    pub doc: Option<String>,
    /// `KIND NAME = HEAD` as written.
    pub header: String,
    /// The head's first word (`lora`, `hf`, a declaration it extends).
    pub head: Option<String>,
}

/// The declarations of one syntax tree.
pub fn decls_of(file: &ast::File, id: FileId, text: &str) -> Vec<Site> {
    let mut out = Vec::new();
    for item in &file.items {
        let Item::Decl(d) = item else { continue };
        let head_text = d.head.as_ref().map(|h| {
            h.span
                .text(text)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        });
        let header = match &head_text {
            Some(h) => format!("{} {} = {h}", d.kind.keyword(), d.name.name),
            None => format!("{} {}", d.kind.keyword(), d.name.name),
        };
        let head = d.head.as_ref().and_then(head_word);
        out.push(Site {
            file: id,
            kind: d.kind,
            name: d.name.name.clone(),
            name_span: d.name.span,
            span: d.span,
            doc: d.doc.clone(),
            header,
            head,
        });
    }
    out
}

fn head_word(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Path(p) => p.segments.first().map(|s| s.name.clone()),
        ExprKind::Call { callee, .. } => Some(callee.name.clone()),
        ExprKind::Extend { base, .. } | ExprKind::Quantized { base, .. } => head_word(base),
        _ => None,
    }
}

/// Every declaration visible from the document: its own first, then the other loaded files.
pub fn all_decls(an: &Analysis) -> Vec<Site> {
    let main_text = an
        .checked
        .sources
        .get(FileId(0))
        .map(|f| f.text.as_str())
        .unwrap_or("");
    let mut out = decls_of(an.ast(), FileId(0), main_text);
    for i in 1..an.checked.sources.files.len() {
        let id = FileId(i as u32);
        if let (Some(ast), Some(src)) = (an.file_ast(id), an.checked.sources.get(id)) {
            out.extend(decls_of(ast, id, &src.text));
        }
    }
    out
}

/// The declaration `name` resolves to (the document's own first).
pub fn find_decl(an: &Analysis, name: &str) -> Option<Site> {
    all_decls(an).into_iter().find(|s| s.name == name)
}

/// Every name written in a tree, with its span: declaration names, path segments, imported
/// names, `on DEVICE` names.
pub fn names(file: &ast::File) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for item in &file.items {
        match item {
            Item::Use(u) => {
                for n in u.names.iter().flatten() {
                    out.push((n.name.clone(), n.span));
                }
            }
            Item::Decl(d) => {
                out.push((d.name.name.clone(), d.name.span));
                if let Some(h) = &d.head {
                    expr_names(h, &mut out);
                }
                if let Some(b) = &d.body {
                    block_names(b, &mut out);
                }
            }
            Item::Export(e) => {
                path_names(&e.source, &mut out);
                if let Some(b) = &e.body {
                    block_names(b, &mut out);
                }
            }
            Item::Error(_) => {}
        }
    }
    out
}

fn path_names(p: &ast::Path, out: &mut Vec<(String, Span)>) {
    for s in &p.segments {
        out.push((s.name.clone(), s.span));
    }
}

fn block_names(b: &ast::Block, out: &mut Vec<(String, Span)>) {
    for e in &b.entries {
        match e {
            Entry::Field(f) => expr_names(&f.value, out),
            Entry::Gate(g) => expr_names(&g.expr, out),
            Entry::On(n, _) => out.push((n.name.clone(), n.span)),
        }
    }
}

fn expr_names(e: &Expr, out: &mut Vec<(String, Span)>) {
    match &e.kind {
        ExprKind::Path(p) => path_names(p, out),
        ExprKind::Call { args, .. } => args.iter().for_each(|a| expr_names(&a.value, out)),
        ExprKind::List(items) | ExprKind::Sweep(items) | ExprKind::Escalate(items) => {
            items.iter().for_each(|i| expr_names(i, out))
        }
        ExprKind::Block(b) | ExprKind::Mix(b) => block_names(b, out),
        ExprKind::Extend { base, block } => {
            expr_names(base, out);
            block_names(block, out);
        }
        ExprKind::Quantized { base, quant } => {
            expr_names(base, out);
            path_names(quant, out);
        }
        ExprKind::Binary { lhs, rhs, .. } => {
            expr_names(lhs, out);
            expr_names(rhs, out);
        }
        ExprKind::Neg(x) | ExprKind::Paren(x) => expr_names(x, out),
        ExprKind::Number(_) | ExprKind::Str(_) | ExprKind::Bool(_) => {}
    }
}

/// The URI of a loaded file: the document itself, a file on disk, or a stdlib module written
/// out to a read-only copy under the temp folder (so editors can open it).
pub fn file_uri(an: &Analysis, doc_uri: &Uri, file: FileId) -> Option<Uri> {
    if file == FileId(0) {
        return Some(doc_uri.clone());
    }
    let src = an.checked.sources.get(file)?;
    match src.path.strip_prefix("<std>") {
        Ok(name) => path_to_uri(&stdlib_copy(name, &src.text)?),
        Err(_) => path_to_uri(&src.path),
    }
}

/// Writes a stdlib module's text to `$TMP/peftc-std-VERSION/NAME` (once) and returns the path.
pub fn stdlib_copy(name: &Path, text: &str) -> Option<PathBuf> {
    let dir = std::env::temp_dir().join(format!("peftc-std-{}", env!("CARGO_PKG_VERSION")));
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::write(&path, text).ok()?;
    }
    Some(path)
}
