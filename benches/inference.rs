//! Inference latency of the llama implementation on tiny-llama shapes (hidden 512, 8 layers,
//! GQA 8/4, vocab 8000), batch 1 and 8, sequence 128 (one prefill through the KV-cache decoder):
//! base, LoRA unmerged (r 16 on q,v), LoRA merged, three LoRA adapters active at once.
//! Prints each variant's median and its ratio to the base, measured round-robin in the same run
//! (so that load from other processes hits every variant alike).
//!
//! Run: `cargo bench --bench inference` (add `--profile dev` on machines where release builds
//! of candle are too slow; dependencies are optimised in that profile too).

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, Criterion};
use peftc::runtime::adapters::attach::{attach_lora, merge_adapter, set_active, LoraConfig};
use peftc::runtime::adapters::lora::{LoraInit, LoraSpec};
use peftc::runtime::adapters::targets::TargetModules;
use peftc::runtime::models::load::{load_folder, LoadConfig, LoadedModel};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SEQ: usize = 128;
const HIDDEN: usize = 512;
const LAYERS: usize = 8;
const VOCAB: usize = 8000;
const INTER: usize = 1376;

fn write_tiny_llama(dir: &std::path::Path) {
    let dev = Device::Cpu;
    let cfg = serde_json::json!({
        "model_type": "llama", "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": INTER,
        "num_hidden_layers": LAYERS, "num_attention_heads": 8, "num_key_value_heads": 4,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 2048
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("config");
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |n: String, shape: &[usize]| {
        let v = if n.ends_with("norm.weight") {
            Tensor::ones(shape, DType::F32, &dev)
        } else {
            Tensor::randn(0f32, 0.02, shape, &dev)
        };
        t.insert(n, v.expect("tensor"));
    };
    put("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN]);
    put("model.norm.weight".into(), &[HIDDEN]);
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        put(format!("{p}.self_attn.q_proj.weight"), &[HIDDEN, HIDDEN]);
        put(
            format!("{p}.self_attn.k_proj.weight"),
            &[HIDDEN / 2, HIDDEN],
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            &[HIDDEN / 2, HIDDEN],
        );
        put(format!("{p}.self_attn.o_proj.weight"), &[HIDDEN, HIDDEN]);
        put(format!("{p}.mlp.gate_proj.weight"), &[INTER, HIDDEN]);
        put(format!("{p}.mlp.up_proj.weight"), &[INTER, HIDDEN]);
        put(format!("{p}.mlp.down_proj.weight"), &[HIDDEN, INTER]);
        put(format!("{p}.input_layernorm.weight"), &[HIDDEN]);
        put(format!("{p}.post_attention_layernorm.weight"), &[HIDDEN]);
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).expect("weights");
}

fn lora(seed: u64) -> LoraConfig {
    LoraConfig {
        spec: LoraSpec {
            r: 16,
            alpha: 32.0,
            init: LoraInit::RandomBoth { std: 0.02 },
            seed,
            ..Default::default()
        },
        target_modules: TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]),
        ..Default::default()
    }
}

fn prefill(model: &dyn LoadedModel, ids: &Tensor, mask: &Tensor, pos: &Tensor) {
    let dec = model.decoder().expect("causal");
    let mut cache = dec.new_cache();
    let logits = peftc::runtime::ops::no_grad::no_grad(|| dec.step(ids, mask, pos, &mut cache))
        .expect("step");
    std::hint::black_box(logits);
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_tiny_llama(tmp.path());
    let load = || load_folder(tmp.path(), &LoadConfig::default()).expect("load");
    let base = load();
    let mut unmerged = load();
    attach_lora(unmerged.as_adaptable_mut(), "a", &lora(1)).expect("attach");
    let mut merged = load();
    attach_lora(merged.as_adaptable_mut(), "a", &lora(1)).expect("attach");
    merge_adapter(merged.as_adaptable_mut(), "a").expect("merge");
    let mut several = load();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        attach_lora(several.as_adaptable_mut(), n, &lora(i as u64)).expect("attach");
    }
    set_active(
        several.as_adaptable_mut(),
        &[("a".into(), 1.0), ("b".into(), 0.5), ("c".into(), 0.5)],
    );
    let variants: Vec<(&str, &dyn LoadedModel)> = vec![
        ("base", base.as_ref()),
        ("lora_unmerged", unmerged.as_ref()),
        ("lora_merged", merged.as_ref()),
        ("three_adapters", several.as_ref()),
    ];
    let inputs: Vec<(usize, Tensor, Tensor, Tensor)> = [1usize, 8]
        .iter()
        .map(|&batch| {
            let ids: Vec<u32> = (0..batch * SEQ)
                .map(|i| ((i * 7919) % VOCAB) as u32)
                .collect();
            let ids = Tensor::from_vec(ids, (batch, SEQ), &Device::Cpu).expect("ids");
            let mask = Tensor::ones((batch, SEQ), DType::U8, &Device::Cpu).expect("mask");
            let pos = Tensor::arange(0u32, SEQ as u32, &Device::Cpu).expect("pos");
            let pos = pos
                .unsqueeze(0)
                .expect("pos")
                .repeat((batch, 1))
                .expect("pos");
            (batch, ids, mask, pos)
        })
        .collect();
    let mut group = c.benchmark_group("inference_prefill_seq128");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (batch, ids, mask, pos) in &inputs {
        for (name, model) in &variants {
            group.bench_function(format!("{name}/b{batch}"), |b| {
                b.iter(|| prefill(*model, ids, mask, pos))
            });
        }
    }
    group.finish();
    interleaved_ratios(&variants, &inputs);
}

/// Ratios to the base measured round-robin (each round times every variant once), so that a
/// change in machine load hits all variants alike; prints the median over rounds.
fn interleaved_ratios(
    variants: &[(&str, &dyn LoadedModel)],
    inputs: &[(usize, Tensor, Tensor, Tensor)],
) {
    const ROUNDS: usize = 9;
    println!("\nvariant          batch  median ms  ratio vs base (median of {ROUNDS} interleaved rounds)");
    for (batch, ids, mask, pos) in inputs {
        let mut ms: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..ROUNDS {
            let times: Vec<f64> = variants
                .iter()
                .map(|(_, m)| {
                    let t = Instant::now();
                    prefill(*m, ids, mask, pos);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            for (i, t) in times.iter().enumerate() {
                ms[i].push(*t);
                ratios[i].push(t / times[0]);
            }
        }
        for (i, (name, _)) in variants.iter().enumerate() {
            println!(
                "{name:<16} {batch:>5}  {:>9.2}  {:>6.3}",
                median(&mut ms[i]),
                median(&mut ratios[i])
            );
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
