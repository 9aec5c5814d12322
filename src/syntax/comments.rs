//! Collects `//` and `///` comments (outside strings) so they survive into the tree, and finds
//! the doc comment directly above a node. Must not interpret anything else.

use super::ast::Comment;
use super::span::Span;

/// Every comment of `source` in order.
pub fn collect(source: &str) -> Vec<Comment> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' | b'\n' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            let end = source[i..]
                .find('\n')
                .map(|n| i + n)
                .unwrap_or(source.len());
            let text = &source[i..end];
            let doc = text.starts_with("///") && !text.starts_with("////");
            let body = if doc { &text[3..] } else { &text[2..] };
            out.push(Comment {
                span: Span::new(i, end),
                text: body.trim_end_matches('\r').to_string(),
                doc,
            });
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

/// The `///` lines directly above `start` (only whitespace between them), joined by newlines.
pub fn doc_above(source: &str, comments: &[Comment], start: u32) -> Option<String> {
    let idx = comments.partition_point(|c| c.span.end <= start);
    let mut lines = Vec::new();
    let mut edge = start as usize;
    for c in comments[..idx].iter().rev() {
        let between = source.get(c.span.end as usize..edge).unwrap_or("x");
        if !c.doc || !between.trim().is_empty() || between.matches('\n').count() > 1 {
            break;
        }
        lines.push(c.text.strip_prefix(' ').unwrap_or(&c.text).to_string());
        edge = c.span.start as usize;
    }
    if lines.is_empty() {
        return None;
    }
    lines.reverse();
    Some(lines.join("\n"))
}
