//! Load test of `peftc serve` over loopback: throughput and p50 / p99 request latency for 1, 8
//! and 32 concurrent clients spread over 1, 4 and 16 LoRA adapters (r 16 on q, k, v, o), each
//! against serving the same requests one adapter at a time (the adapters' request groups run
//! one after another, each group with the same number of clients: what a server that batches
//! only one adapter at once can do at best). Every request: a short prompt, 32 new tokens
//! (`ignore_eos`), greedy. The model: a random llama (hidden 512, 4 layers, GQA 8/4, vocab
//! 128 with the parity fixtures' tokenizer) saved as a real Hugging Face folder. Bounded: a
//! fixed number of requests per scenario, loopback only, stops by itself.
//!
//! Each scenario runs three times, both ways interleaved; the run with the median throughput is
//! reported. Run: `cargo bench --bench serve` (`-- --quick` for fewer requests).

use candle_core::{DType, Device, Tensor};
use peftc::serve::{start, AdapterSpec, BaseSource, BaseSpec, Limits, ServeConfig};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HIDDEN: usize = 512;
const LAYERS: usize = 4;
const VOCAB: usize = 128;
const INTER: usize = 1376;
const KV: usize = HIDDEN / 2;
const NEW_TOKENS: usize = 32;
const RANK: usize = 16;
const REPEATS: usize = 3;

fn write_model(dir: &Path) {
    let dev = Device::Cpu;
    let cfg = serde_json::json!({
        "model_type": "llama", "vocab_size": VOCAB, "hidden_size": HIDDEN, "intermediate_size": INTER,
        "num_hidden_layers": LAYERS, "num_attention_heads": 8, "num_key_value_heads": 4,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 2048, "eos_token_id": 1, "bos_token_id": 0
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("config");
    let mut t: HashMap<String, Tensor> = HashMap::new();
    let mut put = |n: String, shape: &[usize]| {
        let v = if n.ends_with("norm.weight") {
            Tensor::ones(shape, DType::F32, &dev)
        } else {
            Tensor::randn(0f32, 0.05, shape, &dev)
        };
        t.insert(n, v.expect("tensor"));
    };
    put("model.embed_tokens.weight".into(), &[VOCAB, HIDDEN]);
    put("model.norm.weight".into(), &[HIDDEN]);
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        put(format!("{p}.self_attn.q_proj.weight"), &[HIDDEN, HIDDEN]);
        put(format!("{p}.self_attn.k_proj.weight"), &[KV, HIDDEN]);
        put(format!("{p}.self_attn.v_proj.weight"), &[KV, HIDDEN]);
        put(format!("{p}.self_attn.o_proj.weight"), &[HIDDEN, HIDDEN]);
        put(format!("{p}.mlp.gate_proj.weight"), &[INTER, HIDDEN]);
        put(format!("{p}.mlp.up_proj.weight"), &[INTER, HIDDEN]);
        put(format!("{p}.mlp.down_proj.weight"), &[HIDDEN, INTER]);
        put(format!("{p}.input_layernorm.weight"), &[HIDDEN]);
        put(format!("{p}.post_attention_layernorm.weight"), &[HIDDEN]);
    }
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).expect("weights");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/llama/model");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures.join(f), dir.join(f)).expect("tokenizer");
    }
}

fn write_adapter(dir: &Path) {
    std::fs::create_dir_all(dir).expect("adapter dir");
    let dev = Device::Cpu;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for i in 0..LAYERS {
        for (m, out) in [
            ("q_proj", HIDDEN),
            ("k_proj", KV),
            ("v_proj", KV),
            ("o_proj", HIDDEN),
        ] {
            let p = format!("base_model.model.model.layers.{i}.self_attn.{m}");
            let a = Tensor::randn(0f32, 0.05, (RANK, HIDDEN), &dev).expect("a");
            let b = Tensor::randn(0f32, 0.05, (out, RANK), &dev).expect("b");
            t.insert(format!("{p}.lora_A.weight"), a);
            t.insert(format!("{p}.lora_B.weight"), b);
        }
    }
    candle_core::safetensors::save(&t, dir.join("adapter_model.safetensors")).expect("adapter");
    let cfg = serde_json::json!({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": 32,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"], "lora_dropout": 0.0
    });
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).expect("adapter config");
}

fn complete(addr: SocketAddr, model: &str, prompt: &str) -> Duration {
    let body = serde_json::json!({
        "model": model, "prompt": prompt, "max_tokens": NEW_TOKENS, "temperature": 0,
        "ignore_eos": true
    })
    .to_string();
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(300)))
        .expect("timeout");
    write!(
        s,
        "POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    started.elapsed()
}

/// Runs `requests` (model, prompt) with `clients` concurrent clients; returns wall time and
/// latencies.
fn run(
    addr: SocketAddr,
    requests: &[(String, String)],
    clients: usize,
) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(requests.to_vec());
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (next, requests) = (next.clone(), requests.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((model, prompt)) = requests.get(i) else {
                        break;
                    };
                    lat.push(complete(addr, model, prompt));
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client"))
        .collect();
    lat.sort();
    (started.elapsed(), lat)
}

/// The run with the median throughput.
fn median(mut runs: Vec<(f64, Vec<Duration>)>) -> (f64, Vec<Duration>) {
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mid = runs.len() / 2;
    runs.swap_remove(mid)
}

fn pct(lat: &[Duration], p: f64) -> f64 {
    let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
    lat[i.min(lat.len() - 1)].as_secs_f64() * 1000.0
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let dir = std::env::temp_dir().join(format!("peftc-serve-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    write_model(&dir);
    let adapters: Vec<AdapterSpec> = (0..16)
        .map(|i| {
            let path = dir.join(format!("adapter{i}"));
            write_adapter(&path);
            AdapterSpec {
                name: format!("a{i}"),
                path,
            }
        })
        .collect();
    let server = start(
        ServeConfig {
            base: BaseSpec {
                source: BaseSource::Folder(dir.clone()),
                name: "base".into(),
                quant: None,
            },
            adapters,
            addr: "127.0.0.1:0".parse().expect("addr"),
            limits: Limits {
                max_batch: 32,
                max_queue: 1024,
                ..Limits::default()
            },
        },
        false,
    )
    .expect("server");
    let addr = server.addr;
    // Warm up: load every adapter once.
    for i in 0..16 {
        complete(addr, &format!("a{i}"), "hello");
    }
    println!(
        "| clients | adapters | mixed: tok/s | p50 ms | p99 ms | one adapter at a time: tok/s | p50 ms | p99 ms | mixed / one-at-a-time |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let prompts = [
        "the cat sat on the mat",
        "low rank adapters make",
        "hello world",
        "question: what is two plus two?",
    ];
    for clients in [1usize, 8, 32] {
        for n_adapters in [1usize, 4, 16] {
            let count = if quick {
                clients.max(8)
            } else {
                (clients * 2).max(16)
            };
            let requests: Vec<(String, String)> = (0..count)
                .map(|i| {
                    (
                        format!("a{}", i % n_adapters),
                        prompts[i % prompts.len()].to_string(),
                    )
                })
                .collect();
            let tokens = (count * NEW_TOKENS) as f64;
            // Both ways three times, interleaved (so load from other processes hits both
            // alike); each reported with its median run by throughput.
            let mut mixed_runs = Vec::new();
            let mut one_runs = Vec::new();
            for _ in 0..REPEATS {
                let (wall, lat) = run(addr, &requests, clients);
                mixed_runs.push((tokens / wall.as_secs_f64(), lat));
                // The same requests grouped by adapter, one group after another.
                let mut one_wall = Duration::ZERO;
                let mut one_lat = Vec::new();
                for a in 0..n_adapters {
                    let group: Vec<(String, String)> = requests
                        .iter()
                        .filter(|(m, _)| *m == format!("a{a}"))
                        .cloned()
                        .collect();
                    let (w, mut l) = run(addr, &group, clients);
                    // A request of a later group waited for every group before it.
                    for d in &mut l {
                        *d += one_wall;
                    }
                    one_wall += w;
                    one_lat.extend(l);
                }
                one_lat.sort();
                one_runs.push((tokens / one_wall.as_secs_f64(), one_lat));
            }
            let (mixed, lat) = median(mixed_runs);
            let (one, one_lat) = median(one_runs);
            println!(
                "| {clients} | {n_adapters} | {mixed:.0} | {:.0} | {:.0} | {one:.0} | {:.0} | {:.0} | {:.2}x |",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                pct(&one_lat, 0.5),
                pct(&one_lat, 0.99),
                mixed / one
            );
        }
    }
    server.shutdown().expect("shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
