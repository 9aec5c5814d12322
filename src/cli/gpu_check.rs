//! `peftc gpu-check` (hidden; run by `scripts/gpu-check.sh`): compares a device with the CPU and
//! times training on it. Parity: the quantized weights' dequantization on the device against the
//! CPU bit for bit (NF4 with and without double quantization, int8, Q4_K; f32 and bf16), every
//! architecture fixture's logits (f32 within 1e-4, bf16 within 2 % of the largest logit), one
//! LoRA training step (SGD; loss and the adapter's weights within 1e-4). Bench (`--bench DIR`):
//! LoRA and QLoRA (NF4, double quantization) training steps in bf16 on a llama-shaped model with
//! random weights written to DIR (about 1.1B parameters, TinyLlama's shape), tokens/s and peak
//! device memory, one JSON line per case. Prints one line per check; exit 0 when every check
//! passed, 1 otherwise, 2 when the device cannot be opened.
//!
//! Must not write outside the folders it is given; must not be used by the pipeline stages.

use crate::plan::configs::{ModelBuild, QuantConfig};
use crate::runtime::adapters::attach::{attach_lora, LoraConfig};
use crate::runtime::adapters::lora::LoraSpec;
use crate::runtime::adapters::targets::TargetModules;
use crate::runtime::batch::Example;
use crate::runtime::models::load::{load_folder, LoadConfig, LoadedModel};
use crate::runtime::quant::{Code4, Packed4Config};
use crate::runtime::quant::{GgmlConfig, GgmlFormat, GgmlWeight, Int8Weight, Nf4Weight};
use crate::runtime::train::{
    train, NoProgress, OptimizerConfig, Progress, Resume, ScheduleConfig, ScheduleKind, SgdConfig,
    TrainConfig, TrainLength, TrainRun, Warmup,
};
use crate::runtime::weight::FrozenWeight;
use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Compare a device with the CPU and time training on it.
#[derive(Debug, Args)]
pub struct GpuCheckArgs {
    /// The device to check (`cuda:N`; `cpu` runs every comparison CPU against CPU, a dry run).
    #[arg(long, default_value = "cuda:0")]
    pub device: String,
    /// The architecture fixtures (`tests/fixtures/parity` of a checkout).
    #[arg(long)]
    pub fixtures: PathBuf,
    /// Run the bench too, writing its model folder here.
    #[arg(long)]
    pub bench: Option<PathBuf>,
    /// Bench sequences per step.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Bench sequence length.
    #[arg(long, default_value_t = 1024)]
    pub seq: usize,
    /// Bench steps timed (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Bench model layers (22: TinyLlama's 1.1B; fewer for a quick run).
    #[arg(long, default_value_t = 22)]
    pub layers: usize,
}

pub fn run(args: &GpuCheckArgs) -> ExitCode {
    std::env::set_var("PEFTC_DEVICE", &args.device);
    let device = match crate::stages::device() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut failed = 0usize;
    let mut report = |name: &str, r: anyhow::Result<(bool, String)>| match r {
        Ok((pass, detail)) => {
            println!("{} {name}: {detail}", if pass { "PASS" } else { "FAIL" });
            failed += usize::from(!pass);
        }
        Err(e) => {
            println!("FAIL {name}: {e:#}");
            failed += 1;
        }
    };
    for (name, r) in dequant_checks(&device) {
        report(&name, r);
    }
    for arch in ["llama", "mistral", "qwen2", "gpt2"] {
        let folder = args.fixtures.join(arch).join("model");
        for dtype in [DType::F32, DType::BF16] {
            let name = format!("logits {arch} {dtype:?}");
            report(&name, logits_check(&folder, &device, dtype));
        }
    }
    report(
        "lora step llama f32",
        lora_step_check(&args.fixtures.join("llama").join("model"), &device),
    );
    if let Some(dir) = &args.bench {
        if let Err(e) = bench(args, dir, &device) {
            println!("FAIL bench: {e:#}");
            failed += 1;
        }
    }
    println!("{failed} checks failed");
    ExitCode::from(u8::from(failed > 0))
}

fn random(rows: usize, cols: usize, seed: u64) -> anyhow::Result<Tensor> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let x = (rng.gen::<f32>() - 0.5) * 0.04;
            if i % 997 == 0 {
                x * 50.0
            } else {
                x
            }
        })
        .collect();
    Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?)
}

/// Bits of every element of an f32 or bf16 tensor, on the CPU.
fn bits(t: &Tensor) -> anyhow::Result<Vec<u32>> {
    let t = t.to_device(&Device::Cpu)?.flatten_all()?;
    Ok(match t.dtype() {
        DType::BF16 => t
            .to_vec1::<half::bf16>()?
            .into_iter()
            .map(|v| u32::from(v.to_bits()))
            .collect(),
        _ => t
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?
            .into_iter()
            .map(f32::to_bits)
            .collect(),
    })
}

fn same_bits(cpu: &Tensor, dev: &Tensor) -> anyhow::Result<(bool, String)> {
    let (a, b) = (bits(cpu)?, bits(dev)?);
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count() + a.len().abs_diff(b.len());
    Ok((
        differ == 0,
        format!(
            "{differ} of {} elements differ from the CPU (bit for bit)",
            a.len()
        ),
    ))
}

type Check = (String, anyhow::Result<(bool, String)>);

/// The device's dequantization of NF4 (double quant and f32 scales), int8 and Q4_K against the
/// CPU's, in f32 and bf16.
fn dequant_checks(device: &Device) -> Vec<Check> {
    let mut out = Vec::new();
    let w = match random(1024, 4096, 11) {
        Ok(w) => w,
        Err(e) => return vec![("dequant weights".into(), Err(e))],
    };
    let nf4 = |dq: Option<usize>| {
        Nf4Weight::quantize(
            &w,
            Packed4Config {
                code: Code4::Nf4,
                block: 64,
                double_quant_block: dq,
            },
        )
    };
    for (name, weight) in [
        (
            "nf4 double-quant",
            nf4(Some(256)).map(|w| Arc::new(w) as Arc<dyn Any4>),
        ),
        ("nf4", nf4(None).map(|w| Arc::new(w) as Arc<dyn Any4>)),
        (
            "int8",
            Int8Weight::quantize(&w).map(|w| Arc::new(w) as Arc<dyn Any4>),
        ),
    ] {
        for dtype in [DType::F32, DType::BF16] {
            let r = (|| -> anyhow::Result<(bool, String)> {
                let weight = weight.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
                let cpu = weight.dequantize(DType::F32)?.to_dtype(dtype)?;
                let dev = weight.on_device(device, dtype)?;
                same_bits(&cpu, &dev)
            })();
            out.push((format!("dequant {name} {dtype:?}"), r));
        }
    }
    let q4k = (|| -> anyhow::Result<(bool, String)> {
        let g = GgmlWeight::quantize(&w, GgmlFormat::Q4K, GgmlConfig::default())?;
        same_bits(&g.dequantize_on(&Device::Cpu)?, &g.dequantize_on(device)?)
    })();
    out.push(("dequant q4k F32 (candle's kernel)".into(), q4k));
    out
}

/// A packed weight that dequantizes on a given device.
trait Any4: FrozenWeight {
    fn on_device(&self, device: &Device, dtype: DType) -> anyhow::Result<Tensor>;
}

macro_rules! any4 {
    ($ty:ty) => {
        impl Any4 for $ty {
            fn on_device(&self, device: &Device, dtype: DType) -> anyhow::Result<Tensor> {
                match device {
                    #[cfg(feature = "cuda")]
                    Device::Cuda(d) => Ok(self.dequantize_cuda(d, dtype)?),
                    Device::Cpu => Ok(self.dequantize(DType::F32)?.to_dtype(dtype)?),
                    other => anyhow::bail!("no dequantization kernel on {other:?}"),
                }
            }
        }
    };
}
any4!(Nf4Weight);
any4!(Int8Weight);

/// Fixed tokens for the logits and training checks.
fn tokens(vocab: usize, batch: usize, seq: usize, seed: u64) -> Vec<Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..batch)
        .map(|_| (0..seq).map(|_| rng.gen_range(0..vocab as u32)).collect())
        .collect()
}

fn vocab_of(folder: &Path) -> anyhow::Result<usize> {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("config.json"))?)?;
    config["vocab_size"]
        .as_u64()
        .map(|v| v as usize)
        .context("config.json has no vocab_size")
}

fn logits(model: &dyn LoadedModel, ids: &[Vec<u32>]) -> anyhow::Result<Tensor> {
    let device = model.as_adaptable().device().clone();
    let flat: Vec<u32> = ids.concat();
    let shape = (ids.len(), ids.first().map_or(0, Vec::len));
    let input = Tensor::from_vec(flat, shape, &device)?;
    let mask = Tensor::ones(shape, DType::U8, &device)?;
    Ok(model
        .as_adaptable()
        .forward(&input, &mask, false)?
        .to_dtype(DType::F32)?
        .to_device(&Device::Cpu)?)
}

/// f32 on the device within 1e-4 of the CPU; bf16 within 2 % of the largest CPU logit.
fn logits_check(folder: &Path, device: &Device, dtype: DType) -> anyhow::Result<(bool, String)> {
    let ids = tokens(vocab_of(folder)?, 2, 24, 5);
    let cpu = load_folder(folder, &LoadConfig::default())?;
    let dev = load_folder(
        folder,
        &LoadConfig {
            dtype,
            device: device.clone(),
        },
    )?;
    let (a, b) = (logits(cpu.as_ref(), &ids)?, logits(dev.as_ref(), &ids)?);
    let diff = (&a - &b)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let scale = a.abs()?.max_all()?.to_scalar::<f32>()?;
    let bound = if dtype == DType::BF16 {
        0.02 * scale
    } else {
        1e-4
    };
    Ok((
        diff <= bound,
        format!("max |device - CPU| = {diff:.3e} (bound {bound:.3e}; largest logit {scale:.3})"),
    ))
}

fn with_lora(mut model: Box<dyn LoadedModel>, all: bool) -> anyhow::Result<Box<dyn LoadedModel>> {
    let lora = LoraConfig {
        spec: LoraSpec {
            r: 8,
            alpha: 16.0,
            ..LoraSpec::default()
        },
        target_modules: if all {
            TargetModules::AllLinear
        } else {
            TargetModules::Names(vec!["q_proj".into(), "v_proj".into()])
        },
        ..LoraConfig::default()
    };
    attach_lora(model.as_adaptable_mut(), "default", &lora)?;
    Ok(model)
}

fn examples(ids: Vec<Vec<u32>>) -> Vec<Example> {
    ids.into_iter()
        .map(|ids| Example {
            labels: ids.iter().map(|&t| i64::from(t)).collect(),
            input_ids: ids,
            class_label: None,
            packed: Vec::new(),
        })
        .collect()
}

fn step_config(steps: u64, batch: usize, optimizer: OptimizerConfig) -> TrainConfig {
    TrainConfig {
        length: TrainLength::Steps(steps),
        batch_size: batch,
        accumulate: 1,
        lr: 1e-2,
        optimizer,
        schedule: ScheduleConfig {
            kind: ScheduleKind::Constant,
            warmup: Warmup::Steps(0),
        },
        max_grad_norm: None,
        shuffle: false,
        ..TrainConfig::default()
    }
}

/// One SGD step of a LoRA on q,v on the CPU and on the device: the loss and every adapter
/// weight after the step within 1e-4.
fn lora_step_check(folder: &Path, device: &Device) -> anyhow::Result<(bool, String)> {
    let ids = tokens(vocab_of(folder)?, 4, 32, 9);
    let config = step_config(1, 4, OptimizerConfig::Sgd(SgdConfig::default()));
    let mut losses = Vec::new();
    let mut weights = Vec::new();
    for dev in [Device::Cpu, device.clone()] {
        let model = with_lora(
            load_folder(
                folder,
                &LoadConfig {
                    dtype: DType::F32,
                    device: dev,
                },
            )?,
            false,
        )?;
        let cancel = AtomicBool::new(false);
        let summary = train(
            model.as_adaptable(),
            &examples(ids.clone()),
            &config,
            TrainRun {
                out_dir: None,
                resume: Resume::Never,
                collate: None,
                progress: &mut NoProgress,
                cancel: &cancel,
            },
        )?;
        losses.push(summary.final_loss.unwrap_or(f64::NAN));
        let mut flat = Vec::new();
        for (_, v) in model.as_adaptable().trainable() {
            flat.extend(
                v.as_tensor()
                    .to_device(&Device::Cpu)?
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        weights.push(flat);
    }
    let loss_diff = (losses[0] - losses[1]).abs();
    let w_diff = weights[0]
        .iter()
        .zip(&weights[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    Ok((
        loss_diff <= 1e-4 && w_diff <= 1e-4 && weights[0].len() == weights[1].len(),
        format!(
            "loss {:.6} vs {:.6} (|diff| {loss_diff:.2e}), adapter weights after the step max |diff| {w_diff:.2e}",
            losses[0], losses[1]
        ),
    ))
}

/// TinyLlama-1.1B's shape with `layers` layers.
const HIDDEN: usize = 2048;
const MLP: usize = 5632;
const HEADS: usize = 32;
const KV_HEADS: usize = 4;
const VOCAB: usize = 32000;

/// Writes the bench model (bf16 random weights, scale 0.02) as a Hugging Face llama folder.
fn write_bench_model(dir: &Path, layers: usize) -> anyhow::Result<()> {
    if dir.join("config.json").exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    let rand = |r: usize, c: usize| -> anyhow::Result<Tensor> {
        Ok(Tensor::rand(-0.02f32, 0.02, (r, c), &Device::Cpu)?.to_dtype(DType::BF16)?)
    };
    let kv = HIDDEN / HEADS * KV_HEADS;
    let ones = || Tensor::ones(HIDDEN, DType::BF16, &Device::Cpu);
    let mut tensors = vec![
        (
            "model.embed_tokens.weight".to_string(),
            rand(VOCAB, HIDDEN)?,
        ),
        ("lm_head.weight".to_string(), rand(VOCAB, HIDDEN)?),
        ("model.norm.weight".to_string(), ones()?),
    ];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for (name, out, inp) in [
            ("self_attn.q_proj", HIDDEN, HIDDEN),
            ("self_attn.k_proj", kv, HIDDEN),
            ("self_attn.v_proj", kv, HIDDEN),
            ("self_attn.o_proj", HIDDEN, HIDDEN),
            ("mlp.gate_proj", MLP, HIDDEN),
            ("mlp.up_proj", MLP, HIDDEN),
            ("mlp.down_proj", HIDDEN, MLP),
        ] {
            tensors.push((format!("{p}.{name}.weight"), rand(out, inp)?));
        }
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            tensors.push((format!("{p}.{norm}.weight"), ones()?));
        }
    }
    let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors"))?;
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": MLP,
        "num_hidden_layers": layers,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "vocab_size": VOCAB,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(())
}

/// Step times, and the device memory in use sampled every 2 ms by a thread.
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

/// Polls `total - free` of the device until `stop`; returns the largest value seen.
fn peak_sampler(device: &Device, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let peak = Arc::new(AtomicU64::new(0));
    let device = device.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some((free, total)) = crate::stages::free_memory(&device) {
                peak.fetch_max(total.saturating_sub(free), Ordering::Relaxed);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        peak.load(Ordering::Relaxed)
    })
}

/// LoRA (bf16 base) and QLoRA (NF4 with double quantization, bf16 compute) on every linear layer,
/// r 16, AdamW, `batch x seq` random tokens per step: median step time of `steps` after 2 warm-up
/// steps, tokens/s, peak device memory in use (sampled; includes the CUDA context).
fn bench(args: &GpuCheckArgs, dir: &Path, device: &Device) -> anyhow::Result<()> {
    write_bench_model(dir, args.layers)?;
    std::fs::copy(
        args.fixtures.join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )?;
    for case in ["lora_bf16", "qlora_nf4_bf16"] {
        let quant = (case == "qlora_nf4_bf16").then(|| QuantConfig {
            kind: "nf4".into(),
            double_quant: true,
            block_size: 64,
            compute: "bf16".into(),
        });
        let build = ModelBuild {
            labels: None,
            dtype: "bf16".into(),
            quant,
            dense_weights: false,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = peak_sampler(device, stop.clone());
        let loaded = crate::stages::load_local(&build, dir.to_path_buf())?;
        let model = with_lora(loaded.model, true)?;
        let total = args.steps + 2;
        let config = step_config(
            total as u64,
            args.batch,
            OptimizerConfig::AdamW(Default::default()),
        );
        let cancel = AtomicBool::new(false);
        let mut times = StepTimes {
            last: Instant::now(),
            times: Vec::new(),
        };
        train(
            model.as_adaptable(),
            &examples(tokens(VOCAB, total * args.batch, args.seq, 3)),
            &config,
            TrainRun {
                out_dir: None,
                resume: Resume::Never,
                collate: None,
                progress: &mut times,
                cancel: &cancel,
            },
        )?;
        stop.store(true, Ordering::Relaxed);
        let peak = sampler.join().unwrap_or(0);
        let mut measured: Vec<f64> = times.times.into_iter().skip(2).collect();
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
                "layers": args.layers,
                "batch": args.batch,
                "seq": args.seq,
                "median_step_s": median,
                "tokens_per_s": (args.batch * args.seq) as f64 / median,
                "peak_device_mib": peak / (1 << 20),
            })
        );
        drop(model);
    }
    Ok(())
}
