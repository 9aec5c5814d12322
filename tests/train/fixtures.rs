//! Reads the JSON fixtures made by `tests/parity/make_train_fixtures.py`.

use candle_core::{Device, Tensor};
use peftc::runtime::batch::Example;
use serde_json::Value;

/// Parses `tests/fixtures/train/<name>.json`.
pub fn load(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/train/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn flatten(v: &Value, shape: &mut Vec<usize>, depth: usize, out: &mut Vec<f32>) {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            for it in items {
                flatten(it, shape, depth + 1, out);
            }
        }
        Value::Number(n) => out.push(n.as_f64().unwrap_or(f64::NAN) as f32),
        other => panic!("not a tensor: {other}"),
    }
}

/// A nested JSON list as an f32 tensor on the CPU.
pub fn tensor(v: &Value) -> Tensor {
    let mut shape = Vec::new();
    let mut data = Vec::new();
    flatten(v, &mut shape, 0, &mut data);
    Tensor::from_vec(data, shape, &Device::Cpu).expect("tensor from fixture")
}

/// A nested JSON list flattened to f32.
pub fn floats(v: &Value) -> Vec<f32> {
    let mut shape = Vec::new();
    let mut data = Vec::new();
    flatten(v, &mut shape, 0, &mut data);
    data
}

/// The fixture's examples.
pub fn examples(v: &Value) -> Vec<Example> {
    v.as_array()
        .expect("examples")
        .iter()
        .map(|e| Example {
            input_ids: e["input_ids"]
                .as_array()
                .expect("ids")
                .iter()
                .map(|x| x.as_u64().expect("id") as u32)
                .collect(),
            labels: e["labels"]
                .as_array()
                .expect("labels")
                .iter()
                .map(|x| x.as_i64().expect("label"))
                .collect(),
            class_label: e["class_label"].as_u64().map(|c| c as u32),
            packed: Vec::new(),
        })
        .collect()
}

/// `max |a - b| / max |b|` (b the reference).
pub fn rel_max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    let num = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let den = b.iter().map(|y| y.abs()).fold(0f32, f32::max).max(1e-12);
    num / den
}

/// `max |a - b|`.
pub fn abs_max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}
