//! Merging a LoRA delta into a quantized base: dequantize + add, kept dense or re-quantized.

use super::gradients::randn;
use candle_core::{DType, Tensor};
use peftc::runtime::quant::{merge_delta, MergeTarget, QuantError, QuantSpec};
use peftc::runtime::weight::FrozenWeight;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn merge_into_nf4_keeps_dense_or_requantizes() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let w = randn(&mut rng, &[64, 128], 0.05);
    let base = QuantSpec::nf4().quantize("q_proj", &w).unwrap();
    let b = randn(&mut rng, &[64, 4], 0.1);
    let a = randn(&mut rng, &[4, 128], 0.1);
    let delta = (b.matmul(&a).unwrap() * 2.0).unwrap(); // scale * B A
    let expected = (base.dequantize(DType::F32).unwrap() + &delta).unwrap();

    let dense = merge_delta("q_proj", &base, &delta, &MergeTarget::Dense(DType::F32)).unwrap();
    assert_eq!(dense.format(), "f32");
    assert_eq!(
        values(&dense.dequantize(DType::F32).unwrap()),
        values(&expected)
    );

    let bf16 = merge_delta("q_proj", &base, &delta, &MergeTarget::Dense(DType::BF16)).unwrap();
    assert_eq!(bf16.format(), "bf16");
    assert_eq!(bf16.storage_bytes(), 64 * 128 * 2);

    let re = merge_delta(
        "q_proj",
        &base,
        &delta,
        &MergeTarget::Requantize(QuantSpec::nf4()),
    )
    .unwrap();
    assert_eq!(re.format(), "nf4");
    let direct = QuantSpec::nf4().quantize("q_proj", &expected).unwrap();
    assert_eq!(
        values(&re.dequantize(DType::F32).unwrap()),
        values(&direct.dequantize(DType::F32).unwrap())
    );
    // Re-quantizing costs accuracy, bounded by NF4's step: the planner evaluates again after it.
    let err = (re.dequantize(DType::F32).unwrap() - &expected)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap();
    let amax = expected
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(err.to_scalar::<f32>().unwrap() <= 0.2 * amax);
}

#[test]
fn merge_with_a_wrong_delta_shape_is_a_typed_error() {
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let base = QuantSpec::nf4()
        .quantize("v_proj", &randn(&mut rng, &[16, 64], 0.05))
        .unwrap();
    let delta = randn(&mut rng, &[64, 16], 0.05);
    let err = merge_delta("v_proj", &base, &delta, &MergeTarget::Dense(DType::F32))
        .err()
        .unwrap();
    assert!(matches!(err, QuantError::MergeShape { .. }));
    assert!(err.to_string().contains("v_proj"));
}
