//! The tokenizer's own chat template (Jinja from `tokenizer_config.json`), rendered with
//! minijinja the way transformers' `apply_chat_template` renders it: `trim_blocks` and
//! `lstrip_blocks` on, `raise_exception`, a Python-compatible `tojson`, the special tokens
//! (`bos_token`, `eos_token`, ...) as variables, and the common Python string and dict methods
//! (`strip`, `startswith`, `items`, ...) that HF templates call.
//!
//! Loss masking for assistant turns: the text of turn `i` is what rendering turns `..=i` adds
//! to rendering turns `..i` with the generation prompt; when a template is not prefix-stable,
//! the assistant content is searched for in order instead.

use std::collections::BTreeMap;
use std::ops::Range;

use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error, ErrorKind, State};

use super::Rendered;
use crate::runtime::data::error::DataError;
use crate::runtime::data::mapping::Message;

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    special_tokens: BTreeMap<String, String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

fn template_error(e: &Error) -> DataError {
    let mut message = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        message.push_str(": ");
        message.push_str(&s.to_string());
        cur = s.source();
    }
    DataError::ChatTemplate { message }
}

impl ChatTemplate {
    /// Compile `source`; `special_tokens` are the `*_token` entries of the tokenizer config.
    pub fn new(source: &str, special_tokens: BTreeMap<String, String>) -> Result<Self, DataError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.set_unknown_method_callback(pycompat);
        env.add_template_owned("chat", source.to_owned())
            .map_err(|e| template_error(&e))?;
        Ok(ChatTemplate {
            env,
            special_tokens,
        })
    }

    /// Render `messages` as transformers' `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=...)` does.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, DataError> {
        let tmpl = self
            .env
            .get_template("chat")
            .map_err(|e| template_error(&e))?;
        let mut ctx: BTreeMap<String, Value> = self
            .special_tokens
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        ctx.insert("messages".into(), Value::from_serialize(messages));
        ctx.insert(
            "add_generation_prompt".into(),
            Value::from(add_generation_prompt),
        );
        tmpl.render(ctx).map_err(|e| template_error(&e))
    }

    /// Render all turns; loss ranges cover each assistant turn.
    pub(super) fn render_masked(&self, messages: &[Message]) -> Result<Rendered, DataError> {
        let text = self.render(messages, false)?;
        let mut trained: Vec<Range<usize>> = Vec::new();
        let mut search_from = 0;
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let prefix = self.render(&messages[..i], true)?;
            let upto = self.render(&messages[..=i], false)?;
            let range = if upto.starts_with(&prefix) && text.starts_with(&upto) {
                prefix.len()..upto.len()
            } else {
                let Some(pos) = text.get(search_from..).and_then(|t| t.find(&m.content)) else {
                    return Err(DataError::ChatTemplate {
                        message: format!(
                            "cannot find assistant turn {} in the rendered text",
                            i + 1
                        ),
                    });
                };
                let start = search_from + pos;
                start..start + m.content.len()
            };
            search_from = range.end;
            if !range.is_empty() {
                trained.push(range);
            }
        }
        Ok(Rendered {
            text,
            pair: None,
            trained: Some(trained),
            class_label: None,
            add_special_tokens: false,
            append_eos: false,
        })
    }
}

/// Python's `json.dumps(x, ensure_ascii=False)` with its default separators, plus `indent`.
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    py_dump(&json, indent, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

fn py_dump(v: &serde_json::Value, indent: Option<usize>, depth: usize, out: &mut String) {
    use serde_json::Value as J;
    let newline = |out: &mut String, d: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * d));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(a) if !a.is_empty() => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                py_dump(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(o) if !o.is_empty() => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push_str(": ");
                py_dump(x, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// `strftime_now(fmt)`: the current UTC date for `%d`, `%m`, `%Y`, `%b`, `%B`.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let name = MONTHS
        .get((m as usize).saturating_sub(1))
        .copied()
        .unwrap_or("");
    fmt.replace("%d", &format!("{d:02}"))
        .replace("%m", &format!("{m:02}"))
        .replace("%Y", &y.to_string())
        .replace("%B", name)
        .replace("%b", name.get(..3).unwrap_or(""))
}

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Python methods on strings and dicts that HF chat templates call.
fn pycompat(_state: &State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    let unknown = || {
        Error::new(
            ErrorKind::UnknownMethod,
            format!("{} has no method named {method}", value.kind()),
        )
    };
    let arg_str = |i: usize| args.get(i).and_then(|a| a.as_str()).map(str::to_owned);
    if let Some(s) = value.as_str() {
        let chars: Option<Vec<char>> = arg_str(0).map(|c| c.chars().collect());
        let out = match method {
            "strip" => match &chars {
                Some(c) => s.trim_matches(c.as_slice()).to_owned(),
                None => s.trim().to_owned(),
            },
            "lstrip" => match &chars {
                Some(c) => s.trim_start_matches(c.as_slice()).to_owned(),
                None => s.trim_start().to_owned(),
            },
            "rstrip" => match &chars {
                Some(c) => s.trim_end_matches(c.as_slice()).to_owned(),
                None => s.trim_end().to_owned(),
            },
            "upper" => s.to_uppercase(),
            "lower" => s.to_lowercase(),
            "title" => {
                let mut out = String::with_capacity(s.len());
                let mut start = true;
                for c in s.chars() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = !c.is_alphanumeric();
                }
                out
            }
            "capitalize" => {
                let mut c = s.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + &c.as_str().to_lowercase(),
                    None => String::new(),
                }
            }
            "startswith" => return Ok(Value::from(s.starts_with(&arg_str(0).unwrap_or_default()))),
            "endswith" => return Ok(Value::from(s.ends_with(&arg_str(0).unwrap_or_default()))),
            "replace" => {
                let (Some(a), Some(b)) = (arg_str(0), arg_str(1)) else {
                    return Err(unknown());
                };
                s.replace(&a, &b)
            }
            "split" => {
                let parts: Vec<Value> = match arg_str(0) {
                    Some(sep) => s.split(sep.as_str()).map(Value::from).collect(),
                    None => s.split_whitespace().map(Value::from).collect(),
                };
                return Ok(Value::from(parts));
            }
            _ => return Err(unknown()),
        };
        return Ok(Value::from(out));
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        let keys: Vec<Value> = value.try_iter()?.collect();
        return match method {
            "keys" => Ok(Value::from(keys)),
            "values" => Ok(Value::from(
                keys.iter()
                    .map(|k| value.get_item(k))
                    .collect::<Result<Vec<_>, _>>()?,
            )),
            "items" => Ok(Value::from(
                keys.iter()
                    .map(|k| Ok(Value::from(vec![k.clone(), value.get_item(k)?])))
                    .collect::<Result<Vec<_>, Error>>()?,
            )),
            "get" => {
                let key = args.first().cloned().unwrap_or(Value::UNDEFINED);
                let v = value.get_item(&key)?;
                Ok(if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    v
                })
            }
            _ => Err(unknown()),
        };
    }
    Err(unknown())
}
