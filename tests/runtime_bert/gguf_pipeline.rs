//! Tiny pipelines on the committed GGUF fixtures run end to end through `peftc run`: the check
//! accepts them, LoRA trains three steps on the quantized base, and the evaluation (on held-out
//! rows that repeat the training texts) is gated against the untrained base's loss.

use std::path::Path;

/// Runs a pipeline on `tests/fixtures/<fixture>` with LoRA on `targets`; returns the gate.
fn train_on(fixture: &str, targets: &str) -> serde_json::Value {
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(fixture);
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&gguf, dir.path().join("base.gguf")).unwrap();
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
    let pipeline = format!(
        r#"model base = gguf("base.gguf")
dataset qa = jsonl("qa.jsonl") {{
  prompt = field("q")
  completion = field("a")
  max_len = 48
  split = {{ train = 75%, eval = 25%, seed = 1 }}
}}
adapter a = lora {{ r = 4, alpha = 8, targets = [{targets}] }}
train t {{
  model = base
  adapters = [a]
  data = qa.train
  max_steps = 3
  batch = 4
  lr = 1e-2
  seed = 1
}}
eval e {{
  model = t
  data = qa.eval
  metrics = [loss]
  gate loss < baseline.loss
}}
export t.a to "out/a" as peft
"#
    );
    std::fs::write(dir.path().join("p.peft"), pipeline).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("run")
        .arg(dir.path().join("p.peft"))
        .env("NO_COLOR", "1")
        .env("HF_HOME", dir.path().join("hf"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(dir.path().join("out/a/adapter_model.safetensors").is_file());
    let lineage: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("out/a/peftc.lineage.json")).unwrap(),
    )
    .unwrap();
    lineage["gates"][0].clone()
}

fn assert_learned(gate: &serde_json::Value) {
    assert_eq!(gate["passed"], true, "{gate}");
    let value = gate["value"].as_f64().unwrap();
    let baseline = gate["baseline"].as_f64().unwrap();
    assert!(value.is_finite() && value < baseline, "{gate}");
}

#[test]
fn pipeline_on_the_sentencepiece_gguf_trains_end_to_end() {
    assert_learned(&train_on("gguf_tok/tiny-spm.gguf", "q_proj, v_proj"));
}

#[test]
fn pipeline_on_the_gpt2_gguf_trains_end_to_end() {
    assert_learned(&train_on("gguf_gpt2/tiny-gpt2.gguf", "c_attn"));
}
