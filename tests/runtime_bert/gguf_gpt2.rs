//! A GPT-2 GGUF (`tests/fixtures/gguf_gpt2`, made by its `make_fixture.py`: Q8_0 `Conv1D`
//! weights stored transposed, as llama.cpp writes them) gives the logits transformers'
//! `AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)` computes: within 1e-4 with the
//! weights dequantized (as transformers holds them), and close with the weights kept in Q8_0
//! (candle's quantized kernel quantizes the activations too).

use candle_core::{DType, Device, Tensor};
use peftc::runtime::models::config::ModelConfig;
use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel, LinearFormat};
use peftc::runtime::models::load::{load, LoadConfig};
use std::path::Path;

/// (max |logit - transformers|, relative L2 error) with linear weights held as `format`.
fn max_diff(format: LinearFormat) -> (f32, f32) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_gpt2");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let g = GgufModel::open(
        &dir.join("tiny-gpt2.gguf"),
        &Device::Cpu,
        GgufLoadConfig {
            linear_format: format,
        },
    )
    .unwrap();
    let config =
        ModelConfig::from_json(&g.config_json().unwrap().to_string(), "tiny-gpt2").unwrap();
    let model = load(&config, &g, &LoadConfig::default()).unwrap();
    let ids: Vec<Vec<u32>> = expected["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as u32)
                .collect()
        })
        .collect();
    let (b, t) = (ids.len(), ids[0].len());
    let ids = Tensor::new(ids, &Device::Cpu).unwrap();
    let mask = Tensor::ones((b, t), DType::U8, &Device::Cpu).unwrap();
    let logits = model.forward(&ids, &mask, false).unwrap();
    let shape: Vec<usize> = expected["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(logits.dims(), shape.as_slice());
    let want: Vec<f32> = expected["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let got = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let max = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let err: f32 = got.iter().zip(&want).map(|(a, b)| (a - b) * (a - b)).sum();
    let norm: f32 = want.iter().map(|b| b * b).sum();
    (max, (err / norm).sqrt())
}

#[test]
fn gpt2_gguf_logits_match_transformers() {
    let (dense, _) = max_diff(LinearFormat::Dense);
    println!("gpt2 GGUF, dequantized: max |logit - transformers| = {dense:e}");
    assert!(dense < 1e-4, "dequantized logits off by {dense}");
    let (stored, rel) = max_diff(LinearFormat::Stored);
    println!("gpt2 GGUF, Q8_0 kept: max |logit - transformers| = {stored:e}, relative L2 {rel:e}");
    assert!(rel < 2e-2, "Q8_0 logits off by {rel} (relative L2)");
}
