//! `adapter_config.json` as PEFT writes it parses into the runtime declaration and survives a
//! round trip (unknown fields kept); `peftc.lineage.json` records the base files' hashes.

use super::common::parity_dir;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::peft_format::adapter_config::AdapterConfig;
use peftc::runtime::peft_format::lineage::Lineage;

#[test]
fn peft_written_configs_parse_and_round_trip() {
    let all = AdapterConfig::read(&parity_dir().join("llama/adapters/all")).unwrap();
    assert_eq!((all.r, all.lora_alpha), (4, 8.0));
    let lora = all.to_lora();
    match &lora.target_modules {
        TargetModules::Names(n) => assert_eq!(n.len(), 14),
        other => panic!("expected expanded names, got {other:?}"),
    }
    assert!(all.extra.contains_key("peft_version"));
    let rs = AdapterConfig::read(&parity_dir().join("llama/adapters/rslora")).unwrap();
    assert!((rs.scale_for("model.layers.0.self_attn.q_proj") - 4.0).abs() < 1e-12);
    let gpt2 = AdapterConfig::read(&parity_dir().join("gpt2/adapters/qv")).unwrap();
    assert!(gpt2.fan_in_fan_out);
    assert!((gpt2.lora_dropout - 0.05).abs() < 1e-12);
    let text = serde_json::to_string(&all).unwrap();
    let back: AdapterConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, all);
}

#[test]
fn lineage_hashes_the_base_files() {
    let dir = parity_dir().join("llama/model");
    let mut lineage = Lineage::for_base("tiny-llama", Some(&dir)).unwrap();
    let weights = lineage
        .base_model
        .files
        .iter()
        .find(|f| f.path == "model.safetensors")
        .unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    assert_eq!(weights.blake3, blake3::hash(&bytes).to_hex().to_string());
    assert_eq!(weights.bytes, bytes.len() as u64);
    lineage.metrics.insert("eval_loss".into(), 1.25);
    lineage.data.insert("train".into(), "blake3:abc".into());
    let tmp = tempfile::tempdir().unwrap();
    lineage.write(tmp.path()).unwrap();
    assert_eq!(Lineage::read(tmp.path()).unwrap(), lineage);
}
