//! Field mapping: pick the fields of a source row that feed each role ([`FieldMapping`]) and
//! check their types. Produces a [`MappedRow`]; knows nothing of templates or tokenizers.

use serde_json::Value;

use super::error::{DataError, MappingSpan, PeftSpan, RowLocation};
use super::source::SourceRow;
use super::spec::FieldMapping;

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// The roles of one row, typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MappedRow {
    Text {
        text: String,
    },
    Classification {
        text: String,
        pair: Option<String>,
        /// Index into the declared labels.
        label: u32,
    },
    Instruction {
        prompt: String,
        input: Option<String>,
        completion: String,
    },
    Chat {
        messages: Vec<Message>,
    },
}

/// Find `path` in `v`: the key as written first, then dotted segments (array indices allowed).
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = v.as_object().and_then(|o| o.get(path)) {
        return Some(found);
    }
    let mut cur = v;
    for seg in path.split('.') {
        cur = match cur {
            Value::Object(o) => o.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The top-level keys of a row, for "the row has: ..." hints.
pub fn keys_of(v: &Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Describes a JSON value for a wrong-type message: its kind and a short preview.
pub fn describe(v: &Value) -> String {
    let kind = match v {
        Value::Null => return "null".into(),
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    let mut preview = v.to_string();
    if preview.chars().count() > 40 {
        preview = preview.chars().take(37).collect::<String>() + "...";
    }
    format!("{kind} ({preview})")
}

struct Ctx<'a> {
    row: &'a SourceRow,
    span: Option<&'a MappingSpan>,
}

impl Ctx<'_> {
    fn at(&self) -> RowLocation {
        self.row.at.clone()
    }

    fn missing(&self, field: &str) -> DataError {
        let s = PeftSpan::from_mapping(self.span);
        DataError::MissingField {
            at: self.at(),
            field: field.to_owned(),
            keys: keys_of(&self.row.value),
            src: s.src,
            span: s.span,
        }
    }

    fn wrong(&self, field: &str, expected: &'static str, found: &Value) -> DataError {
        let s = PeftSpan::from_mapping(self.span);
        DataError::WrongType {
            at: self.at(),
            field: field.to_owned(),
            expected,
            found: describe(found),
            src: s.src,
            span: s.span,
        }
    }

    fn string(&self, field: &str) -> Result<String, DataError> {
        match lookup(&self.row.value, field) {
            None => Err(self.missing(field)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.wrong(field, "a string", other)),
        }
    }

    /// An optional string: absent, null and "" are `None`.
    fn opt_string(&self, field: Option<&str>) -> Result<Option<String>, DataError> {
        let Some(field) = field else { return Ok(None) };
        match lookup(&self.row.value, field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.wrong(field, "a string", other)),
        }
    }

    fn label(&self, field: &str, labels: &[String]) -> Result<u32, DataError> {
        let value = lookup(&self.row.value, field).ok_or_else(|| self.missing(field))?;
        let (name, index) = match value {
            Value::String(s) => (s.clone(), s.trim().parse::<u64>().ok()),
            Value::Number(n) if n.is_u64() || n.is_i64() => (n.to_string(), n.as_u64()),
            other => return Err(self.wrong(field, "a string or an integer", other)),
        };
        if let Some(i) = labels.iter().position(|l| *l == name) {
            return Ok(i as u32);
        }
        if let Some(i) = index.filter(|&i| (i as usize) < labels.len()) {
            return Ok(i as u32);
        }
        let s = PeftSpan::from_mapping(self.span);
        Err(DataError::UnknownLabel {
            at: self.at(),
            field: field.to_owned(),
            value: value.to_string(),
            known: labels.to_vec(),
            src: s.src,
            span: s.span,
        })
    }

    fn messages(&self, field: &str, role: &str, content: &str) -> Result<Vec<Message>, DataError> {
        let value = lookup(&self.row.value, field).ok_or_else(|| self.missing(field))?;
        let Value::Array(items) = value else {
            return Err(self.wrong(field, "a list of messages", value));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let get = |key: &str| -> Result<String, DataError> {
                    let path = format!("{field}.{i}.{key}");
                    match m.get(key) {
                        None => Err(self.missing(&path)),
                        Some(Value::String(s)) => Ok(s.clone()),
                        Some(other) => Err(self.wrong(&path, "a string", other)),
                    }
                };
                if !m.is_object() {
                    return Err(self.wrong(&format!("{field}.{i}"), "a message object", m));
                }
                Ok(Message {
                    role: get(role)?,
                    content: get(content)?,
                })
            })
            .collect()
    }
}

/// Map one source row onto the roles of `mapping`.
pub fn map_row(
    mapping: &FieldMapping,
    row: &SourceRow,
    span: Option<&MappingSpan>,
) -> Result<MappedRow, DataError> {
    let c = Ctx { row, span };
    Ok(match mapping {
        FieldMapping::Text { text } => MappedRow::Text {
            text: c.string(text)?,
        },
        FieldMapping::Classification {
            text,
            text_pair,
            label,
            labels,
        } => MappedRow::Classification {
            text: c.string(text)?,
            pair: c.opt_string(text_pair.as_deref())?,
            label: c.label(label, labels)?,
        },
        FieldMapping::Instruction {
            prompt,
            input,
            completion,
            ..
        } => MappedRow::Instruction {
            prompt: c.string(prompt)?,
            input: c.opt_string(input.as_deref())?,
            completion: c.string(completion)?,
        },
        FieldMapping::Chat {
            messages,
            role_key,
            content_key,
        } => MappedRow::Chat {
            messages: c.messages(messages, role_key, content_key)?,
        },
    })
}
