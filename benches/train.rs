//! Step time of the training loop (`peftc::runtime::train::train`: forward, causal LM loss,
//! backward, AdamW) on the runtime's own llama (`src/runtime/models/llama.rs`) at a llama
//! shape (hidden 512, 8 layers, 8 heads, MLP 1376, vocab 8000, untied head), random weights
//! written once as a Hugging Face folder and loaded by `load_folder`, LoRA r 16 (alpha 32)
//! attached by `attach_lora` on q,v or on every linear layer, batch 8 x 128 by default.
//!
//! The side-by-side comparison with transformers + PEFT is `benches/train_vs_torch.py`, which
//! runs `peftc run` itself; this bench times the library's loop alone. Method: 3 warm-up steps,
//! median of 20. Prints one JSON line per case.
//!
//! Env: `PEFTC_BENCH_STEPS` (20), `PEFTC_BENCH_WARMUP` (3), `PEFTC_BENCH_BATCH` (8),
//! `PEFTC_BENCH_SEQ` (128), `PEFTC_BENCH_CASES` (`lora_qv,lora_all`). Threads: `RAYON_NUM_THREADS`.

use candle_core::{Device, Result, Tensor};
use peftc::runtime::adapters::attach::{attach_lora, LoraConfig};
use peftc::runtime::adapters::lora::LoraSpec;
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::batch::Example;
use peftc::runtime::models::load::{load_folder, LoadConfig, LoadedModel};
use peftc::runtime::train::{
    train, AdamWConfig, OptimizerConfig, Progress, Resume, ScheduleConfig, ScheduleKind,
    TrainConfig, TrainLength, TrainRun, Warmup,
};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const HIDDEN: usize = 512;
const LAYERS: usize = 8;
const HEADS: usize = 8;
const MLP: usize = 1376;
const VOCAB: usize = 8000;
const RANK: usize = 16;
const ALPHA: f64 = 32.0;

/// Writes a llama folder with random weights (uniform, std-like scale 0.02; norms 1).
fn write_model(dir: &Path, seed: u64) -> Result<()> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut rand = |r: usize, c: usize| -> Result<Tensor> {
        let v: Vec<f32> = (0..r * c)
            .map(|_| (rng.gen::<f32>() - 0.5) * 0.04)
            .collect();
        Tensor::from_vec(v, (r, c), &Device::Cpu)
    };
    let mut tensors = vec![
        (
            "model.embed_tokens.weight".to_string(),
            rand(VOCAB, HIDDEN)?,
        ),
        ("lm_head.weight".to_string(), rand(VOCAB, HIDDEN)?),
        (
            "model.norm.weight".to_string(),
            Tensor::ones(HIDDEN, candle_core::DType::F32, &Device::Cpu)?,
        ),
    ];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        for (name, out, inp) in [
            ("self_attn.q_proj", HIDDEN, HIDDEN),
            ("self_attn.k_proj", HIDDEN, HIDDEN),
            ("self_attn.v_proj", HIDDEN, HIDDEN),
            ("self_attn.o_proj", HIDDEN, HIDDEN),
            ("mlp.gate_proj", MLP, HIDDEN),
            ("mlp.up_proj", MLP, HIDDEN),
            ("mlp.down_proj", HIDDEN, MLP),
        ] {
            tensors.push((format!("{p}.{name}.weight"), rand(out, inp)?));
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            tensors.push((
                format!("{p}.{norm}.weight"),
                Tensor::ones(HIDDEN, candle_core::DType::F32, &Device::Cpu)?,
            ));
        }
    }
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": MLP,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "torch_dtype": "float32",
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(())
}

/// The runtime's llama from `dir` with a LoRA on q,v (or every linear layer).
fn model(
    dir: &Path,
    all_linear: bool,
) -> std::result::Result<Box<dyn LoadedModel>, Box<dyn std::error::Error>> {
    let mut model = load_folder(dir, &LoadConfig::default())?;
    let lora = LoraConfig {
        spec: LoraSpec {
            r: RANK,
            alpha: ALPHA,
            ..LoraSpec::default()
        },
        target_modules: if all_linear {
            TargetModules::AllLinear
        } else {
            TargetModules::Names(vec!["q_proj".into(), "v_proj".into()])
        },
        ..LoraConfig::default()
    };
    attach_lora(model.as_adaptable_mut(), "default", &lora)?;
    Ok(model)
}

struct StepTimes {
    last: Instant,
    times: Vec<f64>,
}

impl Progress for StepTimes {
    fn on_step(&mut self, _: u64, _: u64, _: f64, _: f64) {
        let now = Instant::now();
        self.times.push(now.duration_since(self.last).as_secs_f64());
        self.last = now;
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let steps = env("PEFTC_BENCH_STEPS", 20);
    let warmup = env("PEFTC_BENCH_WARMUP", 3);
    let batch = env("PEFTC_BENCH_BATCH", 8);
    let seq = env("PEFTC_BENCH_SEQ", 128);
    let cases = std::env::var("PEFTC_BENCH_CASES").unwrap_or_else(|_| "lora_qv,lora_all".into());
    let folder = tempfile::tempdir()?;
    write_model(folder.path(), 0)?;
    for case in cases.split(',') {
        let model = model(folder.path(), case == "lora_all")?;
        let trainable: usize = model.trainable().iter().map(|(_, v)| v.elem_count()).sum();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let total = warmup + steps;
        let examples: Vec<Example> = (0..total * batch)
            .map(|_| {
                let ids: Vec<u32> = (0..seq).map(|_| rng.gen_range(0..VOCAB as u32)).collect();
                let labels = ids.iter().map(|&t| i64::from(t)).collect();
                Example {
                    input_ids: ids,
                    labels,
                    class_label: None,
                    packed: Vec::new(),
                }
            })
            .collect();
        let config = TrainConfig {
            length: TrainLength::Steps(total as u64),
            batch_size: batch,
            accumulate: 1,
            lr: 1e-4,
            optimizer: OptimizerConfig::AdamW(AdamWConfig::default()),
            schedule: ScheduleConfig {
                kind: ScheduleKind::Constant,
                warmup: Warmup::Steps(0),
            },
            max_grad_norm: None,
            shuffle: false,
            ..TrainConfig::default()
        };
        let cancel = AtomicBool::new(false);
        let mut times = StepTimes {
            last: Instant::now(),
            times: Vec::new(),
        };
        let summary = train(
            model.as_adaptable(),
            &examples,
            &config,
            TrainRun {
                out_dir: None,
                resume: Resume::Never,
                collate: None,
                progress: &mut times,
                cancel: &cancel,
            },
        )?;
        let mut measured: Vec<f64> = times.times.into_iter().skip(warmup).collect();
        measured.sort_by(f64::total_cmp);
        let median = measured
            .get(measured.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        println!(
            "{}",
            serde_json::json!({
                "side": "peftc",
                "case": case,
                "batch": batch,
                "seq": seq,
                "trainable": trainable,
                "median_step_s": median,
                "tokens_per_s": (batch * seq) as f64 / median,
                "peak_rss_mib": summary.memory.peak_rss_bytes.map(|b| b / (1 << 20)),
            })
        );
    }
    Ok(())
}
