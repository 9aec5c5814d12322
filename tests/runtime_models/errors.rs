//! Bad inputs give typed errors naming the file and tensor: missing tensor, wrong shape,
//! truncated safetensors, pickled `.bin`, unknown architecture, an adapter of another model,
//! targets that match nothing.

use super::common::parity_dir;
use candle_core::Device;
use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::error::AdapterError;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::models::error::ModelError;
use peftc::runtime::models::load::{load_folder, LoadConfig};
use peftc::runtime::models::source::LoadError;
use peftc::runtime::peft_format::error::PeftFormatError;
use peftc::runtime::peft_format::load::load_adapter;
use std::path::Path;

fn copy_model(arch: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = parity_dir().join(arch).join("model");
    for e in std::fs::read_dir(&src).expect("fixture") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, tmp.path().join(p.file_name().expect("name"))).expect("copy");
    }
    tmp
}

fn load_err(dir: &Path) -> ModelError {
    match load_folder(dir, &LoadConfig::default()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn missing_tensor_is_named() {
    let tmp = copy_model("llama");
    let st = tmp.path().join("model.safetensors");
    let mut t = candle_core::safetensors::load(&st, &Device::Cpu).expect("load");
    t.remove("model.layers.1.mlp.up_proj.weight");
    candle_core::safetensors::save(&t, &st).expect("save");
    match load_err(tmp.path()) {
        ModelError::Load(LoadError::MissingTensor { name, .. }) => {
            assert_eq!(name, "model.layers.1.mlp.up_proj.weight")
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn wrong_shape_is_named() {
    let tmp = copy_model("llama");
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("\"intermediate_size\": 64", "\"intermediate_size\": 48");
    std::fs::write(&cfg, text).expect("write");
    match load_err(tmp.path()) {
        ModelError::Load(LoadError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(name, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(expected, vec![48, 32]);
            assert_eq!(found, vec![64, 32]);
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn truncated_file_names_the_file() {
    let tmp = copy_model("gpt2");
    let st = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&st).expect("read");
    std::fs::write(&st, &bytes[..bytes.len() / 2]).expect("truncate");
    match load_err(tmp.path()) {
        ModelError::Load(LoadError::Other { file, message }) => {
            assert!(file.ends_with("model.safetensors"), "{file}");
            assert!(message.contains("truncated"), "{message}");
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn pickled_checkpoint_is_refused() {
    let tmp = copy_model("gpt2");
    std::fs::remove_file(tmp.path().join("model.safetensors")).expect("rm");
    std::fs::write(tmp.path().join("pytorch_model.bin"), b"not really a pickle").expect("write");
    match load_err(tmp.path()) {
        ModelError::Load(LoadError::Other { file, message }) => {
            assert!(file.ends_with("pytorch_model.bin"), "{file}");
            assert!(message.contains("pickled"), "{message}");
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn unknown_architecture_is_named() {
    let tmp = copy_model("gpt2");
    let cfg = tmp.path().join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("\"model_type\": \"gpt2\"", "\"model_type\": \"mamba\"");
    std::fs::write(&cfg, text).expect("write");
    match load_err(tmp.path()) {
        ModelError::UnknownArchitecture {
            model_type,
            supported,
            ..
        } => {
            assert_eq!(model_type, "mamba");
            assert!(supported.contains("llama"));
        }
        e => panic!("unexpected error {e}"),
    }
}

#[test]
fn adapter_of_another_architecture_is_refused() {
    let mut model =
        load_folder(&parity_dir().join("gpt2/model"), &LoadConfig::default()).expect("load");
    let dir = parity_dir().join("llama/adapters/qv");
    match load_adapter(model.as_adaptable_mut(), &dir, "x") {
        Err(PeftFormatError::UnexpectedKey { key, .. }) => {
            assert!(key.contains("self_attn"), "{key}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a llama adapter must not load on gpt2"),
    }
}

#[test]
fn targets_that_match_nothing_are_an_error() {
    let mut model =
        load_folder(&parity_dir().join("llama/model"), &LoadConfig::default()).expect("load");
    let cfg = LoraConfig {
        target_modules: TargetModules::Names(vec!["query".into()]),
        ..LoraConfig::default()
    };
    match attach_lora(model.as_adaptable_mut(), "a", &cfg) {
        Err(AdapterError::NoTarget { example, .. }) => {
            assert!(example.starts_with("model.layers.0"))
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("no layer is named query"),
    }
    let cfg = LoraConfig {
        spec: peftc::runtime::adapters::lora::LoraSpec {
            r: 64,
            ..Default::default()
        },
        ..LoraConfig::default()
    };
    assert!(matches!(
        attach_lora(model.as_adaptable_mut(), "a", &cfg),
        Err(AdapterError::BadRank { r: 64, .. })
    ));
}

#[test]
fn sharded_and_half_precision_checkpoints_load() {
    use super::common::{assert_logits, max_diff_on_tokens, reference};
    use candle_core::DType;
    let tmp = copy_model("llama");
    let st = tmp.path().join("model.safetensors");
    let all = candle_core::safetensors::load(&st, &Device::Cpu).expect("load");
    std::fs::remove_file(&st).expect("rm");
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: std::collections::HashMap<String, candle_core::Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].to_dtype(DType::BF16).expect("bf16")))
            .collect();
        candle_core::safetensors::save(&shard, tmp.path().join(file)).expect("save shard");
        for n in part {
            map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        tmp.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .expect("index");
    let r = reference("llama");
    let model = load_folder(tmp.path(), &LoadConfig::default()).expect("sharded bf16 loads");
    let logits = model
        .forward(&r.input_ids, &r.mask, false)
        .expect("forward");
    let d = max_diff_on_tokens(&logits, &r.tensors["base"], &r.mask);
    assert!(
        d > 0.0 && d < 5e-2,
        "bf16 rounding should change logits slightly, got {d}"
    );
    // The same weights in f32 shards are exact.
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: std::collections::HashMap<String, candle_core::Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, tmp.path().join(file)).expect("save shard");
    }
    let model = load_folder(tmp.path(), &LoadConfig::default()).expect("sharded f32 loads");
    assert_logits(model.as_ref(), &r, "base", "sharded f32");
}
