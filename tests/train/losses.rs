//! Losses and collation against hand-computed numbers.

use candle_core::{Device, Tensor, Var};
use peftc::runtime::batch::{Example, IGNORE_INDEX};
use peftc::runtime::train::collate;
use peftc::runtime::train::loss::{causal_lm_loss, classification_loss};

#[test]
fn causal_loss_shifts_and_masks() {
    // vocab 3, logits per position give softmax [0.25, 0.5, 0.25] (logits ln1, ln2, ln1).
    let row = [0f32, std::f32::consts::LN_2, 0.0];
    let logits: Vec<f32> = row.iter().copied().cycle().take(2 * 3 * 3).collect();
    let logits = Tensor::from_vec(logits, (2, 3, 3), &Device::Cpu).expect("logits");
    // Shifted targets: row 0 -> [1, 0] (p .5, .25), row 1 -> [-100, 2] (p .25).
    let labels = Tensor::from_vec(vec![7i64, 1, 0, 5, IGNORE_INDEX, 2], (2, 3), &Device::Cpu)
        .expect("labels");
    let l = causal_lm_loss(&logits, &labels).expect("loss");
    assert_eq!(l.count, 3);
    let want_sum = -(0.5f64.ln() + 0.25f64.ln() + 0.25f64.ln());
    let sum = f64::from(l.sum.to_scalar::<f32>().expect("sum"));
    assert!((sum - want_sum).abs() < 1e-5, "{sum} vs {want_sum}");
    let mean = f64::from(l.mean().and_then(|m| m.to_scalar::<f32>()).expect("mean"));
    assert!((mean - want_sum / 3.0).abs() < 1e-5);
}

#[test]
fn causal_loss_refuses_out_of_vocab_labels() {
    let logits = Tensor::zeros((1, 2, 3), candle_core::DType::F32, &Device::Cpu).expect("logits");
    let labels = Tensor::from_vec(vec![0i64, 3], (1, 2), &Device::Cpu).expect("labels");
    let err = causal_lm_loss(&logits, &labels).expect_err("label 3 of vocab 3");
    assert!(
        err.to_string()
            .contains("label 3 outside the vocabulary of 3"),
        "{err}"
    );
}

#[test]
fn classification_loss_is_differentiable_cross_entropy() {
    // logits [[0, ln 3], [ln 2, 0]], labels [1, 1]: p = 3/4 and 1/3.
    let x = Var::from_tensor(
        &Tensor::from_vec(vec![0f32, 3f32.ln(), 2f32.ln(), 0.0], (2, 2), &Device::Cpu).expect("x"),
    )
    .expect("var");
    let y = Tensor::from_vec(vec![1u32, 1], 2, &Device::Cpu).expect("y");
    let l = classification_loss(x.as_tensor(), &y).expect("loss");
    let mean = l.mean().expect("mean");
    let want = -(0.75f64.ln() + (1.0f64 / 3.0).ln()) / 2.0;
    let got = f64::from(mean.to_scalar::<f32>().expect("v"));
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // d mean / d logits = (softmax - onehot) / 2
    let g = mean.backward().expect("backward");
    let gx: Vec<Vec<f32>> = g.get(x.as_tensor()).expect("grad").to_vec2().expect("g");
    let want_g = [
        [0.25 / 2.0, -0.25 / 2.0],
        [(2.0 / 3.0) / 2.0, -(2.0 / 3.0) / 2.0],
    ];
    for (r, w) in gx.iter().zip(want_g) {
        for (a, b) in r.iter().zip(w) {
            assert!((f64::from(*a) - b).abs() < 1e-6, "{gx:?}");
        }
    }
}

#[test]
fn collate_pads_right_with_mask_and_ignored_labels() {
    let exs = vec![
        Example {
            input_ids: vec![5, 6, 7],
            labels: vec![IGNORE_INDEX, 6, 7],
            class_label: None,
            packed: Vec::new(),
        },
        Example {
            input_ids: vec![9],
            labels: vec![9],
            class_label: None,
            packed: Vec::new(),
        },
    ];
    let b = collate(&exs, 2, &Device::Cpu).expect("batch");
    assert_eq!(
        b.input_ids.to_vec2::<u32>().expect("ids"),
        vec![vec![5, 6, 7], vec![9, 2, 2]]
    );
    assert_eq!(
        b.attention_mask.to_vec2::<u8>().expect("mask"),
        vec![vec![1, 1, 1], vec![1, 0, 0]]
    );
    let labels = b.labels.expect("labels").to_vec2::<i64>().expect("labels");
    assert_eq!(labels, vec![vec![-100, 6, 7], vec![9, -100, -100]]);
    assert!(b.class_labels.is_none());
    assert_eq!(b.tokens, 4);
}

#[test]
fn collate_refuses_mixed_class_labels() {
    let exs = vec![
        Example {
            input_ids: vec![1],
            labels: vec![],
            class_label: Some(1),
            packed: Vec::new(),
        },
        Example {
            input_ids: vec![2],
            labels: vec![],
            class_label: None,
            packed: Vec::new(),
        },
    ];
    let err = collate(&exs, 0, &Device::Cpu).expect_err("mixed");
    assert!(
        err.to_string()
            .contains("example 1 of the batch has no class label"),
        "{err}"
    );
}

#[test]
fn fused_cpu_cross_entropy_matches_the_composite_form() {
    use rand::{Rng, SeedableRng};
    // f32 logits take the fused op, f64 logits the log_softmax + gather form (computed in f32).
    let (b, s, v) = (3, 5, 50);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let data: Vec<f32> = (0..b * s * v).map(|_| rng.gen_range(-4.0..4.0)).collect();
    let labels: Vec<i64> = (0..b * s)
        .map(|i| {
            if i % 4 == 0 {
                IGNORE_INDEX
            } else {
                rng.gen_range(0..v as i64)
            }
        })
        .collect();
    let labels = Tensor::from_vec(labels, (b, s), &Device::Cpu).expect("labels");
    let x32 =
        Var::from_tensor(&Tensor::from_vec(data.clone(), (b, s, v), &Device::Cpu).expect("x"))
            .expect("var");
    let x64 = Var::from_tensor(
        &x32.as_tensor()
            .to_dtype(candle_core::DType::F64)
            .expect("f64"),
    )
    .expect("var");
    let l32 = causal_lm_loss(x32.as_tensor(), &labels).expect("fused");
    let l64 = causal_lm_loss(x64.as_tensor(), &labels).expect("composite");
    assert_eq!(l32.count, l64.count);
    assert_eq!(l32.count, 9); // 12 shifted targets, 3 of them (positions 4, 8, 12) ignored
    let m32 = l32.mean().expect("m");
    let m64 = l64.mean().expect("m");
    let a = f64::from(m32.to_scalar::<f32>().expect("a"));
    let c = f64::from(m64.to_scalar::<f32>().expect("c"));
    assert!((a - c).abs() < 1e-5, "{a} vs {c}");
    let g32: Vec<f32> = m32
        .backward()
        .expect("bwd")
        .get(x32.as_tensor())
        .expect("g")
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("g");
    let g64: Vec<f64> = m64
        .backward()
        .expect("bwd")
        .get(x64.as_tensor())
        .expect("g")
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .expect("g");
    let max = g32
        .iter()
        .zip(&g64)
        .map(|(x, y)| (f64::from(*x) - y).abs())
        .fold(0f64, f64::max);
    assert!(max < 1e-6, "gradient max diff {max}");
    // The last position of every row and ignored targets get no gradient.
    assert!(g32[(s - 1) * v..s * v].iter().all(|&g| g == 0.0));
}
