//! The decoders' classification head against transformers + PEFT: a tiny Hugging Face
//! `LlamaForSequenceClassification` (hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 128, 3
//! labels, pad id 0) with PEFT LoRA r 8 on q_proj, v_proj and the `score` head as
//! `modules_to_save`, trained 5 AdamW steps (lr 5e-3, weight decay 0.01, batches of 2 x 12, one
//! row right-padded) by tests/parity/seq_cls/make_seq_cls_fixtures.py. Unlike the other training
//! parity tests, the model here is the runtime's own llama built by `load_classifier` from the
//! fixture folder, with the runtime's LoRA attached. Each step's loss and every logit after
//! training within 1e-5 of PEFT's; the trained LoRA and head within 1e-4 relative; the adapter
//! saved by peftc has the tensor names and shapes of the one PEFT saved.

use super::fixtures;
use candle_core::{DType, Device, Tensor};
use peftc::runtime::adapters::attach::{attach_lora, set_active, LoraConfig};
use peftc::runtime::adapters::lora::{LoraInit, LoraSpec};
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::batch::Example;
use peftc::runtime::model_api::TaskKind;
use peftc::runtime::models::config::ModelConfig;
use peftc::runtime::models::load::{load_classifier, LoadConfig};
use peftc::runtime::models::safetensors_source::SafetensorsSource;
use peftc::runtime::peft_format::adapter_config::AdapterConfig;
use peftc::runtime::peft_format::lineage::Lineage;
use peftc::runtime::peft_format::save::save_adapter;
use peftc::runtime::train::log::MetricsLog;
use peftc::runtime::train::{
    train, AdamWConfig, DecayRule, NoProgress, OptimizerConfig, Resume, ScheduleConfig,
    ScheduleKind, TrainConfig, TrainLength, TrainRun, Warmup,
};
use std::path::Path;
use std::sync::atomic::AtomicBool;

const TOL: f64 = 1e-5;

#[test]
fn five_adamw_steps_on_llama_for_sequence_classification_match_peft() {
    let dev = Device::Cpu;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train/peft_llama_cls");
    let config = ModelConfig::from_folder(&dir).expect("config");
    let src = SafetensorsSource::from_folder(&dir, &dev).expect("weights");
    let mut model = load_classifier(&config, &src, &LoadConfig::default(), 3).expect("model");
    assert_eq!(model.task(), TaskKind::Classify { num_labels: 3 });
    let lora = LoraConfig {
        spec: LoraSpec {
            r: 8,
            alpha: 16.0,
            init: LoraInit::Gaussian,
            ..LoraSpec::default()
        },
        target_modules: TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
        modules_to_save: vec!["score".into()],
        ..LoraConfig::default()
    };
    attach_lora(model.as_adaptable_mut(), "default", &lora).expect("attach");
    set_active(model.as_adaptable_mut(), &[("default".into(), 1.0)]);

    // PEFT's initial values (random A and B, the checkpoint's head) into the runtime's vars.
    // PEFT names the head's trainable copy `score.modules_to_save.weight` in memory and
    // `score.weight` in the saved adapter; the runtime uses the saved name throughout.
    let peft_names = |file: &str| -> std::collections::HashMap<String, Tensor> {
        candle_core::safetensors::load(dir.join(file), &dev)
            .expect(file)
            .into_iter()
            .map(|(k, t)| (k.replace(".modules_to_save.", "."), t))
            .collect()
    };
    let init = peft_names("trainable_init.safetensors");
    let fin = peft_names("trainable_final.safetensors");
    let vars = model.trainable();
    let mut names: Vec<&String> = vars.iter().map(|(n, _)| n).collect();
    let mut want: Vec<&String> = init.keys().collect();
    names.sort();
    want.sort();
    assert_eq!(names, want, "trainable names are PEFT's");
    for (name, var) in &vars {
        var.set(&init[name]).expect("set");
    }

    let run = fixtures::load("peft_llama_cls/run");
    let batches = run["batches"].as_array().expect("batches");
    let mut examples = Vec::new();
    for batch in batches {
        for r in 0..2 {
            let mask = fixtures::floats(&batch["attention_mask"][r]);
            let n = mask.iter().filter(|&&m| m > 0.0).count();
            let ids = fixtures::floats(&batch["input_ids"][r]);
            examples.push(Example {
                input_ids: ids.iter().take(n).map(|&t| t as u32).collect(),
                labels: Vec::new(),
                class_label: Some(batch["labels"][r].as_u64().expect("class") as u32),
                packed: Vec::new(),
            });
        }
    }
    let out = tempfile::tempdir().expect("dir");
    let flag = AtomicBool::new(false);
    let cfg = TrainConfig {
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
    train(
        model.as_adaptable(),
        &examples,
        &cfg,
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
    let losses = run["losses"].as_array().expect("losses");
    assert_eq!(log.len(), 5);
    for (got, want) in log.iter().zip(losses) {
        let want = want.as_f64().expect("loss");
        assert!(
            (got.loss - want).abs() <= TOL,
            "step {}: loss {} vs PEFT {want}",
            got.step,
            got.loss
        );
    }
    for (name, var) in model.trainable() {
        let got: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = fin[&name].flatten_all().unwrap().to_vec1().unwrap();
        let d = fixtures::rel_max_diff(&got, &want);
        assert!(d <= 1e-4, "{name}: relative diff {d}");
    }
    // Logits after training, every batch (the padded row pools its last real token).
    let mut worst = 0f64;
    for (batch, want) in batches
        .iter()
        .zip(run["logits_after"].as_array().expect("logits"))
    {
        let ids = fixtures::tensor(&batch["input_ids"])
            .to_dtype(DType::U32)
            .unwrap();
        let mask = fixtures::tensor(&batch["attention_mask"])
            .to_dtype(DType::U8)
            .unwrap();
        let got: Vec<f32> = model
            .forward(&ids, &mask, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want = fixtures::floats(want);
        worst = worst.max(f64::from(fixtures::abs_max_diff(&got, &want)));
    }
    eprintln!("logits after 5 steps: max |peftc - PEFT| = {worst:e}");
    assert!(worst <= TOL, "logits differ by {worst}");

    // The saved adapter: PEFT's tensor names and shapes, `score` in modules_to_save.
    let saved = out.path().join("adapter");
    let peft = AdapterConfig::from_model(
        model.as_adaptable(),
        "default",
        &lora,
        "tiny-llama-cls",
        "SEQ_CLS",
    );
    let lineage = Lineage::for_base("tiny-llama-cls", Some(&dir)).expect("lineage");
    save_adapter(model.as_adaptable(), "default", &peft, &lineage, &saved).expect("save");
    let ours = candle_core::safetensors::load(saved.join("adapter_model.safetensors"), &dev)
        .expect("ours");
    let theirs =
        candle_core::safetensors::load(dir.join("adapter/adapter_model.safetensors"), &dev)
            .expect("theirs");
    let shapes = |m: &std::collections::HashMap<String, Tensor>| {
        let mut v: Vec<(String, Vec<usize>)> = m
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(shapes(&ours), shapes(&theirs));
    let text = std::fs::read_to_string(saved.join("adapter_config.json")).expect("config");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(json["task_type"], "SEQ_CLS");
    assert!(json["modules_to_save"]
        .as_array()
        .expect("modules_to_save")
        .iter()
        .any(|m| m == "score"));
}
