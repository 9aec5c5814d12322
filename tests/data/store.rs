//! The tokenized-data file round-trips; streaming preparation writes the same examples.

use peftc::runtime::data::{
    load, prepare_to_file, save, DataError, FieldMapping, SourceFormat, SplitPart, SplitSize,
    SplitSpec, Template,
};

use super::{instruction, run, spec, tokenizer, Dir};

#[test]
fn save_and_load_round_trip() {
    let dir = Dir::new();
    let mut lines = String::new();
    for i in 0..10 {
        lines.push_str(&format!("{{\"q\": \"hello {i}\", \"a\": \"world {i}\"}}\n"));
    }
    dir.write("d.jsonl", &lines);
    let tok = tokenizer("bpe");
    let mut s = spec(SourceFormat::Jsonl, "d.jsonl", instruction("q", "a"));
    s.template = Template::Alpaca;
    s.split = SplitSpec::Sizes {
        parts: vec![
            SplitPart {
                name: "train".into(),
                size: SplitSize::Count(7),
            },
            SplitPart {
                name: "eval".into(),
                size: SplitSize::Percent(100.0),
            },
        ],
        seed: 3,
    };
    let d = run(&s, &tok, &dir);
    let path = dir.path().join("tokens.bin");
    save(&d, &path).unwrap();
    assert_eq!(load(&path).unwrap(), d);
    // A damaged file is refused with a clear error.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let e = load(&path).unwrap_err();
    assert!(matches!(e, DataError::BadCache { .. }));
    assert!(
        e.to_string()
            .ends_with("not a peftc tokenized-data file (bad trailer)"),
        "{e}"
    );
}

#[test]
fn streaming_writes_what_prepare_returns() {
    let dir = Dir::new();
    let mut lines = String::new();
    for i in 0..50 {
        lines.push_str(&format!("{{\"text\": \"hello world {i}\"}}\n"));
    }
    dir.write("d.jsonl", &lines);
    let tok = tokenizer("bpe");
    let mut s = spec(
        SourceFormat::Jsonl,
        "d.jsonl",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    s.packing = true;
    s.max_len = Some(40);
    let mut opts = dir.opts();
    opts.chunk_rows = 7;
    let path = dir.path().join("stream.bin");
    let summary = prepare_to_file(&s, &tok, &opts, &path).unwrap();
    let in_memory = run(&s, &tok, &dir);
    let loaded = load(&path).unwrap();
    assert_eq!(loaded.splits, in_memory.splits);
    assert_eq!(summary, in_memory.summary);
    // Shuffled splits need the in-memory path.
    s.split = SplitSpec::All { seed: Some(1) };
    let e = prepare_to_file(&s, &tok, &opts, &path).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid dataset settings: streaming preparation keeps file order: it needs one split, unshuffled"
    );
}

#[test]
fn content_key_inputs_list_files_and_settings() {
    let dir = Dir::new();
    dir.write("a.jsonl", "{}\n").write("b.jsonl", "{}\n");
    let mut s = spec(
        SourceFormat::Jsonl,
        "*.jsonl",
        FieldMapping::Text {
            text: "text".into(),
        },
    );
    s.max_len = Some(128);
    let k = peftc::runtime::data::content_key_inputs(&s, &dir.opts()).unwrap();
    assert_eq!(
        k.data_files,
        vec![dir.path().join("a.jsonl"), dir.path().join("b.jsonl")]
    );
    assert_eq!(k.settings["max_len"], 128);
    assert_eq!(k.settings["source"]["paths"], serde_json::json!([]));
    assert_eq!(
        k.format_version,
        peftc::runtime::data::TOKENIZED_FORMAT_VERSION
    );
    assert_eq!(
        k.tokenizer_files,
        vec!["tokenizer.json", "tokenizer_config.json"]
    );
}
