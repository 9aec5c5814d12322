//! The SentencePiece GGUF fixture (`tests/fixtures/gguf_tok`, made by its `make_fixture.py`)
//! tokenizes exactly as transformers' `AutoTokenizer.from_pretrained(dir, gguf_file=...)` does:
//! the same ids (BOS included) for every text of a multilingual set with byte-fallback pieces,
//! and the same decoding with and without special tokens.

use candle_core::Device;
use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel};
use std::path::Path;

#[test]
fn sentencepiece_gguf_matches_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tok");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let g = GgufModel::open(
        &dir.join("tiny-spm.gguf"),
        &Device::Cpu,
        GgufLoadConfig::default(),
    )
    .unwrap();
    let tok = g.tokenizer().unwrap();
    assert_eq!(
        tok.get_vocab_size(true) as u64,
        expected["vocab_size"].as_u64().unwrap()
    );
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 20);
    assert!(expected["byte_fallback_ids"].as_u64().unwrap() > 0);
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let got = tok.encode(text, true).unwrap().get_ids().to_vec();
        assert_eq!(got, want, "ids of {text:?}");
        let decoded = tok.decode(&got, false).unwrap();
        assert_eq!(
            decoded,
            case["decoded"].as_str().unwrap(),
            "decode of {text:?}"
        );
        let skipped = tok.decode(&got, true).unwrap();
        assert_eq!(
            skipped,
            case["decoded_skip_special"].as_str().unwrap(),
            "decode (special tokens skipped) of {text:?}"
        );
    }
    let cfg = g.tokenizer_config().unwrap();
    assert!(cfg.add_bos_token && !cfg.add_eos_token);
    assert_eq!(cfg.bos_token.as_deref(), Some("<s>"));
}
