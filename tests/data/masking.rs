//! Loss masking: only the completion (or assistant turns) take loss when asked; eos follows the
//! model; truncation keeps labels aligned.

use peftc::runtime::batch::IGNORE_INDEX;
use peftc::runtime::data::{FieldMapping, SourceFormat, Template, Truncation};

use super::{decode, ids, instruction, run, spec, tokenizer, Dir};

fn data() -> Dir {
    let dir = Dir::new();
    dir.write(
        "d.jsonl",
        "{\"q\": \"What is the capital of France?\", \"a\": \"The capital of France is Paris.\"}\n",
    );
    dir
}

#[test]
fn alpaca_masks_the_prompt_and_trains_completion_and_eos() {
    let dir = data();
    let tok = tokenizer("bpe");
    let mut s = spec(SourceFormat::Jsonl, "d.jsonl", instruction("q", "a"));
    s.template = Template::Alpaca;
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    let prompt = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is the capital of France?\n\n### Response:\n";
    let p = ids(&tok, prompt);
    let c = ids(&tok, "The capital of France is Paris.");
    let eos = tok.eos_id().unwrap();
    let mut want_ids = p.clone();
    want_ids.extend(&c);
    want_ids.push(eos);
    assert_eq!(e.input_ids, want_ids);
    let mut want_labels = vec![IGNORE_INDEX; p.len()];
    want_labels.extend(c.iter().map(|&i| i as i64));
    want_labels.push(eos as i64);
    assert_eq!(e.labels, want_labels);
    assert_eq!(e.class_label, None);
    // Without completion_only every token is trained.
    s.completion_only = false;
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    assert_eq!(
        e.labels,
        want_ids.iter().map(|&i| i as i64).collect::<Vec<_>>()
    );
}

#[test]
fn chat_template_trains_only_assistant_turns() {
    let dir = Dir::new();
    dir.write("c.jsonl", "{\"m\": [{\"role\": \"user\", \"content\": \"hello world\"}, {\"role\": \"assistant\", \"content\": \"I am fine, thank you!\"}, {\"role\": \"user\", \"content\": \"hello\"}, {\"role\": \"assistant\", \"content\": \"Plants turn light into sugar.\"}]}\n");
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Jsonl,
        "c.jsonl",
        FieldMapping::Chat {
            messages: "m".into(),
            role_key: "role".into(),
            content_key: "content".into(),
        },
    );
    s.template = Template::ChatTemplate;
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    // The trained tokens decode to the two assistant turns with their end markers.
    let trained: Vec<u32> = e
        .labels
        .iter()
        .filter(|&&l| l != IGNORE_INDEX)
        .map(|&l| l as u32)
        .collect();
    assert_eq!(
        decode(&tok, &trained),
        "I am fine, thank you!<|im_end|>\nPlants turn light into sugar.<|im_end|>\n"
    );
    // chatml: the newline after <|im_end|> is not trained.
    s.template = Template::Chatml;
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    let trained: Vec<u32> = e
        .labels
        .iter()
        .filter(|&&l| l != IGNORE_INDEX)
        .map(|&l| l as u32)
        .collect();
    assert_eq!(
        decode(&tok, &trained),
        "I am fine, thank you!<|im_end|>Plants turn light into sugar.<|im_end|>"
    );
}

#[test]
fn bos_from_post_processor_is_masked_and_truncation_keeps_alignment() {
    let dir = data();
    let tok = tokenizer("llamaish");
    let mut s = spec(SourceFormat::Jsonl, "d.jsonl", instruction("q", "a"));
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    let bos = tok.bos_id().unwrap();
    let eos = tok.eos_id().unwrap();
    assert_eq!(e.input_ids[0], bos);
    assert_eq!(e.labels[0], IGNORE_INDEX);
    assert_eq!(*e.input_ids.last().unwrap(), eos);
    assert_eq!(*e.labels.last().unwrap(), eos as i64);
    let full = e.clone();
    s.max_len = Some(10);
    let e = &run(&s, &tok, &dir).splits[0].examples[0];
    assert_eq!(e.input_ids, full.input_ids[..10]);
    assert_eq!(e.labels, full.labels[..10]);
    s.truncation = Truncation::Left;
    let d = run(&s, &tok, &dir);
    let e = &d.splits[0].examples[0];
    let n = full.input_ids.len();
    assert_eq!(e.input_ids, full.input_ids[n - 10..]);
    assert_eq!(e.labels, full.labels[n - 10..]);
    assert_eq!(d.summary.truncated, 1);
    s.truncation = Truncation::Drop;
    s.skip_invalid = true;
    let r = peftc::runtime::data::prepare(&s, &tok, &dir.opts()).unwrap_err();
    assert_eq!(r.to_string(), "dataset is empty: no usable rows in d.jsonl");
}

#[test]
fn classification_truncation_keeps_sep() {
    let dir = Dir::new();
    dir.write(
        "d.jsonl",
        "{\"t\": \"The movie was great and the acting was wonderful.\", \"y\": \"pos\"}\n",
    );
    let tok = tokenizer("wordpiece");
    let mut s = spec(
        SourceFormat::Jsonl,
        "d.jsonl",
        super::classify("t", "y", &["neg", "pos"]),
    );
    s.max_len = Some(5);
    let d = run(&s, &tok, &dir);
    let e = &d.splits[0].examples[0];
    let words = ids(&tok, "The movie was great and the acting was wonderful.");
    let cls = tok.token_id("[CLS]").unwrap();
    let sep = tok.token_id("[SEP]").unwrap();
    assert_eq!(e.input_ids, vec![cls, words[0], words[1], words[2], sep]);
    assert!(e.labels.is_empty());
    assert_eq!(e.class_label, Some(1));
    assert_eq!(d.summary.truncated, 1);
}
