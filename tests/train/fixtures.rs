//! Reads the JSON fixtures made by `tests/parity/make_train_fixtures.py`.

use candle_core::{Device, Tensor};
use peftc::runtime::batch::Example;
use peftc::runtime::model_api::AdaptedModel;
use peftc::runtime::train::log::MetricsLog;
use peftc::runtime::train::{
    train, AdamWConfig, DecayRule, NoProgress, OptimizerConfig, Resume, ScheduleConfig,
    ScheduleKind, TrainConfig, TrainLength, TrainRun, Warmup,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

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

/// Trains `model` 5 AdamW steps (lr 5e-3, weight decay 0.01, batches of 2, constant schedule, no
/// shuffling) as `peft_case` in make_train_fixtures.py does, then asserts each step's loss equals
/// the fixture's within 1e-4 and every trainable tensor ends within 1e-4 (relative) of `fin`,
/// having moved from `init`.
pub fn train_five_steps_like_peft(
    model: &dyn AdaptedModel,
    examples: &[Example],
    run: &Value,
    init: &HashMap<String, Tensor>,
    fin: &HashMap<String, Tensor>,
) {
    let config = TrainConfig {
        length: TrainLength::Steps(5),
        batch_size: 2,
        accumulate: 1,
        lr: 5e-3,
        optimizer: OptimizerConfig::AdamW(AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        }),
        decay: DecayRule::All,
        lora_plus_ratio: None,
        schedule: ScheduleConfig {
            kind: ScheduleKind::Constant,
            warmup: Warmup::Steps(0),
        },
        max_grad_norm: None,
        seed: 0,
        shuffle: false,
        checkpoint_every: None,
        keep_checkpoints: 0,
        pad_id: 0,
    };
    let out = tempfile::tempdir().expect("dir");
    let flag = AtomicBool::new(false);
    train(
        model,
        examples,
        &config,
        TrainRun {
            out_dir: Some(out.path()),
            resume: Resume::Never,
            collate: None,
            progress: &mut NoProgress,
            cancel: &flag,
        },
    )
    .expect("train");
    let log = MetricsLog::read(&out.path().join("metrics.jsonl")).expect("log");
    let want = run["losses"].as_array().expect("losses");
    assert_eq!(log.len(), 5);
    for (r, w) in log.iter().zip(want) {
        let w = w.as_f64().expect("loss");
        assert!(
            (r.loss - w).abs() <= 1e-4,
            "step {}: loss {} vs peft {w}",
            r.step,
            r.loss
        );
    }
    for (name, var) in model.trainable() {
        let got: Vec<f32> = var
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("got");
        let want: Vec<f32> = fin[&name]
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("want");
        let d = rel_max_diff(&got, &want);
        assert!(d <= 1e-4, "{name}: relative diff {d}");
        let before: Vec<f32> = init[&name]
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("init");
        assert!(
            abs_max_diff(&before, &want) > 1e-4,
            "{name} must have moved"
        );
    }
}
