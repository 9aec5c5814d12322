//! The training loop on a real architecture: a tiny Hugging Face `LlamaForCausalLM` (hidden 64,
//! 2 layers, 4 heads, 2 KV heads, vocab 128) with PEFT LoRA r 8 on q_proj, v_proj, trained 5
//! AdamW steps (lr 5e-3, weight decay 0.01, batches of 2 x 12 with right padding and masked
//! prompt tokens) by `peft_case("llama")` in tests/parity/make_train_fixtures.py. The model is the
//! runtime's own llama (`src/runtime/models/`, loaded from the fixture folder) with the adapter
//! attached through `attach_lora` and set to PEFT's initial matrices; the loop, loss and optimizer
//! are the engine's. Each loss within 1e-4, final LoRA weights within 1e-4 relative.

use super::fixtures;
use candle_core::Device;
use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::lora::LoraSpec;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::batch::Example;
use peftc::runtime::models::load::{load_folder, LoadConfig};

fn dir() -> String {
    format!(
        "{}/tests/fixtures/train/peft_llama",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn five_adamw_steps_on_tiny_llama_match_peft() {
    let dev = Device::Cpu;
    let init =
        candle_core::safetensors::load(format!("{}/trainable_init.safetensors", dir()), &dev)
            .expect("init");
    let fin =
        candle_core::safetensors::load(format!("{}/trainable_final.safetensors", dir()), &dev)
            .expect("final");
    let mut model =
        load_folder(std::path::Path::new(&dir()), &LoadConfig::default()).expect("model");
    let lora = LoraConfig {
        spec: LoraSpec {
            r: 8,
            alpha: 16.0,
            ..LoraSpec::default()
        },
        target_modules: TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
        ..LoraConfig::default()
    };
    attach_lora(model.as_adaptable_mut(), "default", &lora).expect("attach");
    // PEFT's initial matrices (its random A and B), under PEFT's saved names.
    let vars = model.trainable();
    assert_eq!(vars.len(), init.len());
    for (key, var) in &vars {
        var.set(&init[key]).expect(key);
    }
    let run = fixtures::load("peft_llama/run");
    let mut examples = Vec::new();
    for batch in run["batches"].as_array().expect("batches") {
        for r in 0..2 {
            let mask = fixtures::floats(&batch["attention_mask"][r]);
            let n = mask.iter().filter(|&&m| m > 0.0).count();
            let ids = fixtures::floats(&batch["input_ids"][r]);
            let labels: Vec<i64> = batch["labels"][r]
                .as_array()
                .expect("labels")
                .iter()
                .map(|v| v.as_i64().expect("label"))
                .collect();
            examples.push(Example {
                input_ids: ids.iter().take(n).map(|&t| t as u32).collect(),
                labels: labels.into_iter().take(n).collect(),
                class_label: None,
                packed: Vec::new(),
            });
        }
    }
    fixtures::train_five_steps_like_peft(model.as_adaptable(), &examples, &run, &init, &fin);
}
