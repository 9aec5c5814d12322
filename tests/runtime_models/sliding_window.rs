//! Sliding-window attention equals transformers: the tiny mistral with a window of 3 (every
//! layer) and the tiny qwen2 with `use_sliding_window` and `max_window_layers = 1` (only layer 1
//! slides), on 12 tokens (fixtures made by `tests/parity/make_sliding_window_fixtures.py`).
//! The window must change the logits (checked when the fixture is made) and peftc must match.

use super::common::{max_diff_on_tokens, parity_dir};
use candle_core::{DType, Device};
use peftc::runtime::models::load::{load_folder, LoadConfig};
use serde_json::Value;

/// The parity model `arch` in a temporary folder, with `edit` applied to its config.json.
fn model_with(arch: &str, edit: impl Fn(&mut serde_json::Map<String, Value>)) -> tempfile::TempDir {
    let src = parity_dir().join(arch).join("model");
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    let path = dir.path().join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    dir
}

fn check(arch: &str, dir: &std::path::Path) {
    let r = candle_core::safetensors::load(
        parity_dir().join(arch).join("sliding_window.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let ids = r["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = r["attention_mask"].to_dtype(DType::U8).unwrap();
    let model = load_folder(dir, &LoadConfig::default()).unwrap();
    let logits = model.forward(&ids, &mask, false).unwrap();
    let diff = max_diff_on_tokens(&logits, &r["logits"], &mask);
    assert!(diff < 1e-4, "{arch}: logits differ by {diff}");
}

#[test]
fn mistral_sliding_window_matches_transformers() {
    let dir = model_with("mistral", |c| {
        c.insert("sliding_window".into(), 3.into());
    });
    check("mistral", dir.path());
}

#[test]
fn qwen2_sliding_window_layers_match_transformers() {
    let dir = model_with("qwen2", |c| {
        c.remove("layer_types");
        c.insert("use_sliding_window".into(), true.into());
        c.insert("sliding_window".into(), 3.into());
        c.insert("max_window_layers".into(), 1.into());
    });
    check("qwen2", dir.path());
}

#[test]
fn a_window_wider_than_the_sequence_changes_nothing() {
    // The committed mistral fixture has sliding_window = 4096: its plain reference still holds.
    let r = super::common::reference("mistral");
    let model = load_folder(&parity_dir().join("mistral/model"), &LoadConfig::default()).unwrap();
    super::common::assert_logits(model.as_ref(), &r, "base", "mistral, window 4096");
}
