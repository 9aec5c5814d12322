//! Step time of the training loop (`peftc::runtime::train::train`: forward, causal LM loss,
//! backward, AdamW) on a llama-shaped stack with the tiny llama's sizes (hidden 512, 8 layers,
//! 8 heads, MLP 1376, vocab 8000), LoRA r 16 (alpha 32) on q,v or on every linear layer,
//! batch 8 x 128 by default. Frozen weights go through the runtime's `DenseWeight`, so the
//! figure moves with the frozen-matmul seam.
//!
//! The model (RMSNorm, causal softmax attention without RoPE, SwiGLU MLP, untied head) is
//! defined here and mirrored exactly by `benches/train_vs_torch.py`, which times PyTorch on the
//! same shapes and prints the ratio. Method as `/work/shared/research/baseline`: 3 warm-up
//! steps, median of 20. Prints one JSON line per case.
//!
//! Env: `PEFTC_BENCH_STEPS` (20), `PEFTC_BENCH_WARMUP` (3), `PEFTC_BENCH_BATCH` (8),
//! `PEFTC_BENCH_SEQ` (128), `PEFTC_BENCH_CASES` (`lora_qv,lora_all`). Threads: `RAYON_NUM_THREADS`.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use peftc::runtime::batch::Example;
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::model_api::{AdaptedModel, TaskKind};
use peftc::runtime::train::{
    train, AdamWConfig, OptimizerConfig, Progress, Resume, ScheduleConfig, ScheduleKind,
    TrainConfig, TrainLength, TrainRun, Warmup,
};
use peftc::runtime::weight::FrozenWeight;
use rand::{Rng, SeedableRng};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

const HIDDEN: usize = 512;
const LAYERS: usize = 8;
const HEADS: usize = 8;
const MLP: usize = 1376;
const VOCAB: usize = 8000;
const RANK: usize = 16;
const ALPHA: f64 = 32.0;
const EPS: f64 = 1e-6;

struct Linear {
    w: DenseWeight,
    lora: Option<(Var, Var)>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.w.forward(x)?;
        match &self.lora {
            None => Ok(y),
            Some((a, b)) => {
                let l = x
                    .broadcast_matmul(&a.as_tensor().t()?)?
                    .broadcast_matmul(&b.as_tensor().t()?)?;
                y + (l * (ALPHA / RANK as f64))?
            }
        }
    }
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    gate: Linear,
    up: Linear,
    down: Linear,
    n1: Tensor,
    n2: Tensor,
}

struct Model {
    emb: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    head: Tensor,
    names: Vec<(String, Var)>,
    device: Device,
}

fn rms(x: &Tensor, g: &Tensor) -> Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + EPS)?.sqrt()?)?.broadcast_mul(g)
}

impl Model {
    fn new(all_linear: bool, seed: u64) -> Result<Self> {
        let dev = Device::Cpu;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut rand = |r: usize, c: usize, std: f32| -> Result<Tensor> {
            let v: Vec<f32> = (0..r * c)
                .map(|_| (rng.gen::<f32>() - 0.5) * 2.0 * std)
                .collect();
            Tensor::from_vec(v, (r, c), &Device::Cpu)
        };
        let mut names = Vec::new();
        let mut layers = Vec::new();
        for l in 0..LAYERS {
            let mut lin = |name: &str, out: usize, inp: usize, adapt: bool| -> Result<Linear> {
                let w = DenseWeight::new(rand(out, inp, 0.02)?);
                let lora = if adapt {
                    let a = Var::from_tensor(&rand(RANK, inp, 0.02)?)?;
                    let b = Var::zeros((out, RANK), DType::F32, &Device::Cpu)?;
                    let p = format!("base_model.model.model.layers.{l}.{name}");
                    names.push((format!("{p}.lora_A.weight"), a.clone()));
                    names.push((format!("{p}.lora_B.weight"), b.clone()));
                    Some((a, b))
                } else {
                    None
                };
                Ok(Linear { w, lora })
            };
            layers.push(Layer {
                q: lin("self_attn.q_proj", HIDDEN, HIDDEN, true)?,
                k: lin("self_attn.k_proj", HIDDEN, HIDDEN, all_linear)?,
                v: lin("self_attn.v_proj", HIDDEN, HIDDEN, true)?,
                o: lin("self_attn.o_proj", HIDDEN, HIDDEN, all_linear)?,
                gate: lin("mlp.gate_proj", MLP, HIDDEN, all_linear)?,
                up: lin("mlp.up_proj", MLP, HIDDEN, all_linear)?,
                down: lin("mlp.down_proj", HIDDEN, MLP, all_linear)?,
                n1: Tensor::ones(HIDDEN, DType::F32, &dev)?,
                n2: Tensor::ones(HIDDEN, DType::F32, &dev)?,
            });
        }
        Ok(Self {
            emb: rand(VOCAB, HIDDEN, 0.02)?,
            layers,
            norm: Tensor::ones(HIDDEN, DType::F32, &dev)?,
            head: rand(VOCAB, HIDDEN, 0.02)?,
            names,
            device: dev,
        })
    }
}

impl AdaptedModel for Model {
    fn task(&self) -> TaskKind {
        TaskKind::CausalLm
    }

    fn forward(&self, ids: &Tensor, _mask: &Tensor, _train: bool) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let dh = HIDDEN / HEADS;
        let mut h = self
            .emb
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, s, HIDDEN))?;
        let causal: Vec<f32> = (0..s)
            .flat_map(|i| (0..s).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let causal = Tensor::from_vec(causal, (1, 1, s, s), &self.device)?;
        for l in &self.layers {
            let x = rms(&h, &l.n1)?;
            let split = |t: Tensor| -> Result<Tensor> {
                t.reshape((b, s, HEADS, dh))?.transpose(1, 2)?.contiguous()
            };
            let q = split(l.q.forward(&x)?)?;
            let k = split(l.k.forward(&x)?)?;
            let v = split(l.v.forward(&x)?)?;
            let scores =
                (q.matmul(&k.t()?)? * (1.0 / (dh as f64).sqrt()))?.broadcast_add(&causal)?;
            let p = candle_nn::ops::softmax(&scores, D::Minus1)?;
            let o = p.matmul(&v)?.transpose(1, 2)?.reshape((b, s, HIDDEN))?;
            h = (h + l.o.forward(&o)?)?;
            let x = rms(&h, &l.n2)?;
            let m = (l.gate.forward(&x)?.silu()? * l.up.forward(&x)?)?;
            h = (h + l.down.forward(&m)?)?;
        }
        rms(&h, &self.norm)?.broadcast_matmul(&self.head.t()?)
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        self.names.clone()
    }

    fn device(&self) -> &Device {
        &self.device
    }
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
    for case in cases.split(',') {
        let model = Model::new(case == "lora_all", 0)?;
        let trainable: usize = model.names.iter().map(|(_, v)| v.elem_count()).sum();
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
            &model,
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
