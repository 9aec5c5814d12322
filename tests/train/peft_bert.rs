//! The training loop on a tiny Hugging Face `BertForSequenceClassification` (hidden 64, 2 layers,
//! 4 heads, 3 labels, dropout 0) with PEFT LoRA r 8 on query, value and the classifier as
//! `modules_to_save`, trained 5 AdamW steps (lr 5e-3, weight decay 0.01, batches of 2 x 12, one
//! row right-padded) by `peft_case("bert")` in tests/parity/make_train_fixtures.py. The model is
//! the runtime's own BERT (`src/runtime/models/bert.rs`, loaded from the fixture folder) with the
//! adapter attached through `attach_lora` and set to PEFT's initial matrices. Each loss within
//! 1e-4, final LoRA and classifier weights within 1e-4 relative.

use super::fixtures;
use candle_core::{DType, Device, Tensor};
use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::lora::LoraSpec;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::batch::Example;
use peftc::runtime::model_api::{AdaptableModel, AdaptedModel};
use peftc::runtime::models::bert::{BertHead, BertLoadConfig, BertModel};
use peftc::runtime::models::bert_config::BertConfig;
use peftc::runtime::models::safetensors_source::SafetensorsSource;
use std::collections::HashMap;

/// PEFT's in-memory name of a `modules_to_save` copy (`classifier.modules_to_save.weight`) as
/// PEFT saves it and the runtime lists it (`classifier.weight`).
fn saved_names(m: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    m.into_iter()
        .map(|(k, v)| (k.replace(".modules_to_save", ""), v))
        .collect()
}

#[test]
fn five_adamw_steps_on_tiny_bert_classifier_match_peft() {
    let dev = Device::Cpu;
    let dir = format!(
        "{}/tests/fixtures/train/peft_bert",
        env!("CARGO_MANIFEST_DIR")
    );
    let dir = std::path::Path::new(&dir);
    let init = saved_names(
        candle_core::safetensors::load(dir.join("trainable_init.safetensors"), &dev).expect("init"),
    );
    let fin = saved_names(
        candle_core::safetensors::load(dir.join("trainable_final.safetensors"), &dev)
            .expect("final"),
    );
    let config = BertConfig::from_file(&dir.join("config.json")).expect("config");
    let src = SafetensorsSource::from_folder(dir, &dev).expect("weights");
    let mut model = BertModel::load(
        &src,
        &config,
        BertLoadConfig {
            head: BertHead::SequenceClassification,
            dtype: DType::F32,
        },
    )
    .expect("model");
    let lora = LoraConfig {
        spec: LoraSpec {
            r: 8,
            alpha: 16.0,
            ..LoraSpec::default()
        },
        target_modules: TargetModules::Names(vec!["query".into(), "value".into()]),
        modules_to_save: vec!["classifier".into()],
        ..LoraConfig::default()
    };
    attach_lora(&mut model, "default", &lora).expect("attach");
    // PEFT's initial matrices and head copy, under PEFT's saved names.
    let vars = model.trainable();
    assert_eq!(vars.len(), init.len());
    for (key, var) in &vars {
        var.set(&init[key]).expect(key);
    }
    let run = fixtures::load("peft_bert/run");
    let mut examples = Vec::new();
    for batch in run["batches"].as_array().expect("batches") {
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
    let adaptable: &dyn AdaptableModel = &model;
    fixtures::train_five_steps_like_peft(adaptable, &examples, &run, &init, &fin);
}
