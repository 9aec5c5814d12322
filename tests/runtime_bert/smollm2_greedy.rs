//! End-to-end check of the GGUF source: a minimal llama forward written here (f32, no KV cache;
//! the runtime's own llama model lives elsewhere) over the weights `GgufModel` serves: its
//! last-position logits equal a NumPy forward of the same file (gguf-py dequantization) within
//! 5e-4 (measured 1.8e-5), and greedy decoding of a fixed ChatML prompt with the tokenizer rebuilt from the GGUF metadata. A wrong Q/K
//! row order or a wrong tokenizer gives gibberish instead of "Paris".

use super::support::assets;
use candle_core::{DType, Device, Tensor, D};
use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel, LinearFormat};
use peftc::runtime::models::source::TensorSource;
use peftc::runtime::weight::FrozenWeight;
use std::sync::Arc;

struct Layer {
    attn_norm: Tensor,
    ffn_norm: Tensor,
    q: Arc<dyn FrozenWeight>,
    k: Arc<dyn FrozenWeight>,
    v: Arc<dyn FrozenWeight>,
    o: Arc<dyn FrozenWeight>,
    gate: Arc<dyn FrozenWeight>,
    up: Arc<dyn FrozenWeight>,
    down: Arc<dyn FrozenWeight>,
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
    let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
    x.broadcast_div(&(ms + eps).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(w)
        .unwrap()
}

fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.dim(D::Minus1).unwrap() / 2;
    let x1 = x.narrow(D::Minus1, 0, half).unwrap();
    let x2 = x.narrow(D::Minus1, half, half).unwrap();
    let rot = Tensor::cat(&[&x2.neg().unwrap(), &x1], D::Minus1).unwrap();
    (x.broadcast_mul(cos).unwrap() + rot.broadcast_mul(sin).unwrap()).unwrap()
}

#[test]
fn smollm2_gguf_logits_match_numpy_and_greedy_decoding_answers() {
    let path = assets().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        println!(
            "skipped: {} not found (run scripts/fetch-assets.sh)",
            path.display()
        );
        return;
    }
    let dev = Device::Cpu;
    // Dense f32 linears: candle's Q4_1 CPU kernel is several times slower than f32 at these shapes.
    let g = GgufModel::open(
        &path,
        &dev,
        GgufLoadConfig {
            linear_format: LinearFormat::Dense,
        },
    )
    .unwrap();
    let cfg = g.config_json().unwrap();
    let n = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let (layers_n, d, heads, kv) = (
        n("num_hidden_layers"),
        n("hidden_size"),
        n("num_attention_heads"),
        n("num_key_value_heads"),
    );
    let hd = d / heads;
    let eps = cfg["rms_norm_eps"].as_f64().unwrap();
    let theta = cfg["rope_theta"].as_f64().unwrap();
    let emb = g.tensor("model.embed_tokens.weight", DType::F32).unwrap();
    let norm = g.tensor("model.norm.weight", DType::F32).unwrap();
    let lin = |i: usize, m: &str| {
        g.linear(&format!("model.layers.{i}.{m}.weight"), DType::F32)
            .unwrap()
    };
    let layers: Vec<Layer> = (0..layers_n)
        .map(|i| Layer {
            attn_norm: g
                .tensor(
                    &format!("model.layers.{i}.input_layernorm.weight"),
                    DType::F32,
                )
                .unwrap(),
            ffn_norm: g
                .tensor(
                    &format!("model.layers.{i}.post_attention_layernorm.weight"),
                    DType::F32,
                )
                .unwrap(),
            q: lin(i, "self_attn.q_proj"),
            k: lin(i, "self_attn.k_proj"),
            v: lin(i, "self_attn.v_proj"),
            o: lin(i, "self_attn.o_proj"),
            gate: lin(i, "mlp.gate_proj"),
            up: lin(i, "mlp.up_proj"),
            down: lin(i, "mlp.down_proj"),
        })
        .collect();
    let tok = g.tokenizer().unwrap();
    let eos = tok.token_to_id("<|im_end|>").unwrap();
    let prompt = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
                  <|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n";
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| theta.powf(-2.0 * i as f64 / hd as f64) as f32)
        .collect();
    // Last-position logits `[vocab]` of a token sequence.
    let forward = |ids: &[u32]| -> Tensor {
        let s = ids.len();
        let pos: Vec<f32> = (0..s)
            .flat_map(|p| inv.iter().map(move |f| p as f32 * f))
            .collect();
        let freqs = Tensor::from_vec(pos, (s, hd / 2), &dev).unwrap();
        let freqs = Tensor::cat(&[&freqs, &freqs], 1).unwrap();
        let (cos, sin) = (freqs.cos().unwrap(), freqs.sin().unwrap());
        let mask: Vec<f32> = (0..s)
            .flat_map(|i| (0..s).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let mask = Tensor::from_vec(mask, (s, s), &dev).unwrap();
        let input = Tensor::new(ids, &dev).unwrap();
        let mut x = emb.index_select(&input, 0).unwrap().unsqueeze(0).unwrap();
        for l in &layers {
            let h = rms_norm(&x, &l.attn_norm, eps);
            let split = |t: Tensor, nh: usize| {
                t.reshape((1, s, nh, hd))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let q = rope(&split(l.q.forward(&h).unwrap(), heads), &cos, &sin);
            let k = rope(&split(l.k.forward(&h).unwrap(), kv), &cos, &sin);
            let v = split(l.v.forward(&h).unwrap(), kv);
            let rep = |t: Tensor| {
                let t = t
                    .unsqueeze(2)
                    .unwrap()
                    .repeat((1, 1, heads / kv, 1, 1))
                    .unwrap();
                t.reshape((1, heads, s, hd)).unwrap()
            };
            let (k, v) = (rep(k), rep(v));
            let att = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt())
                .unwrap()
                .broadcast_add(&mask)
                .unwrap();
            let att = candle_nn::ops::softmax(&att, D::Minus1).unwrap();
            let ctx = att
                .matmul(&v)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((1, s, d))
                .unwrap();
            x = (x + l.o.forward(&ctx).unwrap()).unwrap();
            let h = rms_norm(&x, &l.ffn_norm, eps);
            let ff =
                (l.gate.forward(&h).unwrap().silu().unwrap() * l.up.forward(&h).unwrap()).unwrap();
            x = (x + l.down.forward(&ff).unwrap()).unwrap();
        }
        let last = rms_norm(
            &x.narrow(1, s - 1, 1).unwrap().squeeze(1).unwrap(),
            &norm,
            eps,
        );
        let logits = last.matmul(&emb.t().unwrap()).unwrap();
        logits.squeeze(0).unwrap()
    };

    // Logits against the NumPy reference (tests/parity/make_real_references.py).
    let r: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            super::support::repo().join("tests/fixtures/real/smollm2_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let f = &r["forward"];
    let ref_ids: Vec<u32> = serde_json::from_value(f["ids"].clone()).unwrap();
    assert_eq!(
        tok.encode("The capital of France is", false)
            .unwrap()
            .get_ids(),
        ref_ids.as_slice()
    );
    let logits = forward(&ref_ids);
    let first: Vec<f32> = serde_json::from_value(f["logits_first64"].clone()).unwrap();
    let d = super::support::max_abs_diff(
        &logits.narrow(0, 0, 64).unwrap(),
        &Tensor::new(first, &dev).unwrap(),
    );
    println!("SmolLM2 logits vs NumPy: max abs diff {d}");
    assert!(d < 5e-4, "logits differ from NumPy by {d}");
    let argmax = logits.argmax(0).unwrap().to_scalar::<u32>().unwrap();
    assert_eq!(argmax as u64, f["argmax"].as_u64().unwrap());
    let lse = candle_nn::ops::log_softmax(&logits, 0)
        .unwrap()
        .get(argmax as usize)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let want = (f["max"].as_f64().unwrap() - f["logsumexp"].as_f64().unwrap()) as f32;
    assert!(
        (lse - want).abs() < 1e-3,
        "log-prob of the argmax {lse} vs {want}"
    );

    // Greedy decoding of a ChatML prompt.
    let mut ids = tok.encode(prompt, false).unwrap().get_ids().to_vec();
    let start = ids.len();
    for _ in 0..8 {
        let next = forward(&ids).argmax(0).unwrap().to_scalar::<u32>().unwrap();
        if next == eos {
            break;
        }
        ids.push(next);
    }
    let answer = tok.decode(&ids[start..], true).unwrap();
    println!("SmolLM2 answer: {answer:?}");
    assert!(answer.contains("Paris"), "answer: {answer:?}");
}
