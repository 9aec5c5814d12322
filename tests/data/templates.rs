//! Templates render exact strings: Alpaca and ChatML as published, the tokenizer's chat template
//! exactly as transformers' `apply_chat_template` (fixture made by `make_fixtures.py`).

use peftc::runtime::data::error::{RowIndex, RowLocation};
use peftc::runtime::data::mapping::{map_row, Message};
use peftc::runtime::data::render::{ChatTemplate, Renderer};
use peftc::runtime::data::source::SourceRow;
use peftc::runtime::data::{DataError, FieldMapping, SourceFormat, Template};
use serde_json::json;

use super::{fixtures, run, spec, tokenizer, Dir};

fn row(value: serde_json::Value) -> SourceRow {
    SourceRow {
        at: RowLocation {
            file: "d.jsonl".into(),
            at: RowIndex::Line(1),
        },
        value,
    }
}

fn render(
    template: Template,
    mapping: FieldMapping,
    value: serde_json::Value,
) -> (String, Vec<String>) {
    let tok = tokenizer("bpe");
    let r = Renderer::new(&template, &mapping, true, &tok, None).unwrap();
    let row = row(value);
    let m = map_row(&mapping, &row, None).unwrap();
    let out = r.render(&m, &row, None).unwrap();
    let trained = out
        .trained
        .unwrap_or_default()
        .into_iter()
        .map(|g| out.text[g].to_owned())
        .collect();
    (out.text, trained)
}

fn instr() -> FieldMapping {
    FieldMapping::Instruction {
        prompt: "instruction".into(),
        input: Some("input".into()),
        completion: "output".into(),
        system: None,
    }
}

#[test]
fn alpaca_with_and_without_input() {
    let (text, trained) = render(
        Template::Alpaca,
        instr(),
        json!({"instruction": "Classify the sentiment.", "input": "A dull film.", "output": "negative"}),
    );
    assert_eq!(
        text,
        "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nClassify the sentiment.\n\n### Input:\nA dull film.\n\n### Response:\nnegative"
    );
    assert_eq!(trained, vec!["negative"]);
    let (text, _) = render(
        Template::Alpaca,
        instr(),
        json!({"instruction": "Say hi.", "input": "", "output": "hi"}),
    );
    assert_eq!(
        text,
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\nhi"
    );
}

#[test]
fn chatml_turns() {
    let mapping = FieldMapping::Instruction {
        prompt: "q".into(),
        input: None,
        completion: "a".into(),
        system: Some("Be brief.".into()),
    };
    let (text, trained) = render(
        Template::Chatml,
        mapping,
        json!({"q": "hello", "a": "hi there"}),
    );
    assert_eq!(
        text,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\nhi there<|im_end|>\n"
    );
    assert_eq!(trained, vec!["hi there<|im_end|>"]);
}

#[test]
fn custom_template_holes() {
    let (text, trained) = render(
        Template::Custom("Q: {prompt} [{meta.lang}] {{literal}}\nA: {completion}\n".into()),
        FieldMapping::Instruction {
            prompt: "q".into(),
            input: None,
            completion: "a".into(),
            system: None,
        },
        json!({"q": "2+2?", "a": "4", "meta": {"lang": "en"}}),
    );
    assert_eq!(text, "Q: 2+2? [en] {literal}\nA: 4\n");
    assert_eq!(trained, vec!["4\n"]);
}

fn cases() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("chat_cases.json")).unwrap())
        .unwrap()
}

fn conversation(all: &serde_json::Value, i: u64) -> Vec<Message> {
    all["conversations"][i as usize]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message {
            role: m["role"].as_str().unwrap().into(),
            content: m["content"].as_str().unwrap().into(),
        })
        .collect()
}

#[test]
fn chat_template_text_matches_transformers() {
    let all = cases();
    let mut checked = 0;
    for c in all["cases"].as_array().unwrap() {
        let tok = tokenizer(c["tokenizer"].as_str().unwrap());
        let cfg = tok.config();
        let t = ChatTemplate::new(
            cfg.chat_template.as_deref().unwrap(),
            cfg.special_tokens.clone(),
        )
        .unwrap();
        let msgs = conversation(&all, c["conversation"].as_u64().unwrap());
        let got = t.render(&msgs, c["add_generation_prompt"].as_bool().unwrap());
        match c.get("error") {
            Some(err) => {
                let e = got.unwrap_err();
                assert!(e.to_string().contains(err.as_str().unwrap()), "{e}");
            }
            None => assert_eq!(got.unwrap(), c["text"].as_str().unwrap(), "{c}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 16);
}

#[test]
fn chat_template_ids_match_transformers() {
    let all = cases();
    let mut checked = 0;
    for c in all["cases"].as_array().unwrap() {
        if c["add_generation_prompt"].as_bool().unwrap() || c.get("error").is_some() {
            continue;
        }
        let name = c["tokenizer"].as_str().unwrap();
        let i = c["conversation"].as_u64().unwrap() as usize;
        let dir = Dir::new();
        let line = json!({"messages": all["conversations"][i]}).to_string();
        dir.write("chat.jsonl", &format!("{line}\n"));
        let mut s = spec(
            SourceFormat::Jsonl,
            "chat.jsonl",
            FieldMapping::Chat {
                messages: "messages".into(),
                role_key: "role".into(),
                content_key: "content".into(),
            },
        );
        s.template = Template::ChatTemplate;
        let d = run(&s, &tokenizer(name), &dir);
        let want: Vec<u32> = serde_json::from_value(c["ids"].clone()).unwrap();
        assert_eq!(d.splits[0].examples[0].input_ids, want, "{name} {i}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn chat_template_exception_is_a_row_error() {
    let dir = Dir::new();
    dir.write(
        "chat.jsonl",
        "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"user\", \"content\": \"world\"}]}\n",
    );
    let mut s = spec(
        SourceFormat::Jsonl,
        "chat.jsonl",
        FieldMapping::Chat {
            messages: "messages".into(),
            role_key: "role".into(),
            content_key: "content".into(),
        },
    );
    s.template = Template::ChatTemplate;
    let e = peftc::runtime::data::prepare(&s, &tokenizer("llamaish"), &dir.opts()).unwrap_err();
    assert!(matches!(e, DataError::TemplateRow { .. }));
    assert_eq!(
        e.to_string(),
        "chat.jsonl:1: chat template failed on this row: invalid operation: Conversation roles must alternate user/assistant/user/assistant/... (in chat:10)"
    );
}
