//! The source files of one check (main file, `use`d files, stdlib modules), indexed by
//! [`FileId`]. Used to render diagnostics; holds no analysis.

use crate::syntax::{FileId, LineCol, LineIndex};
use std::path::PathBuf;

/// One loaded source text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Absolute path, or `<std>/NAME.peft` for stdlib modules.
    pub path: PathBuf,
    pub text: String,
    pub lines: LineIndex,
}

/// All sources of a check; `FileId(i)` is `files[i]`.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub files: Vec<SourceFile>,
}

impl Sources {
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        let lines = LineIndex::new(&text);
        self.files.push(SourceFile { path, text, lines });
        FileId(u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX))
    }
    pub fn get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }
    /// Line and column of a byte offset in a file.
    pub fn line_col(&self, id: FileId, offset: u32) -> LineCol {
        match self.get(id) {
            Some(f) => f.lines.line_col(&f.text, offset as usize),
            None => LineCol { line: 1, col: 1 },
        }
    }
}
