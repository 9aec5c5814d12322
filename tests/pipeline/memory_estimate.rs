//! The checker's memory estimate against the measured peak: a random llama-shaped model big
//! enough that activations, not the process floor, dominate (hidden 256, 4 layers, batch
//! 16 x 128: about 0.5 GiB), trained for two steps by a child `peftc run`, which prints the
//! peak resident set of its train stage (VmHWM while it trained) next to the estimate. The
//! ratio must stay within 20%. Linux only (elsewhere no peak is measured).

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

const HIDDEN: usize = 256;
const INTER: usize = 688;
const LAYERS: usize = 4;
const VOCAB: usize = 128;

fn project(dir: &Path) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama/model");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), model.join(f)).unwrap();
    }
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": LAYERS,
        "num_attention_heads": 4, "num_key_value_heads": 4,
        "vocab_size": VOCAB, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 2, "tie_word_embeddings": false,
        "hidden_act": "silu", "rope_theta": 10000.0
    });
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    let dev = Device::Cpu;
    let mut w: HashMap<String, Tensor> = HashMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut rand = |name: String, shape: &[usize]| {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|_| rng.gen_range(-0.05f32..0.05)).collect();
        w.insert(name, Tensor::from_vec(data, shape, &dev).unwrap());
    };
    rand("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN]);
    rand("lm_head.weight".into(), &[VOCAB, HIDDEN]);
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for n in ["q", "k", "v", "o"] {
            rand(format!("{p}.self_attn.{n}_proj.weight"), &[HIDDEN, HIDDEN]);
        }
        rand(format!("{p}.mlp.gate_proj.weight"), &[INTER, HIDDEN]);
        rand(format!("{p}.mlp.up_proj.weight"), &[INTER, HIDDEN]);
        rand(format!("{p}.mlp.down_proj.weight"), &[HIDDEN, INTER]);
    }
    let mut norms = vec!["model.norm.weight".to_string()];
    for l in 0..LAYERS {
        norms.push(format!("model.layers.{l}.input_layernorm.weight"));
        norms.push(format!("model.layers.{l}.post_attention_layernorm.weight"));
    }
    for n in norms {
        w.insert(n, Tensor::ones(HIDDEN, DType::F32, &dev).unwrap());
    }
    candle_core::safetensors::save(&w, model.join("model.safetensors")).unwrap();
    // Rows longer than 128 tokens, so every batch is 16 x 128.
    let mut rows = String::new();
    for i in 0..32 {
        let text =
            format!("row {i}: ") + &"the quick brown fox jumps over the lazy dog. ".repeat(12);
        rows.push_str(&serde_json::json!({ "text": text }).to_string());
        rows.push('\n');
    }
    std::fs::write(dir.join("data.jsonl"), rows).unwrap();
    let pipeline = r#"model tiny = local("model")

dataset d = jsonl("data.jsonl") {
  text    = field("text")
  max_len = 128
}

adapter a = lora { r = 8, alpha = 16, dropout = 0.1, targets = all_linear }

train t {
  model     = tiny
  adapters  = [a]
  data      = d
  max_steps = 2
  batch     = 16
  lr        = 1e-3
}
"#;
    std::fs::write(dir.join("pipeline.peft"), pipeline).unwrap();
}

#[test]
fn the_memory_estimate_is_within_20_percent_of_the_measured_peak() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_peftc"))
        .arg("run")
        .arg(dir.path().join("pipeline.peft"))
        .env("NO_COLOR", "1")
        .env_remove("PEFTC_CACHE_DIR")
        .output()
        .expect("run peftc");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("memory train.t:"))
        .unwrap_or_else(|| panic!("no memory line in:\n{text}"));
    // The whole batch is 128 tokens long, so the estimate is the check's (at max_len).
    assert!(!line.contains("longest batch"), "{line}");
    let ratio: f64 = line
        .rsplit("measured / estimated = ")
        .next()
        .and_then(|r| r.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no ratio in `{line}`"));
    assert!((0.8..=1.2).contains(&ratio), "{line}");
    // And the peak is well above the process floor (20 MiB): activations are what is measured.
    let measured = line
        .split("peak resident ")
        .nth(1)
        .and_then(|r| r.split(" measured").next())
        .unwrap_or_else(|| panic!("no measured peak in `{line}`"));
    let (value, unit) = measured.split_once(' ').unwrap_or((measured, ""));
    let mib = value.parse::<f64>().unwrap_or(0.0) * if unit == "GiB" { 1024.0 } else { 1.0 };
    assert!(unit != "KiB" && mib > 200.0, "{line}");
}
