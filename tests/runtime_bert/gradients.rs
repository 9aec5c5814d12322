//! Gradients through BERT: finite differences through a block, and every trainable parameter
//! (bottleneck adapters, the classifier in modules_to_save) receives a gradient.

use super::support::*;
use candle_core::{DType, Device, Tensor, Var};
use peftc::runtime::adapters::bottleneck::{
    BottleneckAdapter, BottleneckConfig, BottleneckKind, SiteNames, Width,
};
use peftc::runtime::model_api::{AdaptableModel, AdaptedModel};
use peftc::runtime::models::bert::{BertLoadConfig, BertModel};
use std::sync::Arc;

fn model_without_dropout() -> BertModel {
    let mut cfg = tiny_config();
    cfg.hidden_dropout_prob = 0.0;
    cfg.attention_probs_dropout_prob = 0.0;
    cfg.classifier_dropout = 0.0;
    let mut m = BertModel::load(&tiny_source(), &cfg, BertLoadConfig::default()).unwrap();
    let mut bc = BottleneckConfig::new(BottleneckKind::Houlsby);
    bc.width = Width::Size(4);
    bc.seed = 3;
    let a = BottleneckAdapter::new(
        "g",
        bc,
        SiteNames::bert("bert.", "BertForSequenceClassification"),
        2,
        32,
        &Device::Cpu,
    )
    .unwrap();
    m.set_residual_hook(Arc::new(a));
    m.set_classifier_trainable(true).unwrap();
    m
}

/// Fixed weights on the logits (candle's randn cannot be seeded; every run checks the same).
fn probe() -> Tensor {
    let v: Vec<f32> = (0..12)
        .map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.5 + 0.1)
        .collect();
    Tensor::from_vec(v, (4, 3), &Device::Cpu).unwrap()
}

fn loss(m: &BertModel, probe: &Tensor) -> Tensor {
    let r = reference();
    let (ids, mask, _) = batch(&r);
    let logits = m.forward(&ids, &mask, true).unwrap();
    (logits * probe).unwrap().sum_all().unwrap()
}

#[test]
fn every_trainable_parameter_gets_a_gradient() {
    let m = model_without_dropout();
    let probe = probe();
    let grads = loss(&m, &probe).backward().unwrap();
    let t = m.trainable();
    assert_eq!(t.len(), 2 * 2 * 4 + 2);
    for (name, v) in &t {
        let g = grads
            .get(v.as_tensor())
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let n = g
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(n > 0.0, "zero gradient for {name}");
    }
}

/// Central differences on entries of the first layer's attention-site adapter (its gradient
/// flows through attention, both layer norms, the GELU feed-forward, the second layer, the
/// pooler and the classifier) and of the classifier.
#[test]
fn finite_differences_match_backprop_through_a_block() {
    let m = model_without_dropout();
    let probe = probe();
    let grads = loss(&m, &probe).backward().unwrap();
    let t = m.trainable();
    let pick = |suffix: &str| -> Var {
        t.iter()
            .find(|(n, _)| n.ends_with(suffix))
            .unwrap()
            .1
            .clone()
    };
    for (var, idx) in [
        (
            pick("layer.0.attention.output.adapters.g.adapter_down.0.weight"),
            [1usize, 3usize],
        ),
        (
            pick("layer.0.attention.output.adapters.g.adapter_up.weight"),
            [5, 2],
        ),
        (
            pick("layer.1.output.adapters.g.adapter_down.0.bias"),
            [0, 2],
        ),
        (pick("classifier.weight"), [2, 7]),
    ] {
        let g = grads.get(var.as_tensor()).unwrap();
        let base = var.as_tensor().copy().unwrap();
        let flat_len = base.elem_count();
        let pos = if base.rank() == 1 {
            idx[1]
        } else {
            idx[0] * base.dim(1).unwrap() + idx[1]
        };
        let analytic = g
            .flatten_all()
            .unwrap()
            .get(pos)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap() as f64;
        let eps = 1e-2f32;
        let mut bump = vec![0f32; flat_len];
        bump[pos] = eps;
        let bump = Tensor::from_vec(bump, base.shape(), &Device::Cpu).unwrap();
        var.set(&(&base + &bump).unwrap()).unwrap();
        let up = loss(&m, &probe)
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        var.set(&(&base - &bump).unwrap()).unwrap();
        let down = loss(&m, &probe)
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        var.set(&base).unwrap();
        let numeric = (up - down) / (2.0 * eps as f64);
        let err = (numeric - analytic).abs() / analytic.abs().max(1e-2);
        assert!(
            err < 2e-2,
            "numeric {numeric} vs analytic {analytic} (rel {err})"
        );
    }
}
