//! Go to definition, references, rename and document symbols, from the names index. Works on
//! the last analyses: references and rename cover every open document and the files each one
//! loads (stdlib modules are read, never edited).

use super::context;
use super::index::{self, file_uri};
use super::state::{Analysis, Document, Documents};
use super::text::LineMap;
use crate::syntax::ast::{DeclKind, Item};
use crate::syntax::{is_keyword, FileId, Span};
use lsp_types::{DocumentSymbol, Location, Range, SymbolKind, TextEdit, WorkspaceEdit};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The word under the cursor, if it names a declaration.
fn name_at(an: &Analysis, text: &str, offset: usize) -> Option<index::Site> {
    let (segs, idx, _) = context::path_at(text, offset)?;
    index::find_decl(an, segs.get(idx)?)
}

/// Where the name under the cursor is declared (in the document, a `use`d file or stdlib).
pub fn definition(doc: &Document, offset: usize) -> Option<Location> {
    let an = doc.analysis.as_ref()?;
    let site = name_at(an, &doc.text, offset)?;
    let uri = file_uri(an, &doc.uri, site.file)?;
    let src = an.checked.sources.get(site.file)?;
    let map = LineMap::new(&src.text);
    Some(Location {
        uri,
        range: map.range(&src.text, site.name_span),
    })
}

/// A declaration's identity across analyses: its file and the span of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeclKey {
    path: PathBuf,
    name_span: Span,
}

fn key_of(an: &Analysis, site: &index::Site) -> Option<DeclKey> {
    Some(DeclKey {
        path: an.checked.sources.get(site.file)?.path.clone(),
        name_span: site.name_span,
    })
}

fn is_std(path: &Path) -> bool {
    path.starts_with("<std>")
}

/// Every place the declaration under the cursor is named (its declaration too when
/// `include_declaration`): in the document, in every other open document that sees the same
/// declaration, and in the files they load. Stdlib modules are not searched.
pub fn references(
    docs: &Documents,
    doc: &Document,
    offset: usize,
    include_declaration: bool,
) -> Vec<Location> {
    let Some(an) = &doc.analysis else {
        return Vec::new();
    };
    let Some(site) = name_at(an, &doc.text, offset) else {
        return Vec::new();
    };
    let Some(target) = key_of(an, &site) else {
        return Vec::new();
    };
    // The document first, then the others in a stable order.
    let mut others: Vec<&Document> = docs.docs.values().filter(|d| d.uri != doc.uri).collect();
    others.sort_by(|a, b| a.uri.as_str().cmp(b.uri.as_str()));
    let mut seen: HashSet<(PathBuf, Span)> = HashSet::new();
    let mut out = Vec::new();
    for d in std::iter::once(doc).chain(others) {
        let Some(a) = &d.analysis else { continue };
        // Only where the name means the same declaration.
        let same = index::find_decl(a, &site.name).and_then(|s| key_of(a, &s));
        if same.as_ref() != Some(&target) {
            continue;
        }
        for (i, src) in a.checked.sources.files.iter().enumerate() {
            let file = FileId(i as u32);
            let (Some(tree), Some(uri)) = (a.file_ast(file), file_uri(a, &d.uri, file)) else {
                continue;
            };
            if is_std(&src.path) {
                continue;
            }
            let map = LineMap::new(&src.text);
            for (n, span) in index::names(tree) {
                let is_decl = src.path == target.path && span == target.name_span;
                if n != site.name
                    || (is_decl && !include_declaration)
                    || !seen.insert((src.path.clone(), span))
                {
                    continue;
                }
                out.push(Location {
                    uri: uri.clone(),
                    range: map.range(&src.text, span),
                });
            }
        }
    }
    out
}

/// Why a rename is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenameError {
    #[error("`{0}` is not a valid name (letters, digits and `_`, not starting with a digit, not a keyword)")]
    InvalidName(String),
    #[error("no declaration under the cursor")]
    NothingToRename,
    #[error("`{0}` is declared in the standard library, which cannot be edited; declare your own and use it instead")]
    InStdlib(String),
}

/// The edits renaming the declaration under the cursor and its uses in every file
/// [`references`] searches.
#[allow(clippy::mutable_key_type)] // `Uri` is the key type lsp-types chose for edits
pub fn rename(
    docs: &Documents,
    doc: &Document,
    offset: usize,
    new_name: &str,
) -> Result<WorkspaceEdit, RenameError> {
    let valid = new_name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && new_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !is_keyword(new_name);
    if !valid {
        return Err(RenameError::InvalidName(new_name.to_string()));
    }
    if let Some(an) = &doc.analysis {
        if let Some(site) = name_at(an, &doc.text, offset) {
            let std = an
                .checked
                .sources
                .get(site.file)
                .is_some_and(|f| is_std(&f.path));
            if std {
                return Err(RenameError::InStdlib(site.name));
            }
        }
    }
    let locs = references(docs, doc, offset, true);
    if locs.is_empty() {
        return Err(RenameError::NothingToRename);
    }
    let mut changes: HashMap<lsp_types::Uri, Vec<TextEdit>> = HashMap::new();
    for l in locs {
        changes.entry(l.uri).or_default().push(TextEdit {
            range: l.range,
            new_text: new_name.to_string(),
        });
    }
    Ok(WorkspaceEdit {
        changes: Some(changes),
        ..WorkspaceEdit::default()
    })
}

/// The outline: one symbol per declaration, its fields as children.
#[allow(deprecated)]
pub fn symbols(doc: &Document) -> Vec<DocumentSymbol> {
    let Some(an) = &doc.analysis else {
        return Vec::new();
    };
    let text = &doc.text;
    let range = |s: crate::syntax::Span| -> Range { doc.map.range(text, s) };
    let mut out = Vec::new();
    for site in index::decls_of(an.ast(), crate::syntax::FileId(0), text) {
        let body = an.ast().items.iter().find_map(|i| match i {
            Item::Decl(d) if d.name.span == site.name_span => d.body.as_ref(),
            _ => None,
        });
        let children: Vec<DocumentSymbol> = body
            .map(|b| {
                b.entries
                    .iter()
                    .filter_map(|e| match e {
                        crate::syntax::ast::Entry::Field(f) => Some(DocumentSymbol {
                            name: f.key.name.clone(),
                            detail: None,
                            kind: SymbolKind::FIELD,
                            tags: None,
                            deprecated: None,
                            range: range(f.span),
                            selection_range: range(f.key.span),
                            children: None,
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(DocumentSymbol {
            name: site.name.clone(),
            detail: Some(site.header.clone()),
            kind: symbol_kind(site.kind),
            tags: None,
            deprecated: None,
            range: range(site.span),
            selection_range: range(site.name_span),
            children: Some(children),
        });
    }
    for item in &an.ast().items {
        if let Item::Export(e) = item {
            out.push(DocumentSymbol {
                name: format!("export {}", e.source.dotted()),
                detail: Some(e.dest.value.clone()),
                kind: SymbolKind::EVENT,
                tags: None,
                deprecated: None,
                range: range(e.span),
                selection_range: range(e.source.span),
                children: None,
            });
        }
    }
    out.sort_by_key(|s| (s.range.start.line, s.range.start.character));
    out
}

fn symbol_kind(k: DeclKind) -> SymbolKind {
    match k {
        DeclKind::Model => SymbolKind::CLASS,
        DeclKind::Quant => SymbolKind::ENUM,
        DeclKind::Adapter => SymbolKind::INTERFACE,
        DeclKind::Dataset => SymbolKind::ARRAY,
        DeclKind::Train | DeclKind::Eval | DeclKind::Merge => SymbolKind::FUNCTION,
        DeclKind::Device => SymbolKind::OBJECT,
        DeclKind::Let => SymbolKind::CONSTANT,
    }
}
