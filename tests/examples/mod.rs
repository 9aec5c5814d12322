//! The shipped examples, run end to end on the real models (all-MiniLM-L6-v2 from the Hugging Face
//! cache layout, the SmolLM2-135M-Instruct GGUF) and the real data, with smaller settings so they
//! fit a CI run: every gate must pass and the export must be written. Skipped with a message when
//! `scripts/fetch-assets.sh` / `scripts/fetch-data.sh` have not been run.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn assets() -> PathBuf {
    std::env::var_os("PEFTC_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/assets"))
}

/// A temporary project holding one example (edited by `edit`) with `examples/data` linked in.
fn project(example: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read_to_string(repo().join("examples").join(example)).expect("example");
    std::fs::write(dir.path().join(example), edit(text)).expect("write");
    std::os::unix::fs::symlink(repo().join("examples/data"), dir.path().join("data"))
        .expect("link data");
    dir
}

fn run(dir: &Path, example: &str, hf_home: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("run")
        .arg(dir.join(example))
        .env("HF_HOME", hf_home)
        .env("NO_COLOR", "1")
        .output()
        .expect("run peftc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn has_data(name: &str) -> bool {
    repo().join("examples/data").join(name).is_file()
}

#[test]
fn sentiment_example_trains_passes_its_gates_and_exports() {
    let minilm = assets().join("all-MiniLM-L6-v2");
    if !minilm.join("model.safetensors").is_file() || !has_data("rotten_tomatoes.jsonl") {
        eprintln!("skipped: run scripts/fetch-assets.sh and scripts/fetch-data.sh for the real sentiment example");
        return;
    }
    let dir = project("sentiment.peft", |s| {
        s.replace("limit = 2000", "limit = 1200")
    });
    // The Hugging Face cache layout, as hf-hub reads it.
    let hf = dir.path().join("hf");
    let repo_dir = hf.join("hub/models--sentence-transformers--all-MiniLM-L6-v2");
    std::fs::create_dir_all(repo_dir.join("refs")).unwrap();
    std::fs::write(
        repo_dir.join("refs/main"),
        "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        &minilm,
        repo_dir
            .join("snapshots")
            .join("c9745ed1d9f207416be6d2e6f8de32d1f16199bf"),
    )
    .or_else(|_| {
        std::fs::create_dir_all(repo_dir.join("snapshots"))?;
        std::os::unix::fs::symlink(
            &minilm,
            repo_dir.join("snapshots/c9745ed1d9f207416be6d2e6f8de32d1f16199bf"),
        )
    })
    .unwrap();
    let (code, stderr) = run(dir.path(), "sentiment.peft", &hf);
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("out/sentiment");
    for f in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "peftc.lineage.json",
        "REPORT.md",
        "loss.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing: {stderr}");
    }
    let lineage: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("peftc.lineage.json")).unwrap())
            .unwrap();
    let gates = lineage["gates"].as_array().expect("gates in lineage");
    assert_eq!(gates.len(), 3);
    for g in gates {
        assert_eq!(g["passed"], true, "{g}");
        assert!(g["value"].as_f64().unwrap() >= 0.70, "{g}");
    }
    let (again, stderr) = run(dir.path(), "sentiment.peft", &hf);
    assert_eq!(again, 0, "{stderr}");
    assert!(stderr.contains("0 ran"), "second run did work: {stderr}");
}

#[test]
fn instruct_example_learns_on_the_frozen_gguf_base() {
    let gguf = assets().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.is_file() || !has_data("chatterbot_qa.jsonl") {
        eprintln!("skipped: run scripts/fetch-assets.sh and scripts/fetch-data.sh for the real instruct example");
        return;
    }
    let dir = project("instruct.peft", |s| {
        s.replace("limit      = 400", "limit      = 80")
            .replace("max_steps  = 50", "max_steps  = 4")
            .replace("max_len    = 256", "max_len    = 96")
    });
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::os::unix::fs::symlink(
        &gguf,
        dir.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), "instruct.peft", &dir.path().join("hf"));
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("out/smol-chat");
    let lineage: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("peftc.lineage.json")).unwrap())
            .unwrap();
    let gate = &lineage["gates"][0];
    assert_eq!(gate["passed"], true, "{gate}");
    assert!(
        gate["value"].as_f64().unwrap() < gate["baseline"].as_f64().unwrap(),
        "{gate}"
    );
}

/// `examples/stack_and_mix.peft` on the SmolLM2 GGUF: a stack of two LoRAs and a bottleneck
/// adapter trained, a weighted mix merged into the base (written as a Hugging Face folder, every
/// weight dequantized to f32), evaluated in place and gated, the bottleneck train gated against
/// it, and the merged model exported with the GGUF file's hash in its lineage.
#[test]
fn stack_and_mix_example_merges_a_mix_on_the_gguf_base() {
    let gguf = assets().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !gguf.is_file() || !has_data("chatterbot_qa.jsonl") {
        eprintln!("skipped: run scripts/fetch-assets.sh and scripts/fetch-data.sh for the stack-and-mix example");
        return;
    }
    let dir = project("stack_and_mix.peft", |s| {
        s.replace("max_steps = 20", "max_steps = 3")
            .replace("limit = 200", "limit = 40")
    });
    std::fs::create_dir_all(dir.path().join("models")).unwrap();
    std::os::unix::fs::symlink(
        &gguf,
        dir.path().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"),
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), "stack_and_mix.peft", &dir.path().join("hf"));
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("out/blended");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out.join(f).is_file(), "{f} missing: {stderr}");
    }
    let lineage: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("peftc.lineage.json")).unwrap())
            .unwrap();
    let files = lineage["base_model"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        files[0]["blake3"].as_str().unwrap(),
        blake3::hash(&std::fs::read(&gguf).unwrap())
            .to_hex()
            .to_string()
    );
    let gate = &lineage["gates"][0];
    assert_eq!(gate["passed"], true, "{gate}");
    assert!(
        lineage["metrics"]["blended_check.loss"].is_number(),
        "{lineage}"
    );
    // Every weight of the merged folder is a dense f32 tensor under its Hugging Face name.
    let merged =
        candle_core::safetensors::load(out.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    assert!(merged.contains_key("model.layers.0.self_attn.q_proj.weight"));
    assert!(merged
        .values()
        .all(|t| t.dtype() == candle_core::DType::F32));
}
