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

/// A tiny pipeline on the SentencePiece GGUF fixture runs end to end through `peftc run`: the
/// check accepts it, LoRA on q_proj and v_proj trains three steps on the quantized base, and the
/// evaluation (on held-out rows that repeat the training texts) is gated against the untrained
/// base's loss.
#[test]
fn pipeline_on_the_sentencepiece_gguf_trains_end_to_end() {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_tok/tiny-spm.gguf");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&fixture, dir.path().join("tiny-spm.gguf")).unwrap();
    let rows = [
        ("Wie heißt die Hauptstadt von Frankreich?", "Paris."),
        ("日本の首都は？", "東京です。"),
        ("Как дела?", "Хорошо, спасибо!"),
        ("What is 2 + 2?", "4"),
    ];
    let data: String = rows
        .iter()
        .cycle()
        .take(16)
        .map(|(q, a)| serde_json::json!({"q": q, "a": a}).to_string() + "\n")
        .collect();
    std::fs::write(dir.path().join("qa.jsonl"), data).unwrap();
    let pipeline = r#"model spm = gguf("tiny-spm.gguf")
dataset qa = jsonl("qa.jsonl") {
  prompt = field("q")
  completion = field("a")
  max_len = 32
  split = { train = 75%, eval = 25%, seed = 1 }
}
adapter a = lora { r = 4, alpha = 8, targets = [q_proj, v_proj] }
train t {
  model = spm
  adapters = [a]
  data = qa.train
  max_steps = 3
  batch = 4
  lr = 1e-2
  seed = 1
}
eval e {
  model = t
  data = qa.eval
  metrics = [loss]
  gate loss < baseline.loss
}
export t.a to "out/a" as peft
"#;
    std::fs::write(dir.path().join("p.peft"), pipeline).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("run")
        .arg(dir.path().join("p.peft"))
        .env("NO_COLOR", "1")
        .env("HF_HOME", dir.path().join("hf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lineage: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/a/peftc.lineage.json")).unwrap(),
    )
    .unwrap();
    let gate = &lineage["gates"][0];
    assert_eq!(gate["passed"], true, "{gate}");
    let (value, baseline) = (
        gate["value"].as_f64().unwrap(),
        gate["baseline"].as_f64().unwrap(),
    );
    assert!(value.is_finite() && value < baseline, "{gate}");
    assert!(dir.path().join("out/a/adapter_model.safetensors").is_file());
}
