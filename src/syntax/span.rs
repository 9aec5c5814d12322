//! Byte spans, file ids and line/column lookup. Spans are small `Copy` byte ranges; lines and
//! columns are computed only when a diagnostic is rendered. Knows nothing about pest.

/// A byte range `start..end` in one source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(start: usize, end: usize) -> Self {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end).unwrap_or(u32::MAX).max(start);
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
    /// The range as `usize` for slicing.
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
    /// The text under the span, or "" when it is outside `source`.
    pub fn text(self, source: &str) -> &str {
        source.get(self.range()).unwrap_or("")
    }
}

/// The largest char boundary of `text` at or before `offset` (clamped to the text): computed
/// offsets become safe to slice at, whatever UTF-8 the text holds.
pub fn floor_char_boundary(text: &str, offset: usize) -> usize {
    let mut i = offset.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Identifies a source file inside one check (the main file is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A span together with the file it points into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Loc {
    pub file: FileId,
    pub span: Span,
}

/// One-based line and column (columns count chars) of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

/// Turns byte offsets into lines and columns.
#[derive(Debug, Clone)]
pub struct LineIndex {
    starts: Vec<usize>,
    /// Lines whose text is all ASCII: there a column is a byte difference, whatever the length.
    ascii: Vec<bool>,
}

impl LineIndex {
    pub fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        let ascii = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let e = starts.get(i + 1).copied().unwrap_or(source.len());
                source.as_bytes().get(s..e).is_some_and(<[u8]>::is_ascii)
            })
            .collect();
        LineIndex { starts, ascii }
    }
    /// The zero-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }
    /// The byte range of zero-based `line` in `source`, without its line break.
    pub fn line_range(&self, source: &str, line: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(line).copied().unwrap_or(source.len());
        let end = self
            .starts
            .get(line + 1)
            .map_or(source.len(), |next| next - 1)
            .max(start);
        start.min(source.len())..end.min(source.len())
    }
    /// How many lines `source` has (an empty text has one).
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }
    /// Line and column of `offset` in `source` (clamped to the text).
    pub fn line_col(&self, source: &str, offset: usize) -> LineCol {
        let offset = offset.min(source.len());
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = match self.ascii.get(line) {
            Some(true) => offset.saturating_sub(start),
            _ => source
                .get(start..offset)
                .map(|s| s.chars().count())
                .unwrap_or(0),
        };
        LineCol {
            line: line + 1,
            col: col + 1,
        }
    }
}
