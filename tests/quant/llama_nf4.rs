//! QLoRA end to end on a real architecture: LoRA trained on a tiny llama whose frozen linear
//! weights are NF4 with double quantization learns like the same run on the f32 base.

use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::lora::LoraSpec;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::batch::Example;
use peftc::runtime::eval::{evaluate, EvalConfig, Metric};
use peftc::runtime::models::config::ModelConfig;
use peftc::runtime::models::load::{load, LoadConfig};
use peftc::runtime::models::safetensors_source::SafetensorsSource;
use peftc::runtime::models::source::TensorSource;
use peftc::runtime::quant::{QuantSpec, QuantizingConfig, QuantizingSource};
use peftc::runtime::train::{train, NoProgress, Resume, TrainConfig, TrainLength, TrainRun};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

fn examples() -> Vec<Example> {
    // A learnable pattern: each sequence counts up from a different start.
    (0..16u32)
        .map(|i| {
            let ids: Vec<u32> = (0..16u32).map(|k| 3 + (i * 5 + k) % 100).collect();
            Example {
                labels: ids.iter().map(|&t| i64::from(t)).collect(),
                input_ids: ids,
                class_label: None,
            }
        })
        .collect()
}

/// (loss before, loss after, linear formats) of 120 LoRA steps on q/v/o/up/down.
fn lora_run(nf4: bool) -> (f64, f64, Vec<String>) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama/model");
    let config = ModelConfig::from_folder(&folder).unwrap();
    let dense: Arc<dyn TensorSource> =
        Arc::new(SafetensorsSource::from_folder(&folder, &candle_core::Device::Cpu).unwrap());
    let src: Arc<dyn TensorSource> = if nf4 {
        Arc::new(
            QuantizingSource::new(
                dense,
                QuantSpec::nf4(),
                QuantizingConfig {
                    cache: None,
                    keep_dense: vec!["lm_head".into()],
                },
            )
            .unwrap(),
        )
    } else {
        dense
    };
    let mut model = load(&config, src.as_ref(), &LoadConfig::default()).unwrap();
    let lora = LoraConfig {
        spec: LoraSpec {
            r: 4,
            alpha: 8.0,
            seed: 7,
            ..LoraSpec::default()
        },
        target_modules: TargetModules::Names(vec![
            "q_proj".into(),
            "v_proj".into(),
            "o_proj".into(),
            "up_proj".into(),
            "down_proj".into(),
        ]),
        ..LoraConfig::default()
    };
    attach_lora(model.as_adaptable_mut(), "default", &lora).unwrap();
    let formats = model
        .as_adaptable()
        .linears()
        .iter()
        .map(|l| l.base().format().to_string())
        .collect();
    let data = examples();
    let eval = EvalConfig {
        batch_size: 8,
        metrics: vec![Metric::Loss],
        pad_id: 2,
        stop_ids: Vec::new(),
    };
    let before = evaluate(model.as_adaptable(), &data, &eval, None, None)
        .unwrap()
        .get(Metric::Loss)
        .unwrap();
    let cfg = TrainConfig {
        length: TrainLength::Steps(120),
        batch_size: 8,
        lr: 3e-2,
        seed: 1,
        pad_id: 2,
        ..TrainConfig::default()
    };
    let cancel = AtomicBool::new(false);
    train(
        model.as_adaptable(),
        &data,
        &cfg,
        TrainRun {
            out_dir: None,
            resume: Resume::Never,
            collate: None,
            progress: &mut NoProgress,
            cancel: &cancel,
        },
    )
    .unwrap();
    let after = evaluate(model.as_adaptable(), &data, &eval, None, None)
        .unwrap()
        .get(Metric::Loss)
        .unwrap();
    (before, after, formats)
}

#[test]
fn lora_on_an_nf4_llama_learns_like_on_f32() {
    let (f32_before, f32_after, f32_formats) = lora_run(false);
    let (nf4_before, nf4_after, nf4_formats) = lora_run(true);
    assert!(f32_formats.iter().all(|f| f == "f32"), "{f32_formats:?}");
    // Every block linear is NF4; only the head stays dense.
    let nf4_count = nf4_formats.iter().filter(|f| *f == "nf4").count();
    assert_eq!(nf4_count, nf4_formats.len() - 1, "{nf4_formats:?}");
    assert!(
        f32_after < 0.93 * f32_before,
        "f32 did not learn: {f32_before} -> {f32_after}"
    );
    assert!(
        nf4_after < 0.93 * nf4_before,
        "nf4 did not learn: {nf4_before} -> {nf4_after}"
    );
    // The quantized base starts close to the f32 one and ends close to it.
    assert!(
        (nf4_before - f32_before).abs() / f32_before < 0.05,
        "{nf4_before} vs {f32_before}"
    );
    assert!(
        (nf4_after - f32_after).abs() / f32_after < 0.10,
        "{nf4_after} vs {f32_after}"
    );
}
