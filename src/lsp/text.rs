//! Positions as LSP counts them (line, UTF-16 code units) to and from byte offsets, URIs to and
//! from paths, and applying content changes. Pure text work; knows nothing about `.peft`.

use crate::syntax::Span;
use lsp_types::{Position, Range, TextDocumentContentChangeEvent, Uri};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Line starts of one text, for position conversion, and which lines are all ASCII (there a
/// UTF-16 column is the byte column: converting is O(1) however long the line).
#[derive(Debug, Clone, Default)]
pub struct LineMap {
    starts: Vec<usize>,
    ascii: Vec<bool>,
}

impl LineMap {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let ascii = starts
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let e = starts.get(i + 1).copied().unwrap_or(text.len());
                text.as_bytes().get(s..e).is_some_and(<[u8]>::is_ascii)
            })
            .collect();
        LineMap { starts, ascii }
    }

    fn is_ascii(&self, line: usize) -> bool {
        self.ascii.get(line).copied().unwrap_or(false)
    }

    /// The LSP position of byte `offset` (clamped to the text, moved back to a char boundary).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        if self.is_ascii(line) {
            return Position {
                line: line as u32,
                character: offset.saturating_sub(start) as u32,
            };
        }
        let col: usize = text
            .get(start..offset)
            .unwrap_or("")
            .chars()
            .map(char::len_utf16)
            .sum();
        Position {
            line: line as u32,
            character: col as u32,
        }
    }

    /// The byte offset of an LSP position (clamped to the end of its line / of the text).
    pub fn offset(&self, text: &str, pos: Position) -> usize {
        let Some(&start) = self.starts.get(pos.line as usize) else {
            return text.len();
        };
        if self.is_ascii(pos.line as usize) {
            // The line's end, before its `\n`.
            let end = self
                .starts
                .get(pos.line as usize + 1)
                .map_or(text.len(), |n| n - 1);
            return (start + pos.character as usize).min(end.max(start));
        }
        let mut units = 0usize;
        for (i, c) in text.get(start..).unwrap_or("").char_indices() {
            if c == '\n' || units >= pos.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        text.len()
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range {
            start: self.position(text, span.start as usize),
            end: self.position(text, span.end as usize),
        }
    }
}

/// Applies one content change (a whole-text replacement when it has no range).
pub fn apply_change(text: &mut String, change: &TextDocumentContentChangeEvent) {
    match change.range {
        None => *text = change.text.clone(),
        Some(r) => {
            let map = LineMap::new(text);
            let a = map.offset(text, r.start);
            let b = map.offset(text, r.end).max(a);
            text.replace_range(a..b, &change.text);
        }
    }
}

/// The filesystem path of a `file:` URI; other schemes map to a path under `/untitled`.
pub fn uri_to_path(uri: &Uri) -> PathBuf {
    let s = uri.as_str();
    match s.strip_prefix("file://") {
        Some(rest) => PathBuf::from(percent_decode(rest)),
        None => {
            let name: String = s
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            PathBuf::from("/untitled").join(name)
        }
    }
}

/// A `file:` URI for an absolute path.
pub fn path_to_uri(path: &Path) -> Option<Uri> {
    let mut s = String::from("file://");
    for b in path.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::from_str(&s).ok()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'%' {
            if let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf16_positions_round_trip() {
        let text = "a = \"é😀\" // x\nb";
        let map = LineMap::new(text);
        let off = text.find("//").unwrap_or(0);
        let pos = map.position(text, off);
        assert_eq!(
            pos,
            Position {
                line: 0,
                character: 10
            }
        );
        assert_eq!(map.offset(text, pos), off);
        assert_eq!(
            map.offset(
                text,
                Position {
                    line: 1,
                    character: 0
                }
            ),
            text.len() - 1
        );
    }

    #[test]
    fn uris_round_trip_with_spaces() {
        let p = Path::new("/tmp/my dir/a.peft");
        let uri = path_to_uri(p).map(|u| u.as_str().to_string());
        assert_eq!(uri.as_deref(), Some("file:///tmp/my%20dir/a.peft"));
        let back = uri_to_path(
            &Uri::from_str("file:///tmp/my%20dir/a.peft")
                .unwrap_or_else(|_| Uri::from_str("file:///").unwrap()),
        );
        assert_eq!(back, p);
    }
}
