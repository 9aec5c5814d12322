//! LoRA on a quantized base learns like LoRA on the f32 base: a 3-layer MLP of frozen linears
//! (SiLU between) with trainable rank-4 A/B on every layer, AdamW, fitting a teacher that is the
//! f32 base plus low-rank deltas, with label noise. The final loss on an NF4 (double-quantized)
//! or Q8_0 base is within 5 % of the f32 run, and every A and B gets a gradient (the ones of
//! layer 1 only through the two quantized layers above it).

use super::gradients::randn;
use candle_core::{DType, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::quant::{QuantFormat, QuantSpec};
use peftc::runtime::weight::FrozenWeight;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

const D: usize = 128;
const R: usize = 4;
const LAYERS: usize = 3;
const STEPS: usize = 120;

struct Task {
    bases: Vec<Tensor>,
    x: Tensor,
    y: Tensor,
}

fn task() -> Task {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let std = 1.0 / (D as f32).sqrt();
    let bases: Vec<Tensor> = (0..LAYERS).map(|_| randn(&mut rng, &[D, D], std)).collect();
    let x = randn(&mut rng, &[256, D], 1.0);
    let mut h = x.clone();
    for (l, w) in bases.iter().enumerate() {
        let b = randn(&mut rng, &[D, 2], 0.6);
        let a = randn(&mut rng, &[2, D], std);
        let wt = (w + b.matmul(&a).unwrap()).unwrap();
        h = h.matmul(&wt.t().unwrap()).unwrap();
        if l + 1 < LAYERS {
            h = h.silu().unwrap();
        }
    }
    let noise = randn(&mut rng, &[256, D], 0.5);
    Task {
        bases,
        x,
        y: (h + noise).unwrap(),
    }
}

/// Trains LoRA on the given frozen bases; returns (first loss, last loss, vars with gradients).
fn train(bases: &[Arc<dyn FrozenWeight>], t: &Task) -> (f32, f32, usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut vars = Vec::new();
    for _ in 0..LAYERS {
        let a = Var::from_tensor(&randn(&mut rng, &[R, D], 0.05)).unwrap();
        let b = Var::zeros((D, R), DType::F32, &candle_core::Device::Cpu).unwrap();
        vars.push((a, b));
    }
    let all: Vec<Var> = vars
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut opt = AdamW::new(
        all.clone(),
        ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let (mut first, mut last, mut with_grad) = (0f32, 0f32, 0usize);
    for step in 0..STEPS {
        let mut h = t.x.clone();
        for (l, (w, (a, b))) in bases.iter().zip(&vars).enumerate() {
            let lora = h
                .matmul(&a.as_tensor().t().unwrap())
                .unwrap()
                .matmul(&b.as_tensor().t().unwrap())
                .unwrap();
            h = (w.forward(&h).unwrap() + lora * 2.0).unwrap();
            if l + 1 < LAYERS {
                h = h.silu().unwrap();
            }
        }
        let loss = (h - &t.y).unwrap().sqr().unwrap().mean_all().unwrap();
        let grads = loss.backward().unwrap();
        if step == 0 {
            first = loss.to_scalar::<f32>().unwrap();
        }
        if step == 1 {
            // After one step B != 0, so every A and B must have a gradient.
            with_grad = all
                .iter()
                .filter(|v| grads.get(v.as_tensor()).is_some())
                .count();
        }
        last = loss.to_scalar::<f32>().unwrap();
        opt.step(&grads).unwrap();
    }
    (first, last, with_grad)
}

#[test]
fn lora_on_quantized_bases_learns_like_on_f32() {
    let t = task();
    let dense: Vec<Arc<dyn FrozenWeight>> = t
        .bases
        .iter()
        .map(|w| Arc::new(DenseWeight::new(w.clone())) as Arc<dyn FrozenWeight>)
        .collect();
    let (f0, f_end, f_grads) = train(&dense, &t);
    assert_eq!(f_grads, 2 * LAYERS);
    assert!(f_end < 0.5 * f0, "f32 run did not learn: {f0} -> {f_end}");
    for format in [QuantFormat::Nf4, QuantFormat::Q8_0] {
        let spec = QuantSpec::new(format);
        let q: Vec<Arc<dyn FrozenWeight>> = t
            .bases
            .iter()
            .map(|w| Arc::new(spec.quantize("w", w).unwrap()) as Arc<dyn FrozenWeight>)
            .collect();
        let (q0, q_end, q_grads) = train(&q, &t);
        eprintln!("{format:?}: loss {q0:.4} -> {q_end:.4}; f32: {f0:.4} -> {f_end:.4}");
        assert_eq!(
            q_grads,
            2 * LAYERS,
            "{format:?}: every LoRA matrix gets a gradient"
        );
        assert!(
            q_end < 0.5 * q0,
            "{format:?} did not learn: {q0} -> {q_end}"
        );
        assert!(
            (q_end - f_end).abs() / f_end <= 0.05,
            "{format:?}: {q_end} vs f32 {f_end}"
        );
    }
}
