//! What the cursor is in, read from the text before it (robust while the user types and the
//! file does not parse): top level, a `use std.` path, a declaration's head, a block's field
//! position, a field's value, a `targets` or `metrics` list, a gate. Also the word or dotted
//! path under the cursor. Pure text scanning; no checking.

use crate::syntax::ast::DeclKind;

/// The declaration whose body the cursor is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enclosing {
    pub kind: Option<DeclKind>,
    pub name: Option<String>,
    /// The head's first word (`lora`, `hf`, another declaration).
    pub head: Option<String>,
}

/// Where completion is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ctx {
    /// At the start of a top-level line.
    TopLevel,
    /// `use std.` (module `None`) or `use std.recipes.{` (module `Some("recipes")`).
    UseStd {
        module: Option<String>,
    },
    /// `KIND NAME = |`.
    Head {
        kind: DeclKind,
    },
    /// At the start of an entry of a block; `record` is `(key, base)` for a nested record.
    Field {
        decl: Enclosing,
        record: Option<(String, Option<String>)>,
    },
    /// After `key =` (or inside a list or call that is the value of `key`).
    Value {
        decl: Enclosing,
        key: String,
    },
    /// Inside `targets = [ .. ]`.
    Targets {
        decl: Enclosing,
    },
    /// Inside `metrics = [ .. ]`.
    Metrics {
        decl: Enclosing,
    },
    /// After `gate`.
    Gate {
        decl: Enclosing,
    },
    None,
}

struct Level {
    open: u8,
    pos: usize,
    entry_start: usize,
}

/// The completion context at byte `offset` of `text`.
pub fn at(text: &str, offset: usize) -> Ctx {
    let offset = offset.min(text.len());
    let bytes = text.as_bytes();
    let mut stack: Vec<Level> = Vec::new();
    let mut top_entry = 0usize;
    let mut i = 0;
    while i < offset {
        let b = bytes.get(i).copied().unwrap_or(0);
        match b {
            b'"' => {
                i += 1;
                while i < offset {
                    match bytes.get(i) {
                        Some(b'\\') => i += 1,
                        Some(b'"') | Some(b'\n') => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < offset && bytes.get(i) != Some(&b'\n') {
                    i += 1;
                }
                continue;
            }
            b'{' | b'[' | b'(' => stack.push(Level {
                open: b,
                pos: i,
                entry_start: i + 1,
            }),
            b'}' | b']' | b')' => {
                stack.pop();
            }
            b',' | b'\n' => match stack.last_mut() {
                Some(l) => l.entry_start = i + 1,
                None => top_entry = i + 1,
            },
            _ => {}
        }
        i += 1;
    }
    let entry_start = stack.last().map(|l| l.entry_start).unwrap_or(top_entry);
    let seg = text.get(entry_start..offset).unwrap_or("").trim_start();
    let Some(inner) = stack.last() else {
        return top_level(seg);
    };
    let outer_pos = stack.first().map(|l| l.pos).unwrap_or(0);
    let header = line_before(text, outer_pos);
    if header.trim_start().starts_with("use ") {
        let module = header
            .trim()
            .trim_start_matches("use")
            .trim()
            .trim_start_matches("std.")
            .trim_end_matches('.')
            .to_string();
        return Ctx::UseStd {
            module: Some(module),
        };
    }
    let decl = enclosing(header);
    let before_inner = line_before(text, inner.pos);
    let (inner_key, inner_base) = key_and_base(before_inner);
    match inner.open {
        b'[' => match inner_key.as_deref() {
            Some("targets") => Ctx::Targets { decl },
            Some("metrics") => Ctx::Metrics { decl },
            Some(k) => Ctx::Value {
                decl,
                key: k.to_string(),
            },
            None => Ctx::None,
        },
        b'(' => Ctx::Value {
            decl,
            key: inner_key.unwrap_or_default(),
        },
        _ => {
            if seg.starts_with("gate ") {
                return Ctx::Gate { decl };
            }
            if let Some(eq) = seg.find(['=', ':']) {
                let key = seg.get(..eq).unwrap_or("").trim().to_string();
                return Ctx::Value { decl, key };
            }
            if seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                let record = (stack.len() > 1).then(|| (inner_key.unwrap_or_default(), inner_base));
                return Ctx::Field { decl, record };
            }
            Ctx::None
        }
    }
}

fn top_level(seg: &str) -> Ctx {
    if let Some(rest) = seg.strip_prefix("use ") {
        let rest = rest.trim_start();
        if let Some(path) = rest.strip_prefix("std.") {
            let parts: Vec<&str> = path.split('.').collect();
            return Ctx::UseStd {
                module: (parts.len() > 1).then(|| parts.first().copied().unwrap_or("").to_string()),
            };
        }
        return Ctx::None;
    }
    let mut words = seg.split_whitespace();
    if let (Some(kw), Some(_name)) = (words.next(), words.next()) {
        if let Some(kind) = DeclKind::from_keyword(kw) {
            if seg.contains('=') {
                return Ctx::Head { kind };
            }
        }
        return Ctx::None;
    }
    if seg.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ctx::TopLevel;
    }
    Ctx::None
}

/// The text of the line up to `pos`.
fn line_before(text: &str, pos: usize) -> &str {
    let before = text.get(..pos).unwrap_or("");
    let start = before.rfind('\n').map(|n| n + 1).unwrap_or(0);
    before.get(start..).unwrap_or("")
}

/// `KIND NAME = HEAD ..` read from a header line.
fn enclosing(header: &str) -> Enclosing {
    let mut words = header.split_whitespace();
    let kind = words.next().and_then(DeclKind::from_keyword);
    let name = words.next().map(|w| w.trim_end_matches('=').to_string());
    let head = header.split_once('=').and_then(|(_, h)| first_word(h));
    Enclosing { kind, name, head }
}

fn first_word(s: &str) -> Option<String> {
    let w: String = s
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!w.is_empty()).then_some(w)
}

/// For `key = base {` (or `key = [`): the key before `=` and the word right before the bracket.
fn key_and_base(before: &str) -> (Option<String>, Option<String>) {
    let trimmed = before.trim_end();
    let base: String = trimmed
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let key = trimmed.rsplit_once(['=', ':']).map(|(k, _)| {
        let k = k.trim_end();
        let rev: String = k
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .collect();
        rev.chars().rev().collect::<String>()
    });
    (
        key.filter(|k| !k.is_empty()),
        (!base.is_empty()).then_some(base),
    )
}

/// The dotted path under the cursor and the index of the segment the cursor is on, with the
/// byte range of that segment.
pub fn path_at(text: &str, offset: usize) -> Option<(Vec<String>, usize, std::ops::Range<usize>)> {
    let bytes = text.as_bytes();
    let is_word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'.';
    let mut start = offset.min(text.len());
    while start > 0 && bytes.get(start - 1).copied().is_some_and(is_word) {
        start -= 1;
    }
    let mut end = offset.min(text.len());
    while bytes.get(end).copied().is_some_and(is_word) {
        end += 1;
    }
    let path = text.get(start..end)?;
    if path.is_empty() {
        return None;
    }
    let mut seg_start = start;
    let mut segs = Vec::new();
    let mut index = 0;
    let mut range = start..end;
    for s in path.split('.') {
        let r = seg_start..seg_start + s.len();
        if offset >= r.start && offset <= r.end {
            index = segs.len();
            range = r.clone();
        }
        segs.push(s.to_string());
        seg_start = r.end + 1;
    }
    Some((segs, index, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(src: &str) -> Ctx {
        let at_ = src.find('|').unwrap_or(src.len());
        let text = src.replacen('|', "", 1);
        at(&text, at_)
    }

    #[test]
    fn contexts() {
        assert_eq!(ctx("ada|"), Ctx::TopLevel);
        assert_eq!(ctx("use std.|"), Ctx::UseStd { module: None });
        assert_eq!(
            ctx("use std.recipes.{lo|"),
            Ctx::UseStd {
                module: Some("recipes".into())
            }
        );
        assert_eq!(
            ctx("adapter a = |"),
            Ctx::Head {
                kind: DeclKind::Adapter
            }
        );
        let lora = Enclosing {
            kind: Some(DeclKind::Adapter),
            name: Some("a".into()),
            head: Some("lora".into()),
        };
        assert_eq!(
            ctx("adapter a = lora {\n  r = 8\n  |\n}"),
            Ctx::Field {
                decl: lora.clone(),
                record: None
            }
        );
        assert_eq!(
            ctx("adapter a = lora {\n  targets = [q_proj, |]\n}"),
            Ctx::Targets { decl: lora.clone() }
        );
        assert_eq!(
            ctx("adapter a = lora {\n  init = |\n}"),
            Ctx::Value {
                decl: lora,
                key: "init".into()
            }
        );
        let t = Enclosing {
            kind: Some(DeclKind::Train),
            name: Some("t".into()),
            head: None,
        };
        assert_eq!(
            ctx("train t {\n  schedule = cosine { w| }\n}"),
            Ctx::Field {
                decl: t,
                record: Some(("schedule".into(), Some("cosine".into())))
            }
        );
        let e = Enclosing {
            kind: Some(DeclKind::Eval),
            name: Some("e".into()),
            head: None,
        };
        assert_eq!(ctx("eval e {\n  gate acc|\n}"), Ctx::Gate { decl: e });
    }

    #[test]
    fn paths() {
        let (segs, i, r) = path_at("data = reviews.train\n", 17).unwrap_or_default();
        assert_eq!(
            (segs, i, r),
            (vec!["reviews".to_string(), "train".to_string()], 1, 15..20)
        );
    }
}
