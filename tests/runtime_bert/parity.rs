//! BERT against Hugging Face transformers / PEFT / AdapterHub reference logits
//! (tests/parity/make_bert_fixtures.py), within 1e-4.

use super::support::*;
use candle_core::{DType, Tensor};
use peftc::runtime::adapters::bottleneck::{BottleneckAdapter, SiteNames};
use peftc::runtime::model_api::{AdaptableModel, AdaptedModel, TaskKind};
use peftc::runtime::models::bert::{mean_pool, BertLoadConfig, BertModel, EmbeddingConfig};
use std::sync::Arc;

const TOL: f32 = 1e-4;

#[test]
fn base_logits_hidden_and_pooled_match_transformers() {
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let m = tiny_bert();
    assert_eq!(m.task(), TaskKind::Classify { num_labels: 3 });
    let h = m.encode(&ids, &mask, Some(&types), false).unwrap();
    let d = max_abs_diff(&h, &r["base_last_hidden"]);
    assert!(d < TOL, "last hidden differs by {d}");
    let p = m.pooled(&h, false).unwrap();
    assert!(max_abs_diff(&p, &r["base_pooled"]) < TOL);
    let mp = mean_pool(&h, &mask, EmbeddingConfig { normalize: false }).unwrap();
    assert!(max_abs_diff(&mp, &r["base_mean_pooled"]) < TOL);
    let logits = m.classify(&ids, &mask, Some(&types), false).unwrap();
    let d = max_abs_diff(&logits, &r["base_logits"]);
    assert!(d < TOL, "logits differ by {d}");
}

#[test]
fn linears_are_named_by_their_hf_paths() {
    let m = tiny_bert();
    let paths: Vec<&str> = m.linears().iter().map(|l| l.path.as_str()).collect();
    assert_eq!(paths.len(), 2 * 6 + 2);
    assert_eq!(paths[0], "bert.encoder.layer.0.attention.self.query");
    assert_eq!(paths[5], "bert.encoder.layer.0.output.dense");
    assert_eq!(paths[12], "bert.pooler.dense");
    assert_eq!(paths[13], "classifier");
    assert_eq!(m.num_layers(), 2);
    assert_eq!(m.hidden_size(), 32);
}

fn bottleneck_logits(name: &str) -> (Tensor, Tensor) {
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let mut m = tiny_bert();
    let a = BottleneckAdapter::load(
        &bert_fixtures().join(name),
        SiteNames::bert("bert.", "BertForSequenceClassification"),
        2,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    m.set_residual_hook(Arc::new(a));
    let logits = m.classify(&ids, &mask, Some(&types), false).unwrap();
    (logits, r[&format!("{name}_logits")].clone())
}

#[test]
fn houlsby_adapter_from_adapterhub_matches() {
    let (got, want) = bottleneck_logits("houlsby");
    let d = max_abs_diff(&got, &want);
    assert!(d < TOL, "houlsby logits differ by {d}");
}

#[test]
fn houlsby_silu_adapter_from_adapterhub_matches() {
    let (got, want) = bottleneck_logits("houlsby_silu");
    assert!(max_abs_diff(&got, &want) < TOL);
}

#[test]
fn pfeiffer_adapter_from_adapterhub_matches() {
    let (got, want) = bottleneck_logits("pfeiffer");
    let d = max_abs_diff(&got, &want);
    assert!(d < TOL, "pfeiffer logits differ by {d}");
}

/// PEFT LoRA applied by merging `W + alpha/r * B A` into the weights the model loads
/// (the adaptable layer's own LoRA path is tested with the core adapter code), and the
/// classifier from `modules_to_save`.
fn lora_logits(name: &str, scale: f64) -> (Tensor, Tensor) {
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let mut src = tiny_source();
    let ad = candle_core::safetensors::load(
        bert_fixtures().join(name).join("adapter_model.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut merged = 0;
    for (k, a) in &ad {
        let Some(module) = k.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let module = module.strip_prefix("base_model.model.").unwrap();
        let b = &ad[&format!("base_model.model.{module}.lora_B.weight")];
        let w = src.tensors[&format!("{module}.weight")].clone();
        let delta = (b.matmul(a).unwrap() * scale).unwrap();
        src.tensors
            .insert(format!("{module}.weight"), (w + delta).unwrap());
        merged += 1;
    }
    assert!(merged >= 2);
    let mut m = BertModel::load(&src, &tiny_config(), BertLoadConfig::default()).unwrap();
    if let (Some(w), Some(b)) = (
        ad.get("base_model.model.classifier.weight"),
        ad.get("base_model.model.classifier.bias"),
    ) {
        m.set_classifier_weights(w, b).unwrap();
        let names: Vec<String> = m.trainable().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "base_model.model.classifier.weight",
                "base_model.model.classifier.bias"
            ]
        );
    }
    let logits = m.classify(&ids, &mask, Some(&types), false).unwrap();
    (logits, r[&format!("{name}_logits")].clone())
}

#[test]
fn peft_lora_query_value_matches() {
    let (got, want) = lora_logits("lora_qv", 8.0 / 4.0);
    let d = max_abs_diff(&got, &want);
    assert!(d < TOL, "lora_qv logits differ by {d}");
}

#[test]
fn peft_lora_all_linear_with_classifier_modules_to_save_matches() {
    let (got, want) = lora_logits("lora_all", 16.0 / 4.0);
    let d = max_abs_diff(&got, &want);
    assert!(d < TOL, "lora_all logits differ by {d}");
}

#[test]
fn tiny_tokenizer_encodes_like_the_reference() {
    let r = reference();
    let tok =
        tokenizers::Tokenizer::from_file(bert_fixtures().join("base/tokenizer.json")).unwrap();
    let sentences: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(bert_fixtures().join("sentences.json")).unwrap(),
    )
    .unwrap();
    let ids = r["input_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec2::<u32>()
        .unwrap();
    for (s, row) in sentences.iter().zip(ids) {
        let enc = tok.encode(s.as_str(), true).unwrap();
        let want: Vec<u32> = row.into_iter().take(enc.get_ids().len()).collect();
        assert_eq!(enc.get_ids(), want.as_slice(), "{s}");
    }
}

#[test]
fn missing_tensor_and_wrong_shape_are_named() {
    use peftc::runtime::models::source::LoadError;
    let mut src = tiny_source();
    src.tensors
        .remove("bert.encoder.layer.1.attention.self.key.weight");
    let err = BertModel::load(&src, &tiny_config(), BertLoadConfig::default()).unwrap_err();
    assert!(
        matches!(&err, LoadError::MissingTensor { name, .. } if name == "bert.encoder.layer.1.attention.self.key.weight"),
        "{err}"
    );
    let mut src = tiny_source();
    let t = candle_core::Tensor::zeros((48, 33), DType::F32, &candle_core::Device::Cpu).unwrap();
    src.tensors
        .insert("bert.encoder.layer.0.intermediate.dense.weight".into(), t);
    let err = BertModel::load(&src, &tiny_config(), BertLoadConfig::default()).unwrap_err();
    assert!(
        matches!(&err, LoadError::ShapeMismatch { expected, found, .. } if expected == &vec![48, 32] && found == &vec![48, 33]),
        "{err}"
    );
}

#[test]
fn config_errors_name_the_problem() {
    use peftc::runtime::models::bert_config::{BertConfig, BertConfigError};
    let bad = r#"{"model_type":"gpt2","vocab_size":1,"hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":4}"#;
    let err = BertConfig::from_json(bad, "x/config.json").unwrap_err();
    assert!(matches!(&err, BertConfigError::Invalid { message, .. } if message.contains("gpt2")));
    let err = BertConfig::from_json("{", "x/config.json").unwrap_err();
    assert!(matches!(err, BertConfigError::Parse { .. }));
    let cfg = tiny_config();
    assert_eq!(
        (cfg.num_labels, cfg.hidden_size, cfg.num_hidden_layers),
        (3, 32, 2)
    );
}
