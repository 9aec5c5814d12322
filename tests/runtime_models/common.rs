//! Shared helpers: fixture paths, loading reference tensors, comparing logits on real tokens.

use candle_core::{DType, Device, Tensor};
use peftc::runtime::model_api::AdaptedModel;
use std::collections::HashMap;
use std::path::PathBuf;

pub fn parity_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

pub struct Reference {
    pub tensors: HashMap<String, Tensor>,
    pub input_ids: Tensor,
    pub mask: Tensor,
}

pub fn reference(arch: &str) -> Reference {
    let path = parity_dir().join(arch).join("reference.safetensors");
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .expect("reference fixture is committed");
    let input_ids = tensors["input_ids"].to_dtype(DType::U32).expect("ids");
    let mask = tensors["attention_mask"].to_dtype(DType::U8).expect("mask");
    Reference {
        tensors,
        input_ids,
        mask,
    }
}

/// Largest |a - b| over every element.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Largest |a - b| over positions where the mask is 1.
pub fn max_diff_on_tokens(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let d = (a - b).unwrap().abs().unwrap().broadcast_mul(&m).unwrap();
    d.max_all().unwrap().to_scalar::<f32>().unwrap()
}

/// Asserts that the model's logits equal reference `key` within 1e-4.
pub fn assert_logits(model: &dyn AdaptedModel, r: &Reference, key: &str, what: &str) {
    let logits = model
        .forward(&r.input_ids, &r.mask, false)
        .expect("forward");
    let diff = max_diff_on_tokens(&logits, &r.tensors[key], &r.mask);
    assert!(diff < 1e-4, "{what}: logits differ from `{key}` by {diff}");
}
