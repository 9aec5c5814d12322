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

/// A tiny llama GGUF written with candle's writer: q rows stored permuted (as llama.cpp
/// writes them) come back in HF order through the source, in Q8_0; a truncated copy gives an
/// error naming the file and tensor; an unknown architecture is refused.
#[test]
fn tiny_gguf_file_serves_hf_order_and_reports_truncation() {
    use candle_core::quantized::gguf_file::{write, Value};
    use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel, LinearFormat};
    let max_abs = |t: &Tensor| {
        t.abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    use peftc::runtime::models::source::{LoadError, TensorSource};
    let dev = Device::Cpu;
    let (heads, hd, inp) = (2usize, 4usize, 32usize);
    let rows = heads * hd;
    // HF weight: row r is filled with the value r (exact in Q8_0 for a per-block scale of r/127).
    let hf: Vec<f32> = (0..rows)
        .flat_map(|r| std::iter::repeat_n(r as f32, inp))
        .collect();
    // llama.cpp storage: stored row s holds HF row r where stored_row(r) == s.
    let mut stored = vec![0f32; rows * inp];
    for r in 0..rows {
        let s = stored_row(r, hd);
        stored[s * inp..(s + 1) * inp].copy_from_slice(&hf[r * inp..(r + 1) * inp]);
    }
    let q = QTensor::quantize(
        &Tensor::from_vec(stored, (rows, inp), &dev).unwrap(),
        GgmlDType::Q8_0,
    )
    .unwrap();
    let norm = QTensor::quantize(
        &Tensor::ones(inp, candle_core::DType::F32, &dev).unwrap(),
        GgmlDType::F32,
    )
    .unwrap();
    let meta = |arch: &str| {
        vec![
            (
                "general.architecture".to_string(),
                Value::String(arch.into()),
            ),
            (
                format!("{arch}.attention.head_count"),
                Value::U32(heads as u32),
            ),
            (format!("{arch}.attention.head_count_kv"), Value::U32(1)),
            (format!("{arch}.embedding_length"), Value::U32(inp as u32)),
            (format!("{arch}.feed_forward_length"), Value::U32(64)),
            (format!("{arch}.block_count"), Value::U32(1)),
            (format!("{arch}.vocab_size"), Value::U32(10)),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    let write_file = |name: &str, arch: &str| {
        let path = dir.path().join(name);
        let m = meta(arch);
        let m: Vec<(&str, &Value)> = m.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let mut f = std::fs::File::create(&path).unwrap();
        write(
            &mut f,
            &m,
            &[
                ("blk.0.attn_q.weight", &q),
                ("blk.0.attn_norm.weight", &norm),
            ],
        )
        .unwrap();
        path
    };
    let path = write_file("tiny.gguf", "llama");
    let g = GgufModel::open(&path, &dev, GgufLoadConfig::default()).unwrap();
    let w = g
        .linear(
            "model.layers.0.self_attn.q_proj.weight",
            candle_core::DType::F32,
        )
        .unwrap();
    assert_eq!(w.format(), "q8_0");
    let got = w.dequantize(candle_core::DType::F32).unwrap();
    let want = Tensor::from_vec(hf, (rows, inp), &dev).unwrap();
    let d = max_abs(&(&got - &want).unwrap());
    assert!(d < 1e-2, "unpermuted weight off by {d}"); // f16 block scales; a wrong row is off by >= 1
    for (format, want_format, tol) in [
        (LinearFormat::Requantize(GgmlDType::Q4_0), "q4_0", 0.3f32),
        (LinearFormat::Dense, "f32", 1e-2),
    ] {
        let g2 = GgufModel::open(
            &path,
            &dev,
            GgufLoadConfig {
                linear_format: format,
            },
        )
        .unwrap();
        let w2 = g2
            .linear(
                "model.layers.0.self_attn.q_proj.weight",
                candle_core::DType::F32,
            )
            .unwrap();
        assert_eq!(w2.format(), want_format);
        let d2 = max_abs(&(w2.dequantize(candle_core::DType::F32).unwrap() - &want).unwrap());
        assert!(d2 < tol, "{want_format}: off by {d2}");
    }
    let dir_out = dir.path().join("hf");
    g.write_hf_files(&dir_out).unwrap();
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir_out.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg, g.config_json().unwrap());
    let cfg = g.config_json().unwrap();
    assert_eq!(cfg["num_key_value_heads"], 1);
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert!(matches!(
        g.tensor("model.layers.0.mlp.up_proj.weight", candle_core::DType::F32).unwrap_err(),
        LoadError::MissingTensor { name, .. } if name.contains("blk.0.ffn_up.weight")
    ));

    // Truncated: the header survives, the q weight does not.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 150]).unwrap();
    let g = GgufModel::open(&cut, &dev, GgufLoadConfig::default()).unwrap();
    let err = g
        .linear(
            "model.layers.0.self_attn.q_proj.weight",
            candle_core::DType::F32,
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cut.gguf") && msg.contains("q_proj") && msg.contains("truncated"),
        "{msg}"
    );

    // Not GGUF at all.
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"definitely not gguf").unwrap();
    let err = GgufModel::open(&junk, &dev, GgufLoadConfig::default()).unwrap_err();
    assert!(err.to_string().contains("junk.gguf"), "{err}");

    let g = GgufModel::open(
        &write_file("gemma.gguf", "gemma3"),
        &dev,
        GgufLoadConfig::default(),
    )
    .unwrap();
    let err = g.config_json().unwrap_err();
    // qwen2 is stored in HF order: no un-permutation.
    let g = GgufModel::open(
        &write_file("qwen.gguf", "qwen2"),
        &dev,
        GgufLoadConfig::default(),
    )
    .unwrap();
    let w = g
        .linear(
            "model.layers.0.self_attn.q_proj.weight",
            candle_core::DType::F32,
        )
        .unwrap();
    let stored_back = w.dequantize(candle_core::DType::F32).unwrap();
    let row1 = stored_back
        .get(1)
        .unwrap()
        .get(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        (row1 - 2.0).abs() < 1e-2,
        "qwen2 row 1 holds stored row 1 (HF row 2), got {row1}"
    );
    assert!(
        err.to_string()
            .contains("unknown GGUF architecture `gemma3`"),
        "{err}"
    );
}
