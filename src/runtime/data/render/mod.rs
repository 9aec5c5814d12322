//! Rendering: a mapped row and a [`Template`] become one string plus the byte ranges of it that
//! take loss. Tokenization and masking by those ranges happen later ([`super::encode`]).
//!
//! Must not tokenize; must not read files.

mod builtin;
pub mod chat_template;
mod custom;

use std::ops::Range;

pub use chat_template::ChatTemplate;
pub use custom::CustomTemplate;

use super::error::{DataError, MappingSpan, PeftSpan};
use super::mapping::{MappedRow, Message};
use super::source::SourceRow;
use super::spec::{FieldMapping, Template};
use super::tokenizer::ModelTokenizer;

/// A row as text, ready for the tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Second segment (sentence-pair classification).
    pub pair: Option<String>,
    /// Byte ranges of `text` whose tokens take loss; `None` means every token does.
    pub trained: Option<Vec<Range<usize>>>,
    /// Class index (classification only).
    pub class_label: Option<u32>,
    /// Let the tokenizer's post-processor add its special tokens (bos, cls/sep).
    pub add_special_tokens: bool,
    /// Append the model's eos token (plain, alpaca and custom causal LM examples).
    pub append_eos: bool,
}

/// A template compiled for one mapping: checks the combination once, renders many rows.
#[derive(Debug)]
pub struct Renderer {
    kind: Kind,
    completion_only: bool,
    system: Option<String>,
}

#[derive(Debug)]
enum Kind {
    Plain,
    Alpaca,
    Chatml,
    Chat(Box<ChatTemplate>),
    Custom(CustomTemplate),
}

impl Renderer {
    /// Compile `template` for `mapping`, refusing combinations that make no sense (alpaca on
    /// chat data, a chat template the tokenizer does not have, ...).
    pub fn new(
        template: &Template,
        mapping: &FieldMapping,
        completion_only: bool,
        tokenizer: &ModelTokenizer,
        span: Option<&MappingSpan>,
    ) -> Result<Self, DataError> {
        let invalid = |message: String| {
            let s = PeftSpan::from_mapping(span);
            DataError::InvalidSpec {
                message,
                src: s.src,
                span: s.span,
            }
        };
        let is_chat = matches!(mapping, FieldMapping::Chat { .. });
        let is_instruction = matches!(mapping, FieldMapping::Instruction { .. });
        let is_class = matches!(mapping, FieldMapping::Classification { .. });
        let kind = match template {
            Template::Plain if is_chat => {
                return Err(invalid(
                    "chat messages need `template = chatml` or `template = chat_template`".into(),
                ))
            }
            Template::Plain => Kind::Plain,
            Template::Alpaca if !is_instruction => {
                return Err(invalid(
                    "the alpaca template needs `prompt` and `completion` fields".into(),
                ))
            }
            Template::Alpaca => Kind::Alpaca,
            Template::Chatml | Template::ChatTemplate if !(is_chat || is_instruction) => {
                return Err(invalid(format!(
                    "the {} template needs chat messages or `prompt` and `completion` fields",
                    if *template == Template::Chatml {
                        "chatml"
                    } else {
                        "chat_template"
                    }
                )))
            }
            Template::Chatml => Kind::Chatml,
            Template::ChatTemplate => {
                let Some(src) = tokenizer.config().chat_template.as_deref() else {
                    return Err(invalid(
                        "`template = chat_template` but tokenizer_config.json has no chat_template"
                            .into(),
                    ));
                };
                Kind::Chat(Box::new(ChatTemplate::new(
                    src,
                    tokenizer.config().special_tokens.clone(),
                )?))
            }
            Template::Custom(_) if is_chat => {
                return Err(invalid(
                    "a custom template cannot render chat messages; use chatml or chat_template"
                        .into(),
                ))
            }
            Template::Custom(s) => Kind::Custom(CustomTemplate::parse(s).map_err(invalid)?),
        };
        let system = match mapping {
            FieldMapping::Instruction { system, .. } => system.clone(),
            _ => None,
        };
        Ok(Renderer {
            kind,
            completion_only: completion_only && !is_class,
            system,
        })
    }

    /// Render one row.
    pub fn render(
        &self,
        mapped: &MappedRow,
        row: &SourceRow,
        span: Option<&MappingSpan>,
    ) -> Result<Rendered, DataError> {
        let mut r = match (&self.kind, mapped) {
            (Kind::Plain, _) => builtin::plain(mapped),
            (Kind::Alpaca, MappedRow::Instruction { .. }) => builtin::alpaca(mapped),
            (Kind::Chatml, _) => builtin::chatml(&self.messages(mapped)),
            (Kind::Chat(t), _) => t.render_masked(&self.messages(mapped))?,
            (Kind::Custom(t), _) => t.render(mapped, row, span)?,
            (Kind::Alpaca, _) => builtin::plain(mapped),
        };
        if !self.completion_only {
            r.trained = None;
        }
        Ok(r)
    }

    /// Chat turns of an instruction or chat row.
    fn messages(&self, mapped: &MappedRow) -> Vec<Message> {
        match mapped {
            MappedRow::Chat { messages } => messages.clone(),
            MappedRow::Instruction {
                prompt,
                input,
                completion,
            } => {
                let mut m = Vec::with_capacity(3);
                if let Some(s) = &self.system {
                    m.push(Message {
                        role: "system".into(),
                        content: s.clone(),
                    });
                }
                let user = match input {
                    Some(i) => format!("{prompt}\n\n{i}"),
                    None => prompt.clone(),
                };
                m.push(Message {
                    role: "user".into(),
                    content: user,
                });
                m.push(Message {
                    role: "assistant".into(),
                    content: completion.clone(),
                });
                m
            }
            MappedRow::Text { text } | MappedRow::Classification { text, .. } => vec![Message {
                role: "user".into(),
                content: text.clone(),
            }],
        }
    }
}
