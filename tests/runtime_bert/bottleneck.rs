//! Bottleneck adapters: new adapters start near the base model, save/load round-trips in
//! AdapterHub's format, unsupported options are refused by name.

use super::support::*;
use candle_core::Device;
use peftc::runtime::adapters::bottleneck::{
    Activation, BottleneckAdapter, BottleneckConfig, BottleneckError, BottleneckKind, Init,
    SiteNames, Width,
};
use peftc::runtime::adapters::residual::ResidualHook;
use peftc::runtime::model_api::{AdaptableModel, AdaptedModel};
use std::sync::Arc;

fn names() -> SiteNames {
    SiteNames::bert("bert.", "BertForSequenceClassification")
}

#[test]
fn new_adapters_have_adapterhub_shapes_names_and_start_near_the_base() {
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let mut cfg = BottleneckConfig::new(BottleneckKind::Houlsby);
    cfg.width = Width::Size(8);
    cfg.init = Init::ZeroUp;
    let a = BottleneckAdapter::new("task", cfg, names(), 2, 32, &Device::Cpu).unwrap();
    let t = a.trainable();
    assert_eq!(t.len(), 2 * 2 * 4);
    assert_eq!(
        t[0].0,
        "bert.encoder.layer.0.attention.output.adapters.task.adapter_down.0.weight"
    );
    assert_eq!(t[0].1.dims(), [8, 32]);
    assert_eq!(a.num_parameters(), 4 * (8 * 32 + 8 + 32 * 8 + 32));
    let mut m = tiny_bert();
    m.set_residual_hook(Arc::new(a));
    let logits = m.classify(&ids, &mask, Some(&types), false).unwrap();
    // Zero up-projection: exactly the base model.
    assert!(max_abs_diff(&logits, &r["base_logits"]) < 1e-5);
    assert_eq!(m.trainable().len(), 16);

    let mut p = BottleneckConfig::new(BottleneckKind::Pfeiffer);
    p.width = Width::ReductionFactor(16.0);
    let a = BottleneckAdapter::new("p", p, names(), 2, 32, &Device::Cpu).unwrap();
    let t = a.trainable();
    assert_eq!(t.len(), 2 * 4, "Pfeiffer: feed-forward site only");
    assert_eq!(
        t[0].0,
        "bert.encoder.layer.0.output.adapters.p.adapter_down.0.weight"
    );
    assert_eq!(t[0].1.dims(), [2, 32]);
}

#[test]
fn save_then_load_gives_the_same_logits_and_adapterhub_config() {
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = BottleneckConfig::new(BottleneckKind::Pfeiffer);
    cfg.width = Width::Size(5);
    cfg.activation = Activation::Gelu;
    cfg.seed = 7;
    let a = BottleneckAdapter::new("mine", cfg, names(), 2, 32, &Device::Cpu).unwrap();
    let mut m = tiny_bert();
    m.set_residual_hook(Arc::new(a.clone()));
    let before = m.classify(&ids, &mask, Some(&types), false).unwrap();
    a.save(dir.path()).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["name"], "mine");
    assert_eq!(json["config"]["mh_adapter"], false);
    assert_eq!(json["config"]["original_ln_before"], true);
    assert_eq!(json["config"]["non_linearity"], "gelu");
    let rf = json["config"]["reduction_factor"].as_f64().unwrap();
    assert_eq!((32.0 / rf).floor() as usize, 5);
    let b = BottleneckAdapter::load(dir.path(), names(), 2, &Device::Cpu).unwrap();
    assert_eq!(b.config().width.units(32), 5);
    let mut m2 = tiny_bert();
    m2.set_residual_hook(Arc::new(b));
    let after = m2.classify(&ids, &mask, Some(&types), false).unwrap();
    assert!(max_abs_diff(&before, &after) < 1e-6);
}

#[test]
fn unsupported_adapterhub_options_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = bert_fixtures().join("houlsby");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("adapter_config.json")).unwrap())
            .unwrap();
    json["config"]["ln_after"] = serde_json::json!(true);
    std::fs::write(dir.path().join("adapter_config.json"), json.to_string()).unwrap();
    std::fs::copy(
        src.join("adapter.safetensors"),
        dir.path().join("adapter.safetensors"),
    )
    .unwrap();
    let err = BottleneckAdapter::load(dir.path(), names(), 2, &Device::Cpu).unwrap_err();
    assert!(
        matches!(&err, BottleneckError::Unsupported { option, .. } if option == "ln_after"),
        "{err}"
    );
    // Wrong names (a llama layout on a BERT adapter) name the missing tensor.
    let err = BottleneckAdapter::load(
        &src,
        SiteNames::llama("llama", "LlamaForCausalLM"),
        2,
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(
        matches!(&err, BottleneckError::Tensor { name, .. } if name.starts_with("model.layers.0.attention_adapters.adapters.houlsby")),
        "{err}"
    );
}

fn peftc_saved_houlsby() -> BottleneckAdapter {
    let mut cfg = BottleneckConfig::new(BottleneckKind::Houlsby);
    cfg.width = Width::Size(6); // reduction factor 32/6: AdapterHub must floor it back to 6
    cfg.activation = Activation::Silu;
    cfg.seed = 11;
    // Larger weights than the N(0, 0.02) init so the adapter moves the logits visibly.
    let a = BottleneckAdapter::new("peftc", cfg, names(), 2, 32, &Device::Cpu).unwrap();
    for (_, v) in a.trainable() {
        v.set(&(v.as_tensor() * 15.0).unwrap()).unwrap();
    }
    a
}

/// The reverse direction: an adapter saved by peftc (committed under
/// `tests/fixtures/parity/bert/peftc_houlsby/`, regenerated with `PEFTC_REGEN_FIXTURES=1`)
/// was loaded by AdapterHub (`tests/parity/check_peftc_bottleneck.py`), whose logits are
/// committed as `peftc_houlsby_logits.safetensors`; peftc gives the same logits, and saving
/// again gives the committed weights.
#[test]
fn adapter_saved_by_peftc_loads_in_adapterhub_with_the_same_logits() {
    let dir = bert_fixtures().join("peftc_houlsby");
    let a = peftc_saved_houlsby();
    if std::env::var_os("PEFTC_REGEN_FIXTURES").is_some() {
        a.save(&dir).unwrap();
    }
    let tmp = tempfile::tempdir().unwrap();
    a.save(tmp.path()).unwrap();
    let mine = candle_core::safetensors::load(tmp.path().join("adapter.safetensors"), &Device::Cpu)
        .unwrap();
    let committed =
        candle_core::safetensors::load(dir.join("adapter.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(mine.len(), committed.len());
    for (k, t) in &mine {
        assert_eq!(max_abs_diff(t, &committed[k]), 0.0, "{k}");
    }
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let mut m = tiny_bert();
    m.set_residual_hook(Arc::new(
        BottleneckAdapter::load(&dir, names(), 2, &Device::Cpu).unwrap(),
    ));
    let got = m.classify(&ids, &mask, Some(&types), false).unwrap();
    let py = candle_core::safetensors::load(
        bert_fixtures().join("peftc_houlsby_logits.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let d = max_abs_diff(&got, &py["logits"]);
    assert!(
        d < 1e-4,
        "AdapterHub's logits for the peftc-saved adapter differ by {d}"
    );
    assert!(
        max_abs_diff(&got, &r["base_logits"]) > 1e-2,
        "the adapter must matter"
    );
}

/// A bf16 model with f32 adapter parameters runs (the adapter computes in the activations'
/// dtype) and stays close to the f32 reference.
#[test]
fn bf16_model_with_f32_adapter_runs_close_to_the_reference() {
    use peftc::runtime::models::bert::{BertLoadConfig, BertModel};
    let r = reference();
    let (ids, mask, types) = batch(&r);
    let opts = BertLoadConfig {
        dtype: candle_core::DType::BF16,
        ..BertLoadConfig::default()
    };
    let mut m = BertModel::load(&tiny_source(), &tiny_config(), opts).unwrap();
    m.set_residual_hook(Arc::new(
        BottleneckAdapter::load(&bert_fixtures().join("houlsby"), names(), 2, &Device::Cpu)
            .unwrap(),
    ));
    let logits = m.classify(&ids, &mask, Some(&types), false).unwrap();
    assert_eq!(logits.dtype(), candle_core::DType::BF16);
    let d = max_abs_diff(&logits, &r["houlsby_logits"]);
    println!("bf16 houlsby logits vs f32 reference: {d}");
    assert!(d < 0.05, "bf16 logits off by {d}");
}
