//! QLoRA end to end on real architectures: LoRA trained on a tiny llama and a tiny GPT-2 whose
//! frozen linear weights are NF4 with double quantization learns like the same run on the f32
//! base. GPT-2 stores its linear layers as `Conv1D` (`[in, out]`): they are transposed before
//! quantizing, so the NF4 model starts where the f32 one does.

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
                packed: Vec::new(),
            }
        })
        .collect()
}

/// (loss before, loss after, linear formats) of 120 LoRA steps on `targets` of the parity
/// fixture `arch`.
fn lora_run(arch: &str, targets: &[&str], lr: f64, nf4: bool) -> (f64, f64, Vec<String>) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(arch)
        .join("model");
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
        target_modules: TargetModules::Names(targets.iter().map(|t| t.to_string()).collect()),
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
        lr,
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
    let targets = ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"];
    learns_like_f32("llama", &targets, 3e-2, 0.93);
}

#[test]
fn lora_on_an_nf4_gpt2_learns_like_on_f32() {
    learns_like_f32("gpt2", &["c_attn", "c_proj", "c_fc"], 1e-2, 0.95);
}

/// Both runs end below `ratio` times their starting loss, and close to each other.
fn learns_like_f32(arch: &str, targets: &[&str], lr: f64, ratio: f64) {
    let (f32_before, f32_after, f32_formats) = lora_run(arch, targets, lr, false);
    let (nf4_before, nf4_after, nf4_formats) = lora_run(arch, targets, lr, true);
    assert!(f32_formats.iter().all(|f| f == "f32"), "{f32_formats:?}");
    // Every block linear is NF4; only the head stays dense.
    let nf4_count = nf4_formats.iter().filter(|f| *f == "nf4").count();
    assert_eq!(nf4_count, nf4_formats.len() - 1, "{nf4_formats:?}");
    assert!(
        f32_after < ratio * f32_before,
        "f32 did not learn: {f32_before} -> {f32_after}"
    );
    assert!(
        nf4_after < ratio * nf4_before,
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

/// The NF4 form of a square GPT-2 `Conv1D` layer is the f32 layer's `[out, in]` weight (a
/// quantization error away), not its transpose.
#[test]
fn an_nf4_gpt2_conv1d_weight_keeps_its_orientation() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/gpt2/model");
    let config = ModelConfig::from_folder(&folder).unwrap();
    let dense: Arc<dyn TensorSource> =
        Arc::new(SafetensorsSource::from_folder(&folder, &candle_core::Device::Cpu).unwrap());
    let nf4 = QuantizingSource::new(
        dense.clone(),
        QuantSpec::nf4(),
        QuantizingConfig {
            cache: None,
            keep_dense: vec!["lm_head".into()],
        },
    )
    .unwrap();
    let weight = |src: &dyn TensorSource| {
        let model = load(&config, src, &LoadConfig::default()).unwrap();
        let l = model
            .as_adaptable()
            .linears()
            .into_iter()
            .find(|l| l.path == "transformer.h.0.attn.c_proj")
            .expect("c_proj");
        (
            l.base().format().to_string(),
            l.base().dequantize(candle_core::DType::F32).unwrap(),
        )
    };
    let (f32_format, w) = weight(dense.as_ref());
    let (nf4_format, q) = weight(&nf4);
    assert_eq!((f32_format.as_str(), nf4_format.as_str()), ("f32", "nf4"));
    let rel = |a: &candle_core::Tensor, b: &candle_core::Tensor| {
        let d = (a - b).unwrap().sqr().unwrap().sum_all().unwrap();
        let n = b.sqr().unwrap().sum_all().unwrap();
        (d.to_scalar::<f32>().unwrap() / n.to_scalar::<f32>().unwrap()).sqrt()
    };
    let same = rel(&q, &w);
    let transposed = rel(&q, &w.t().unwrap().contiguous().unwrap());
    assert!(same < 0.15, "NF4 error {same}");
    assert!(transposed > 0.8, "{transposed}");
}
