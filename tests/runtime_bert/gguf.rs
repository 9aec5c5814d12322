//! The GGUF source without a real file: name mapping, the Q/K row order, and the quantized
//! frozen weight's forward and backward.

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor, Var};
use peftc::runtime::models::gguf::{hf_name_to_gguf, stored_row, QuantizedWeight, RowOrder};
use peftc::runtime::weight::FrozenWeight;
use std::sync::Arc;

#[test]
fn hf_names_map_to_gguf_names() {
    let cases = [
        (
            "model.embed_tokens.weight",
            "token_embd.weight",
            RowOrder::Plain,
        ),
        ("model.norm.weight", "output_norm.weight", RowOrder::Plain),
        (
            "model.layers.3.self_attn.q_proj.weight",
            "blk.3.attn_q.weight",
            RowOrder::PermutedQ,
        ),
        (
            "model.layers.3.self_attn.k_proj.bias",
            "blk.3.attn_k.bias",
            RowOrder::PermutedK,
        ),
        (
            "model.layers.0.self_attn.o_proj.weight",
            "blk.0.attn_output.weight",
            RowOrder::Plain,
        ),
        (
            "model.layers.12.mlp.down_proj.weight",
            "blk.12.ffn_down.weight",
            RowOrder::Plain,
        ),
        (
            "model.layers.1.post_attention_layernorm.weight",
            "blk.1.ffn_norm.weight",
            RowOrder::Plain,
        ),
    ];
    for (hf, g, order) in cases {
        assert_eq!(hf_name_to_gguf(hf), Some((g.to_string(), order)), "{hf}");
    }
    assert_eq!(hf_name_to_gguf("model.layers.x.mlp.up_proj.weight"), None);
    assert_eq!(hf_name_to_gguf("bert.pooler.dense.weight"), None);
}

/// numpy: `w.reshape(heads, hd // 2, 2, in).swapaxes(1, 2).reshape(o, in)`; HF row r comes
/// from stored row `stored_row(r)`.
#[test]
fn row_order_undoes_llama_cpp_permutation() {
    // 2 heads of width 6, one column holding the stored row index.
    let hd = 6;
    let stored: Vec<usize> = (0..12).collect();
    // reshape (2, 3, 2) -> swap(1, 2) -> (2, 2, 3) -> flatten
    let mut hf = Vec::new();
    for h in 0..2 {
        for j in 0..2 {
            for i in 0..3 {
                hf.push(stored[h * 6 + i * 2 + j]);
            }
        }
    }
    let ours: Vec<usize> = (0..12).map(|r| stored_row(r, hd)).collect();
    assert_eq!(ours, hf);
    assert_eq!(ours, [0, 2, 4, 1, 3, 5, 6, 8, 10, 7, 9, 11]);
}

/// Forward on candle's quantized kernel; backward `grad @ dequantize(W)` to the input only.
#[test]
fn quantized_weight_gives_the_input_its_gradient() {
    let dev = Device::Cpu;
    let w = Tensor::randn(0f32, 0.5, (48, 64), &dev).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
    let qw = QuantizedWeight::new(Arc::new(q));
    assert_eq!(qw.dims(), (48, 64));
    assert_eq!(qw.format(), "q8_0");
    assert_eq!(qw.storage_bytes(), 48 * 64 / 32 * 34);
    let wd = qw.dequantize(candle_core::DType::F32).unwrap();
    let x = Var::randn(0f32, 1.0, (2, 5, 64), &dev).unwrap();
    let y = qw.forward(x.as_tensor()).unwrap();
    assert_eq!(y.dims(), [2, 5, 48]);
    let dense = x.as_tensor().broadcast_matmul(&wd.t().unwrap()).unwrap();
    let rel = ((&y - &dense)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
        / dense
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap())
    .sqrt();
    assert!(rel < 2e-2, "quantized forward off by {rel}");
    let probe = Tensor::randn(0f32, 1.0, (2, 5, 48), &dev).unwrap();
    let grads = (y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let gx = grads
        .get(x.as_tensor())
        .expect("the input must receive a gradient");
    let want = probe.broadcast_matmul(&wd).unwrap();
    let d = (gx - want)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(d < 1e-4, "input gradient off by {d}");
}
