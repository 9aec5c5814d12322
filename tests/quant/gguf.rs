//! GGUF tensors come back as frozen weights in their stored GGML type (no re-quantization).

use super::gradients::randn;
use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
use candle_core::DType;
use peftc::runtime::quant::{GgufWeights, QuantError};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[test]
fn gguf_weights_keep_their_ggml_type() {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let q = QTensor::quantize(&randn(&mut rng, &[64, 256], 0.05), GgmlDType::Q4K).unwrap();
    let k = QTensor::quantize(&randn(&mut rng, &[32, 256], 0.05), GgmlDType::Q8_0).unwrap();
    let n = QTensor::quantize(&randn(&mut rng, &[256], 1.0), GgmlDType::F32).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let mut f = std::fs::File::create(&path).unwrap();
    let tensors = [
        ("blk.0.attn_q.weight", &q),
        ("blk.0.attn_k.weight", &k),
        ("blk.0.attn_norm.weight", &n),
    ];
    gguf_file::write(&mut f, &[], &tensors).unwrap();
    drop(f);

    let g = GgufWeights::open(&path).unwrap();
    assert_eq!(g.names().len(), 3);
    let wq = g.linear("blk.0.attn_q.weight").unwrap();
    assert_eq!((wq.format(), wq.dims()), ("q4k", (64, 256)));
    let want = q.dequantize(&candle_core::Device::Cpu).unwrap();
    let got = wq.dequantize(DType::F32).unwrap();
    let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    assert_eq!(g.linear("blk.0.attn_k.weight").unwrap().format(), "q8_0");
    assert_eq!(
        g.tensor("blk.0.attn_norm.weight", DType::F32)
            .unwrap()
            .dims(),
        [256]
    );
    // 1-D tensors are not linear weights; missing names are typed errors naming the tensor.
    assert!(matches!(
        g.linear("blk.0.attn_norm.weight").err().unwrap(),
        QuantError::UnsupportedShape { .. }
    ));
    assert!(g.linear("nope").err().unwrap().to_string().contains("nope"));
}
