//! Cuts a source file down to what one rendered diagnostic shows: the lines around its labels,
//! each line longer than a window cut around the labels on it (`...` marks what was cut). The
//! renderer then works on a few kilobytes whatever the file's size or line length, and shows
//! the file's real line numbers and columns. Presentation only: must not change what a
//! diagnostic says.

use crate::syntax::{LineIndex, Span};
use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use std::ops::Range;

/// Lines longer than this many bytes are cut to a window of about this size.
pub const WINDOW: usize = 160;
/// A label over more lines than this is shown on its first line only.
pub const MAX_LABEL_LINES: usize = 40;
/// Context lines shown above and below each label (miette's default).
const CONTEXT: usize = 1;
/// What marks a cut.
const MARK: &str = "...";

/// One line of the snippet.
#[derive(Debug)]
struct CutLine {
    /// Byte offset of the line in the file.
    line_start: usize,
    /// Byte range of the file kept on this line.
    keep: Range<usize>,
    /// Where the line starts in the snippet.
    at: usize,
    /// Bytes of the cut mark before the kept text (0 or `MARK.len()`).
    prefix: usize,
}

/// The cut-down text with its place in the file.
#[derive(Debug)]
pub struct Snippet {
    name: String,
    text: String,
    /// Zero-based line of the file the snippet starts at.
    first_line: usize,
    lines: Vec<CutLine>,
}

impl Snippet {
    /// The lines of `source` around `spans` (already clamped with [`clamp_span`]).
    pub fn new(name: String, source: &str, index: &LineIndex, spans: &[Span]) -> Self {
        let last = index.line_count().saturating_sub(1);
        let mut lo = usize::MAX;
        let mut hi = 0;
        for s in spans {
            lo = lo.min(index.line_of(s.start as usize));
            hi = hi.max(index.line_of(last_byte(*s)));
        }
        if lo == usize::MAX {
            lo = 0;
        }
        let lo = lo.saturating_sub(CONTEXT);
        let hi = (hi + CONTEXT).min(last).max(lo);
        let mut text = String::new();
        let mut lines = Vec::with_capacity(hi - lo + 1);
        for l in lo..=hi {
            let r = index.line_range(source, l);
            let line = source.get(r.clone()).unwrap_or("");
            let keep = if line.len() <= WINDOW {
                r.clone()
            } else {
                window(source, r.clone(), spans)
            };
            let at = text.len();
            let prefix = if keep.start > r.start { MARK.len() } else { 0 };
            if prefix > 0 {
                text.push_str(MARK);
            }
            text.push_str(source.get(keep.clone()).unwrap_or(""));
            if keep.end < r.end {
                text.push_str(MARK);
            }
            if r.end < source.len() {
                text.push('\n');
            }
            lines.push(CutLine {
                line_start: r.start,
                keep,
                at,
                prefix,
            });
        }
        Snippet {
            name,
            text,
            first_line: lo,
            lines,
        }
    }

    /// Where byte `offset` of the file is in the snippet (clamped to what was kept).
    pub fn map(&self, offset: usize) -> usize {
        let i = self
            .lines
            .partition_point(|l| l.line_start <= offset)
            .saturating_sub(1);
        let Some(l) = self.lines.get(i) else {
            return 0;
        };
        if offset < l.line_start {
            return l.at;
        }
        let kept = offset.clamp(l.keep.start, l.keep.end) - l.keep.start;
        (l.at + l.prefix + kept).min(self.text.len())
    }

    /// A file span as a snippet span.
    pub fn map_span(&self, s: Span) -> SourceSpan {
        let a = self.map(s.start as usize);
        let b = self.map(s.end as usize).max(a);
        SourceSpan::new(a.into(), b - a)
    }

    /// The byte column in the file of snippet offset `at` (miette counts columns in bytes).
    fn column(&self, at: usize) -> Option<usize> {
        let i = self.lines.partition_point(|l| l.at <= at).checked_sub(1)?;
        let l = self.lines.get(i)?;
        let into = (at - l.at).saturating_sub(l.prefix);
        Some(l.keep.start - l.line_start + into)
    }
}

/// `span` shortened to its first line when it covers more than [`MAX_LABEL_LINES`] lines.
pub fn clamp_span(source: &str, index: &LineIndex, span: Span) -> Span {
    let first = index.line_of(span.start as usize);
    let last = index.line_of(last_byte(span));
    if last - first <= MAX_LABEL_LINES {
        return span;
    }
    let end = index.line_range(source, first).end;
    Span::new(span.start as usize, end.max(span.start as usize))
}

/// The offset of the last byte a span covers (its start when empty).
fn last_byte(s: Span) -> usize {
    (s.end as usize).saturating_sub(1).max(s.start as usize)
}

/// About [`WINDOW`] bytes of the line `line` (a byte range of `source`) around the first
/// label that starts on it (or its start), on char boundaries.
fn window(source: &str, line: Range<usize>, spans: &[Span]) -> Range<usize> {
    let focus = spans
        .iter()
        .map(|s| s.start as usize)
        .filter(|s| line.contains(s) || *s == line.end)
        .min()
        .unwrap_or(line.start);
    let start = focus.saturating_sub(WINDOW / 3).max(line.start);
    let end = (start + WINDOW).min(line.end);
    let start = crate::syntax::span::floor_char_boundary(source, start).max(line.start);
    let end = crate::syntax::span::floor_char_boundary(source, end).max(start);
    start..end
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.as_str().read_span(span, before, after)?;
        let column = if before == 0 && after == 0 {
            self.column(span.offset()).unwrap_or(inner.column())
        } else {
            inner.column()
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line() + self.first_line,
            column,
            // miette counts lines from the start of its input and merges label groups by it.
            inner.line_count() + self.first_line,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_around_the_label_and_keep_their_columns() {
        let src = format!("a = 1\nb = {}é x\nc = 2\n", "1 + ".repeat(50_000));
        let index = LineIndex::new(&src);
        let at = src.find('x').unwrap_or(0);
        let span = Span::new(at, at + 1);
        let snip = Snippet::new("f".into(), &src, &index, &[span]);
        assert!(snip.text.len() < 3 * WINDOW, "{}", snip.text.len());
        assert!(snip.text.starts_with("a = 1\n..."));
        let mapped = snip.map_span(span);
        assert_eq!(
            snip.text.get(mapped.offset()..mapped.offset() + 1),
            Some("x")
        );
        assert_eq!(
            snip.column(mapped.offset()),
            Some(at - src.find('b').unwrap_or(0))
        );
    }

    #[test]
    fn long_labels_show_their_first_line() {
        let src = "x\n".repeat(100);
        let index = LineIndex::new(&src);
        let s = clamp_span(&src, &index, Span::new(0, src.len()));
        assert_eq!(s, Span::new(0, 1));
    }
}
