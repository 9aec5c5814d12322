//! Error recovery: the file is split into top-level items at lines that start a declaration,
//! each item is parsed alone, and inside an item a broken line is blanked out and the item
//! parsed again, so one run reports every error. Must not build AST nodes itself.

use super::ast::Item;
use super::build::{Builder, MAX_DEPTH};
use super::diagnostic::{Code, Diagnostic};
use super::errors::syntax_error;
use super::grammar::{PeftParser, Rule};
use super::span::{floor_char_boundary, FileId, Span};
use pest::Parser;

const STARTERS: &[&str] = &[
    "use", "export", "model", "quant", "adapter", "dataset", "train", "eval", "merge", "device",
    "let",
];
const MAX_RETRIES: usize = 24;

/// Byte ranges of the top-level items of `source`, covering it without gaps.
pub fn split(source: &str) -> Vec<(usize, usize)> {
    let mut starts = vec![0usize];
    let mut depth: i64 = 0;
    let mut offset = 0usize;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if offset > 0 && starts_item(trimmed) && (indent == 0 || depth <= 0) {
            starts.push(offset);
            depth = 0;
        }
        depth += brace_delta(line);
        offset += line.len();
    }
    let mut out = Vec::with_capacity(starts.len());
    for (i, s) in starts.iter().enumerate() {
        let e = starts.get(i + 1).copied().unwrap_or(source.len());
        out.push((*s, e));
    }
    out
}

/// A line whose first word is a declaration keyword followed by a name or a string.
fn starts_item(line: &str) -> bool {
    let word_len = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(word_len);
    if !STARTERS.contains(&word) {
        return false;
    }
    let rest_trim = rest.trim_start();
    rest.len() > rest_trim.len()
        && rest_trim
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '"')
}

/// Opening minus closing brackets outside strings and comments.
fn brace_delta(line: &str) -> i64 {
    let mut d = 0;
    let mut in_str = false;
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b.get(i).copied().unwrap_or(0);
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'/' if b.get(i + 1) == Some(&b'/') => break,
                b'{' | b'[' | b'(' => d += 1,
                b'}' | b']' | b')' => d -= 1,
                _ => {}
            }
        }
        i += 1;
    }
    d
}

/// The offset of the first bracket (`(`, `[`, `{`, outside strings and comments) that opens
/// level [`MAX_DEPTH`] + 1, if any.
fn too_deep_brackets(text: &str) -> Option<usize> {
    let b = text.as_bytes();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' | b'\n' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'/' if b.get(i + 1) == Some(&b'/') => {
                    while b.get(i).is_some_and(|&c| c != b'\n') {
                        i += 1;
                    }
                    continue;
                }
                b'{' | b'[' | b'(' => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some(i);
                    }
                }
                b'}' | b']' | b')' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// E0005 at `span`.
fn nesting_error(file: FileId, span: Span) -> Diagnostic {
    Diagnostic::new(
        Code::NestingTooDeep,
        file,
        span,
        format!("this value nests more than {MAX_DEPTH} levels deep"),
    )
    .with_label("too deep from here on")
    .with_help("brackets, blocks, operators in one chain and signs (`- -x`) each add a level; write the value flatter")
}

/// Spans of strings that run to the end of their line.
pub fn unterminated_strings(source: &str) -> Vec<Span> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let b = line.as_bytes();
        let mut i = 0;
        let mut open: Option<usize> = None;
        while i < b.len() {
            let c = b.get(i).copied().unwrap_or(0);
            match (open, c) {
                (Some(_), b'\\') => i += 1,
                (Some(_), b'"') => open = None,
                (None, b'"') => open = Some(i),
                (None, b'/') if b.get(i + 1) == Some(&b'/') => break,
                _ => {}
            }
            i += 1;
        }
        if let Some(o) = open {
            let end = line.trim_end_matches(['\n', '\r']).len();
            out.push(Span::new(offset + o, offset + end.max(o + 1)));
        }
        offset += line.len();
    }
    out
}

/// Parses one chunk `source[start..end]` with recovery; pushes diagnostics and returns the item.
pub fn parse_chunk(
    source: &str,
    start: usize,
    end: usize,
    file: FileId,
    bad_strings: &[Span],
    diags: &mut Vec<Diagnostic>,
) -> Option<Item> {
    let original = source.get(start..end)?;
    let mut text = original.to_string();
    let content_end = start + original.trim_end().len();
    if original.trim().is_empty() {
        return None;
    }
    // Lines with an unterminated string are blanked up front (their E0002 is already reported);
    // when that line is the declaration's header, the whole item is given up.
    let header_len = text.find('\n').unwrap_or(text.len());
    for s in bad_strings {
        if (s.start as usize) >= start && (s.start as usize) < end {
            if (s.start as usize) - start < header_len {
                return Some(Item::Error(Span::new(start, content_end)));
            }
            blank_line(&mut text, s.start as usize - start);
        }
    }
    let first = diags.len();
    // The parser recurses once per bracket: refuse a nesting it could not return from.
    if let Some(at) = too_deep_brackets(&text) {
        diags.push(nesting_error(file, Span::new(start + at, start + at + 1)));
        return Some(Item::Error(Span::new(start, content_end)));
    }
    for _ in 0..MAX_RETRIES {
        match parse_text(&text) {
            Ok(mut pairs) => {
                let builder = Builder::new(start);
                let chunk = pairs.next()?;
                let item = chunk.into_inner().find_map(|p| builder.item(p));
                if let Some(span) = builder.too_deep() {
                    drop(item);
                    // Point at the value's first char only: the value may be very long.
                    let first = source
                        .get(span.start as usize..)
                        .and_then(|r| r.chars().next())
                        .map_or(0, char::len_utf8);
                    let at = span.start as usize;
                    diags.push(nesting_error(file, Span::new(at, at + first)));
                    return Some(Item::Error(Span::new(start, content_end)));
                }
                return item;
            }
            Err(e) => {
                let (rules, tokens) = attempts(&e);
                let local = match e.location {
                    pest::error::InputLocation::Pos(p) => p,
                    pest::error::InputLocation::Span((p, _)) => p,
                };
                let pos = start + local;
                let d = syntax_error(source, content_end, pos, &rules, &tokens, file);
                let culprit = match super::errors::dangling_assign(&text, local) {
                    Some(eq) => eq.saturating_sub(1),
                    None => culprit_line(&text, local),
                };
                let on_bad_string = bad_strings
                    .iter()
                    .any(|s| same_line(source, s.start as usize, start + culprit));
                // A retry after blanking a line can fail at the same place: say it once.
                let repeated = diags[first..]
                    .iter()
                    .any(|x| x.code == d.code && x.loc == d.loc);
                if !on_bad_string && !repeated {
                    diags.push(d);
                }
                // A stray `;` is dropped by itself, keeping the rest of its line.
                if text.as_bytes().get(local) == Some(&b';') {
                    text.replace_range(local..local + 1, " ");
                    continue;
                }
                let header_end = text.find('\n').unwrap_or(text.len());
                let culprit = floor_char_boundary(&text, culprit);
                let line_start = text[..culprit].rfind('\n').map(|i| i + 1).unwrap_or(0);
                let line_end = text[line_start..]
                    .find('\n')
                    .map(|i| line_start + i)
                    .unwrap_or(text.len());
                let line = &text[line_start..line_end];
                if culprit <= header_end
                    || pos >= content_end
                    || brace_delta(line) != 0
                    || line.trim().is_empty()
                {
                    return Some(Item::Error(Span::new(start, content_end)));
                }
                blank_line(&mut text, culprit);
            }
        }
    }
    Some(Item::Error(Span::new(start, content_end)))
}

/// Parses fast (pest's error detail off); on failure parses again with detail on, so the error
/// can say which tokens were expected. The detail switch is global: the mutex makes sure that
/// every parse which turned it on still sees it on (a concurrent fast parse merely runs slower).
fn parse_text(text: &str) -> Result<pest::iterators::Pairs<'_, Rule>, pest::error::Error<Rule>> {
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    match PeftParser::parse(Rule::chunk, text) {
        Ok(p) => Ok(p),
        Err(_) => {
            let guard = DETAIL
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pest::set_error_detail(true);
            let r = PeftParser::parse(Rule::chunk, text);
            pest::set_error_detail(false);
            drop(guard);
            r
        }
    }
}

fn attempts(e: &pest::error::Error<Rule>) -> (Vec<Rule>, Vec<String>) {
    let mut rules = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let mut tokens = Vec::new();
    if let Some(a) = e.parse_attempts() {
        for st in a.call_stacks() {
            if let Some(r) = st.deepest.get_rule() {
                rules.push(*r);
            }
            if let Some(p) = st.parent {
                if st.deepest.get_rule().is_none() {
                    rules.push(p);
                }
            }
        }
        tokens = a
            .expected_tokens()
            .into_iter()
            .map(|t| t.to_string())
            .collect();
    }
    (rules, tokens)
}

/// The offset whose line is to blame: the error's own line, or the previous token's line when
/// the error sits at the start of a line (a value missing at the end of the line above).
fn culprit_line(text: &str, pos: usize) -> usize {
    let pos = floor_char_boundary(text, pos);
    let line_start = text[..pos].rfind('\n').map(|i| i + 1).unwrap_or(0);
    if text[line_start..pos].trim().is_empty() {
        let before = text[..line_start].trim_end();
        // The start of the last char above (not `len - 1`: that char may be several bytes).
        if let Some((last, _)) = before.char_indices().next_back() {
            return last;
        }
    }
    pos
}

fn same_line(source: &str, a: usize, b: usize) -> bool {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    source.get(lo..hi).is_some_and(|s| !s.contains('\n'))
}

/// Replaces the line containing `at` with spaces (keeping every byte offset).
fn blank_line(text: &mut String, at: usize) {
    let at = floor_char_boundary(text, at);
    let start = text[..at].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let blank = " ".repeat(end - start);
    text.replace_range(start..end, &blank);
}

/// E0002 diagnostics for `spans`.
pub fn string_errors(spans: &[Span], file: FileId) -> Vec<Diagnostic> {
    spans
        .iter()
        .map(|s| {
            Diagnostic::new(
                Code::UnterminatedString,
                file,
                *s,
                "this string is never closed",
            )
            .with_label("string starts here")
            .with_help(
                "close it with `\"` on the same line; write a line break inside a string as `\\n`",
            )
        })
        .collect()
}
