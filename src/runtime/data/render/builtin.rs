//! The built-in templates: plain, Alpaca and ChatML, as exact strings.

use super::Rendered;
use crate::runtime::data::mapping::{MappedRow, Message};

/// Alpaca's preamble when the row has an input.
pub const ALPACA_PREAMBLE_INPUT: &str = "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.";
/// Alpaca's preamble when the row has no input.
pub const ALPACA_PREAMBLE: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

fn causal(text: String, trained: Option<Vec<std::ops::Range<usize>>>) -> Rendered {
    Rendered {
        text,
        pair: None,
        trained,
        class_label: None,
        add_special_tokens: true,
        append_eos: true,
    }
}

/// No template: text as is; prompt (a blank line, input) then completion.
pub(super) fn plain(m: &MappedRow) -> Rendered {
    match m {
        MappedRow::Text { text } => causal(text.clone(), None),
        MappedRow::Classification { text, pair, label } => Rendered {
            text: text.clone(),
            pair: pair.clone(),
            trained: None,
            class_label: Some(*label),
            add_special_tokens: true,
            append_eos: false,
        },
        MappedRow::Instruction {
            prompt,
            input,
            completion,
        } => {
            let mut text = prompt.clone();
            if let Some(i) = input {
                text.push_str("\n\n");
                text.push_str(i);
            }
            let start = text.len();
            text.push_str(completion);
            let end = text.len();
            causal(text, Some(std::iter::once(start..end).collect()))
        }
        MappedRow::Chat { messages } => {
            let text = messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            causal(text, None)
        }
    }
}

/// The Stanford Alpaca format; loss on the response (and eos).
pub(super) fn alpaca(m: &MappedRow) -> Rendered {
    let MappedRow::Instruction {
        prompt,
        input,
        completion,
    } = m
    else {
        return plain(m);
    };
    let mut text = match input {
        Some(i) => format!(
            "{ALPACA_PREAMBLE_INPUT}\n\n### Instruction:\n{prompt}\n\n### Input:\n{i}\n\n### Response:\n"
        ),
        None => format!("{ALPACA_PREAMBLE}\n\n### Instruction:\n{prompt}\n\n### Response:\n"),
    };
    let start = text.len();
    text.push_str(completion);
    let end = text.len();
    causal(text, Some(std::iter::once(start..end).collect()))
}

/// ChatML turns `<|im_start|>role\ncontent<|im_end|>\n`; loss on each assistant
/// `content<|im_end|>`.
pub(super) fn chatml(messages: &[Message]) -> Rendered {
    let mut text = String::new();
    let mut trained = Vec::new();
    for m in messages {
        text.push_str("<|im_start|>");
        text.push_str(&m.role);
        text.push('\n');
        let start = text.len();
        text.push_str(&m.content);
        text.push_str("<|im_end|>");
        if m.role == "assistant" {
            trained.push(start..text.len());
        }
        text.push('\n');
    }
    Rendered {
        text,
        pair: None,
        trained: Some(trained),
        class_label: None,
        add_special_tokens: false,
        append_eos: false,
    }
}
