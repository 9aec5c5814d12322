//! Custom template strings with `{hole}`s: a hole names a role (`text`, `pair`, `prompt`,
//! `input`, `completion`) or a field path of the row. `{{` and `}}` are literal braces.

use super::Rendered;
use crate::runtime::data::error::{DataError, MappingSpan, PeftSpan};
use crate::runtime::data::mapping::{keys_of, lookup, MappedRow};
use crate::runtime::data::source::SourceRow;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Hole(String),
}

/// A parsed custom template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomTemplate {
    pieces: Vec<Piece>,
}

impl CustomTemplate {
    /// Parse `{hole}`s; an unclosed or empty hole is an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    let name = name.trim().to_owned();
                    if !closed {
                        return Err(format!("template hole `{{{name}` is not closed"));
                    }
                    if name.is_empty() {
                        return Err("template has an empty hole `{}`".into());
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(Piece::Hole(name));
                }
                '}' => return Err("template has a `}` without `{` (write `}}` for a brace)".into()),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(CustomTemplate { pieces })
    }

    /// The names of the holes, in order.
    pub fn holes(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Hole(h) => Some(h.as_str()),
                Piece::Lit(_) => None,
            })
            .collect()
    }

    /// Render a row; for instruction rows, loss runs from the `{completion}` hole to the end.
    pub fn render(
        &self,
        mapped: &MappedRow,
        row: &SourceRow,
        span: Option<&MappingSpan>,
    ) -> Result<Rendered, DataError> {
        let mut text = String::new();
        let mut completion_start = None;
        for p in &self.pieces {
            match p {
                Piece::Lit(l) => text.push_str(l),
                Piece::Hole(h) => {
                    if h == "completion" && completion_start.is_none() {
                        completion_start = Some(text.len());
                    }
                    match role(mapped, h).or_else(|| field(row, h)) {
                        Some(v) => text.push_str(&v),
                        None => {
                            let s = PeftSpan::from_mapping(span);
                            return Err(DataError::UnknownHole {
                                at: row.at.clone(),
                                hole: h.clone(),
                                keys: keys_of(&row.value),
                                src: s.src,
                                span: s.span,
                            });
                        }
                    }
                }
            }
        }
        let (class_label, pair, append_eos) = match mapped {
            MappedRow::Classification { label, pair, .. } => (Some(*label), pair.clone(), false),
            _ => (None, None, true),
        };
        let trained = match mapped {
            MappedRow::Instruction { .. } => {
                completion_start.map(|s| std::iter::once(s..text.len()).collect())
            }
            _ => None,
        };
        Ok(Rendered {
            text,
            pair,
            trained,
            class_label,
            add_special_tokens: true,
            append_eos,
        })
    }
}

fn role(m: &MappedRow, hole: &str) -> Option<String> {
    match (m, hole) {
        (MappedRow::Text { text }, "text") => Some(text.clone()),
        (MappedRow::Classification { text, .. }, "text") => Some(text.clone()),
        (MappedRow::Classification { pair, .. }, "pair") => Some(pair.clone().unwrap_or_default()),
        (MappedRow::Instruction { prompt, .. }, "prompt") => Some(prompt.clone()),
        (MappedRow::Instruction { input, .. }, "input") => Some(input.clone().unwrap_or_default()),
        (MappedRow::Instruction { completion, .. }, "completion") => Some(completion.clone()),
        _ => None,
    }
}

fn field(row: &SourceRow, path: &str) -> Option<String> {
    lookup(&row.value, path).map(|v| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}
