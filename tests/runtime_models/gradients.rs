//! Gradients on the training path: every trainable variable of a LoRA/DoRA-wrapped tiny llama
//! and gpt2 receives a nonzero gradient (no silent graph cut), and the gradient of the loss
//! with respect to a LoRA A matrix equals central finite differences (f64).

use super::common::{parity_dir, reference};
use candle_core::{DType, Device, Tensor, Var};
use peftc::runtime::adapters::attach::{
    attach_lora, set_active, vars_without_gradient, LoraConfig,
};
use peftc::runtime::adapters::lora::{LoraAdapter, LoraInit, LoraSpec};
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::model_api::AdaptedModel;
use peftc::runtime::models::load::{load_folder, LoadConfig};
use rand::{Rng, SeedableRng};

/// Mean next-token cross-entropy over all positions (no padding in these inputs).
fn causal_loss(model: &dyn AdaptedModel, ids: &Tensor) -> Tensor {
    let mask = ids.ones_like().unwrap().to_dtype(DType::U8).unwrap();
    let logits = model.forward(ids, &mask, true).unwrap();
    let (b, s, v) = logits.dims3().unwrap();
    let pred = logits
        .narrow(1, 0, s - 1)
        .unwrap()
        .reshape((b * (s - 1), v))
        .unwrap();
    let target = ids.narrow(1, 1, s - 1).unwrap().flatten_all().unwrap();
    candle_nn::loss::cross_entropy(&pred.to_dtype(DType::F32).unwrap(), &target).unwrap()
}

#[test]
fn every_trainable_var_gets_a_gradient() {
    for arch in ["llama", "gpt2"] {
        let mut model = load_folder(
            &parity_dir().join(arch).join("model"),
            &LoadConfig::default(),
        )
        .unwrap();
        for (name, dora) in [("lora", false), ("dora", true)] {
            let cfg = LoraConfig {
                spec: LoraSpec {
                    r: 4,
                    alpha: 8.0,
                    use_dora: dora,
                    dropout: 0.1,
                    init: LoraInit::RandomBoth { std: 0.1 },
                    ..Default::default()
                },
                target_modules: TargetModules::AllLinear,
                modules_to_save: vec!["lm_head".into()],
                ..Default::default()
            };
            let report = attach_lora(model.as_adaptable_mut(), name, &cfg).unwrap();
            assert_eq!(report.full_copies, vec!["lm_head".to_string()]);
            let vars = model.trainable();
            let per_layer = if dora { 3 } else { 2 };
            assert_eq!(
                vars.len(),
                report.adapted.len() * per_layer + 1,
                "{arch} {name}"
            );
            let ids = reference(arch).input_ids.narrow(0, 0, 1).unwrap();
            let grads = causal_loss(model.as_ref(), &ids).backward().unwrap();
            assert!(vars_without_gradient(&vars, &grads).is_empty());
            let stray = Var::zeros(3, DType::F32, &Device::Cpu).unwrap();
            assert_eq!(
                vars_without_gradient(&[("stray".into(), stray)], &grads),
                vec!["stray".to_string()]
            );
            for (key, var) in &vars {
                let g = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{arch}: no gradient for {key}"));
                let n = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(n > 0.0, "{arch}: zero gradient for {key}");
            }
            let keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
            let first = if arch == "llama" {
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"
            } else {
                "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"
            };
            assert_eq!(keys[0], first);
            assert!(keys.contains(&"base_model.model.lm_head.weight"));
            if dora {
                assert!(keys[2].ends_with("lora_magnitude_vector"), "{}", keys[2]);
            }
            set_active(model.as_adaptable_mut(), &[]);
        }
    }
}

#[test]
fn lora_a_gradient_equals_finite_differences() {
    let how = LoadConfig {
        dtype: DType::F64,
        device: Device::Cpu,
    };
    let mut model = load_folder(&parity_dir().join("llama/model"), &how).unwrap();
    let mut a_vars = Vec::new();
    // Seeded (candle's own randn is not), so every run checks the same numbers.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut normal = |rows: usize, cols: usize| -> Tensor {
        let v: Vec<f64> = (0..rows * cols)
            .map(|_| {
                let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
                0.3 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
            })
            .collect();
        Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap()
    };
    for layer in model.as_adaptable_mut().linears_mut() {
        if !(layer.path.ends_with("q_proj") || layer.path.ends_with("down_proj")) {
            continue;
        }
        let (o, i) = layer.dims();
        let a = Var::from_tensor(&normal(2, i)).unwrap();
        let b = Var::from_tensor(&normal(o, 2)).unwrap();
        a_vars.push(a.clone());
        layer.add_adapter(
            "fd",
            LoraAdapter {
                a,
                b,
                scale: 2.0,
                dropout: 0.0,
                magnitude: None,
                use_rslora: false,
            },
        );
    }
    set_active(model.as_adaptable_mut(), &[("fd".into(), 1.0)]);
    let ids = reference("llama").input_ids.narrow(0, 0, 1).unwrap();
    let loss_of = |m: &dyn AdaptedModel| -> f64 {
        let mask = ids.ones_like().unwrap().to_dtype(DType::U8).unwrap();
        let logits = m.forward(&ids, &mask, false).unwrap();
        let (b, s, v) = logits.dims3().unwrap();
        let pred = logits
            .narrow(1, 0, s - 1)
            .unwrap()
            .reshape((b * (s - 1), v))
            .unwrap();
        let target = ids.narrow(1, 1, s - 1).unwrap().flatten_all().unwrap();
        candle_nn::loss::cross_entropy(&pred, &target)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let mask = ids.ones_like().unwrap().to_dtype(DType::U8).unwrap();
    let logits = model.forward(&ids, &mask, false).unwrap();
    let (b, s, v) = logits.dims3().unwrap();
    let pred = logits
        .narrow(1, 0, s - 1)
        .unwrap()
        .reshape((b * (s - 1), v))
        .unwrap();
    let target = ids.narrow(1, 1, s - 1).unwrap().flatten_all().unwrap();
    let grads = candle_nn::loss::cross_entropy(&pred, &target)
        .unwrap()
        .backward()
        .unwrap();
    // The first layer's q_proj A (the gradient crosses both blocks) and the last down_proj A.
    for a in [&a_vars[0], &a_vars[a_vars.len() - 1]] {
        let g = grads
            .get(a.as_tensor())
            .expect("gradient")
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let base = a
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        let shape = a.as_tensor().shape().clone();
        for idx in [0, 5, base.len() / 2, base.len() - 1] {
            let eps = 1e-5;
            let mut plus = base.clone();
            plus[idx] += eps;
            a.set(&Tensor::from_vec(plus, &shape, &Device::Cpu).unwrap())
                .unwrap();
            let lp = loss_of(model.as_ref());
            let mut minus = base.clone();
            minus[idx] -= eps;
            a.set(&Tensor::from_vec(minus, &shape, &Device::Cpu).unwrap())
                .unwrap();
            let lm = loss_of(model.as_ref());
            a.set(&Tensor::from_vec(base.clone(), &shape, &Device::Cpu).unwrap())
                .unwrap();
            let fd = (lp - lm) / (2.0 * eps);
            let err = (fd - g[idx]).abs() / (1e-6 + fd.abs().max(g[idx].abs()));
            assert!(
                err < 1e-5,
                "element {idx}: autograd {} vs finite differences {fd}",
                g[idx]
            );
        }
    }
}
