//! The SentencePiece GGUF fixtures (`tests/fixtures/gguf_tok`, made by its `make_fixture.py`)
//! tokenize exactly as transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` does:
//! the same ids (BOS, and EOS where the file asks for it, included) for every text of a
//! multilingual set with byte-fallback pieces, and the same decoding with and without special
//! tokens.

use candle_core::Device;
use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel};
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tok")
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap())
        .unwrap()
}

/// Asserts the ids and decodings of `file` against transformers' `cases`; returns the model.
fn matches_transformers(file: &str, cases: &serde_json::Value) -> GgufModel {
    let g = GgufModel::open(
        &fixture_dir().join(file),
        &Device::Cpu,
        GgufLoadConfig::default(),
    )
    .unwrap();
    let tok = g.tokenizer().unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 20);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(got, want, "{file}: ids of {text:?}");
        let decoded = tok.decode(&got, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "{file}: decode of {text:?}"
        );
        let skipped = tok.decode(&got, true).unwrap();
        assert_eq!(
            skipped,
            case["decoded_skip_special"].as_str().unwrap(),
            "{file}: decode (special tokens skipped) of {text:?}"
        );
    }
    g
}

#[test]
fn sentencepiece_gguf_matches_transformers() {
    let expected = expected();
    assert!(expected["byte_fallback_ids"].as_u64().unwrap() > 0);
    let g = matches_transformers("tiny-spm.gguf", &expected["cases"]);
    assert_eq!(
        g.tokenizer().unwrap().get_vocab_size(true) as u64,
        expected["vocab_size"].as_u64().unwrap()
    );
    let cfg = g.tokenizer_config().unwrap();
    assert!(cfg.add_bos_token && !cfg.add_eos_token);
    assert_eq!(cfg.bos_token.as_deref(), Some("<s>"));
}

/// `add_eos_token = true` appends `</s>`; `add_space_prefix = false` changes nothing (as in
/// transformers).
#[test]
fn sentencepiece_gguf_with_eos_matches_transformers() {
    let expected = expected();
    let variant = &expected["eos_variant"];
    let g = matches_transformers(variant["gguf"].as_str().unwrap(), &variant["cases"]);
    let cfg = g.tokenizer_config().unwrap();
    assert!(cfg.add_bos_token && cfg.add_eos_token);
    let last = variant["cases"][0]["ids"]
        .as_array()
        .unwrap()
        .last()
        .cloned();
    assert_eq!(last, Some(serde_json::json!(2)), "EOS appended");
}
