//! Open documents and their last analysis. A document is re-checked only when its text
//! changed; the analysis keeps the checker's result and (parsed on first use) the document's
//! syntax tree. Reads other files only through the checker's world.

use super::text::LineMap;
use super::world::OverlayWorld;
use crate::check::{self, Checked, RealWorld};
use crate::syntax::{ast, FileId, ParseCache};
use lsp_types::Uri;
use std::collections::HashMap;
use std::path::PathBuf;

/// One open document.
#[derive(Debug)]
pub struct Document {
    pub uri: Uri,
    pub path: PathBuf,
    pub version: i32,
    pub text: String,
    pub map: LineMap,
    /// Set when the text changed since the last check.
    pub dirty: bool,
    /// The items of the last check: a change re-parses only the declarations it touched.
    pub parse_cache: ParseCache,
    pub analysis: Option<Analysis>,
}

/// The result of checking one document.
#[derive(Debug)]
pub struct Analysis {
    pub checked: Checked,
    empty: ast::File,
}

impl Analysis {
    /// The syntax tree of the checked document (file 0).
    pub fn ast(&self) -> &ast::File {
        self.checked.syntax.first().unwrap_or(&self.empty)
    }

    /// The syntax tree of another loaded file (a `use`d file or stdlib module).
    pub fn file_ast(&self, file: FileId) -> Option<&ast::File> {
        self.checked.syntax.get(file.0 as usize)
    }
}

/// Every open document, and the disk behind them.
#[derive(Debug, Default)]
pub struct Documents {
    pub docs: HashMap<String, Document>,
    pub disk: RealWorld,
}

impl Documents {
    pub fn new() -> Self {
        Documents {
            docs: HashMap::new(),
            disk: RealWorld::from_env(),
        }
    }

    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str())
    }

    /// Checks `uri` if its text changed; returns whether it did.
    pub fn refresh(&mut self, uri: &str) -> bool {
        let open: HashMap<PathBuf, String> = self
            .docs
            .values()
            .filter(|d| d.uri.as_str() != uri)
            .map(|d| (d.path.clone(), d.text.clone()))
            .collect();
        let Some(doc) = self.docs.get_mut(uri) else {
            return false;
        };
        if !doc.dirty && doc.analysis.is_some() {
            return false;
        }
        let world = OverlayWorld {
            disk: &self.disk,
            open: &open,
        };
        let checked =
            check::check_source_cached(&world, &doc.path, &doc.text, Some(&doc.parse_cache));
        let old = doc.analysis.replace(Analysis {
            checked,
            empty: ast::File::default(),
        });
        doc.dirty = false;
        // Freeing a large program takes milliseconds: do it off the path to the diagnostics.
        if let Some(old) = old {
            std::thread::spawn(move || drop(old));
        }
        true
    }

    /// Marks for a new check every other open document that loaded `path` (a `use`d file that
    /// was opened, edited or closed): their diagnostics depend on its text.
    pub fn mark_dependents(&mut self, path: &std::path::Path) {
        for d in self.docs.values_mut() {
            let loads = d.analysis.as_ref().is_some_and(|a| {
                a.checked
                    .sources
                    .files
                    .iter()
                    .skip(1)
                    .any(|f| f.path == path)
            });
            if d.path != path && loads {
                d.dirty = true;
            }
        }
    }

    /// Checks every document whose text changed; returns their URIs.
    pub fn refresh_dirty(&mut self) -> Vec<String> {
        let dirty: Vec<String> = self
            .docs
            .values()
            .filter(|d| d.dirty)
            .map(|d| d.uri.as_str().to_string())
            .collect();
        for u in &dirty {
            self.refresh(u);
        }
        dirty
    }
}
