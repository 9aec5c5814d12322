//! AdamW, SGD (momentum, dampening, nesterov, weight decay) and LoRA+ groups step for step
//! against `torch.optim` on a fixed problem (6 steps, a new gradient and learning rate each),
//! within 1e-6. Reference: `optim_cases()` in tests/parity/make_train_fixtures.py.

use super::fixtures;
use candle_core::{Tensor, Var};
use peftc::runtime::train::optim::{param_groups, Optimizer};
use peftc::runtime::train::{AdamWConfig, DecayRule, OptimizerConfig, SgdConfig};
use std::collections::HashMap;

fn config_of(case: &serde_json::Value) -> OptimizerConfig {
    let c = &case["config"];
    let f = |k: &str, d: f64| c.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
    match case["kind"].as_str() {
        Some("adamw") => {
            let d = AdamWConfig::default();
            let (b1, b2) = match c.get("betas") {
                Some(b) => (b[0].as_f64().expect("b1"), b[1].as_f64().expect("b2")),
                None => (d.beta1, d.beta2),
            };
            OptimizerConfig::AdamW(AdamWConfig {
                beta1: b1,
                beta2: b2,
                eps: f("eps", d.eps),
                weight_decay: f("weight_decay", d.weight_decay),
            })
        }
        Some("sgd") => OptimizerConfig::Sgd(SgdConfig {
            momentum: f("momentum", 0.0),
            dampening: f("dampening", 0.0),
            weight_decay: f("weight_decay", 0.0),
            nesterov: c.get("nesterov").and_then(|v| v.as_bool()).unwrap_or(false),
        }),
        other => panic!("kind {other:?}"),
    }
}

#[test]
fn optimizers_match_torch_step_by_step() {
    let fx = fixtures::load("optim");
    let names: Vec<String> = fx["init"]
        .as_object()
        .expect("init")
        .keys()
        .cloned()
        .collect();
    let lrs: Vec<f64> = fx["lrs"]
        .as_array()
        .expect("lrs")
        .iter()
        .map(|v| v.as_f64().expect("lr"))
        .collect();
    let cases = fx["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 6);
    for case in cases {
        let params: Vec<(String, Var)> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    Var::from_tensor(&fixtures::tensor(&fx["init"][n])).expect("var"),
                )
            })
            .collect();
        let ratio = case["lora_plus_ratio"].as_f64();
        let config = config_of(case);
        let mut opt = Optimizer::new(
            config,
            param_groups(params.clone(), &config, ratio, DecayRule::All),
        );
        for (step, lr) in lrs.iter().enumerate() {
            let grads: HashMap<String, Tensor> = names
                .iter()
                .map(|n| (n.clone(), fixtures::tensor(&fx["grads"][step][n])))
                .collect();
            opt.step(&grads, *lr).expect("step");
            for (n, v) in &params {
                let got: Vec<f32> = v
                    .as_tensor()
                    .flatten_all()
                    .and_then(|t| t.to_vec1())
                    .expect("vals");
                let want = fixtures::floats(&case["after"][step][n]);
                let d = fixtures::abs_max_diff(&got, &want);
                assert!(
                    d <= 1e-6,
                    "{} step {} {n}: max diff {d}",
                    case["name"],
                    step + 1
                );
            }
        }
    }
}

#[test]
fn optimizer_state_round_trips_and_covers_only_given_params() {
    let fx = fixtures::load("optim");
    let names: Vec<String> = fx["init"]
        .as_object()
        .expect("init")
        .keys()
        .cloned()
        .collect();
    let make = || -> Vec<(String, Var)> {
        names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    Var::from_tensor(&fixtures::tensor(&fx["init"][n])).expect("var"),
                )
            })
            .collect()
    };
    let config = OptimizerConfig::AdamW(AdamWConfig::default());
    let grads = |step: usize| -> HashMap<String, Tensor> {
        names
            .iter()
            .map(|n| (n.clone(), fixtures::tensor(&fx["grads"][step][n])))
            .collect()
    };
    // Uninterrupted: 4 steps.
    let p1 = make();
    let mut o1 = Optimizer::new(
        config,
        param_groups(p1.clone(), &config, None, DecayRule::All),
    );
    for s in 0..4 {
        o1.step(&grads(s), 1e-2).expect("step");
    }
    // Two steps, state saved, a fresh optimizer loads it, two more steps.
    let p2 = make();
    let mut o2 = Optimizer::new(
        config,
        param_groups(p2.clone(), &config, None, DecayRule::All),
    );
    for s in 0..2 {
        o2.step(&grads(s), 1e-2).expect("step");
    }
    let state = o2.state();
    assert_eq!(state.tensors.len(), 2 * names.len());
    assert!(state.steps.values().all(|&s| s == 2));
    let mut o3 = Optimizer::new(
        config,
        param_groups(p2.clone(), &config, None, DecayRule::All),
    );
    o3.load_state(&state).expect("load");
    for s in 2..4 {
        o3.step(&grads(s), 1e-2).expect("step");
    }
    for ((n, a), (_, b)) in p1.iter().zip(&p2) {
        let a: Vec<f32> = a
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("a");
        let b: Vec<f32> = b
            .as_tensor()
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .expect("b");
        assert_eq!(
            a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            "{n}"
        );
    }
}

#[test]
fn hf_trainer_rule_skips_decay_for_biases_and_norms() {
    let v =
        |n: usize| Var::zeros(n, candle_core::DType::F32, &candle_core::Device::Cpu).expect("var");
    let params = vec![
        (
            "m.q.lora_A.weight".to_string(),
            Var::zeros((2, 2), candle_core::DType::F32, &candle_core::Device::Cpu).expect("var"),
        ),
        ("m.classifier.bias".to_string(), v(2)),
        ("m.LayerNorm.weight".to_string(), v(3)),
    ];
    let config = OptimizerConfig::AdamW(AdamWConfig::default());
    let names = |g: &peftc::runtime::train::optim::ParamGroup| -> Vec<String> {
        g.params.iter().map(|(n, _)| n.clone()).collect()
    };
    let groups = param_groups(params.clone(), &config, None, DecayRule::SkipBiasAndNorm);
    assert_eq!(names(&groups[0]), vec!["m.q.lora_A.weight"]);
    assert_eq!(groups[0].weight_decay, 0.01);
    assert_eq!(
        names(&groups[1]),
        vec!["m.classifier.bias", "m.LayerNorm.weight"]
    );
    assert_eq!(groups[1].weight_decay, 0.0);
    // LoRA+: 1-D parameters join group B (lr x ratio); biases and norms there take no decay.
    let groups = param_groups(params, &config, Some(16.0), DecayRule::All);
    assert_eq!(names(&groups[0]), vec!["m.q.lora_A.weight"]);
    assert!(groups[1].params.is_empty());
    assert_eq!(groups[2].lr_scale, 16.0);
    assert_eq!(groups[2].weight_decay, 0.0);
    assert_eq!(
        names(&groups[2]),
        vec!["m.classifier.bias", "m.LayerNorm.weight"]
    );
}
