//! Quantized base weights: storage, dequantization speed, training-step time and peak memory.
//!
//! `cargo bench --bench quant` (plain binary, `harness = false`). Prints a Markdown table:
//! - bytes per parameter of a 2048x2048 weight per format (goal: NF4 + double quant <= 0.53);
//! - dequantization throughput (GB/s of f32 written and of packed bytes read), next to a
//!   `memcpy` of the same f32 size as the memory-bandwidth yardstick;
//! - one LoRA training step (forward + backward + AdamW) of a 4-layer 2048x2048 stack, rank 8 on
//!   every layer, 512 rows, per base format;
//! - peak RSS of that step, each format in its own child process (`VmHWM` from
//!   `/proc/self/status`, reset with `/proc/self/clear_refs` after loading, so it is the step's
//!   peak; the resident size after loading is printed too).
//!
//! `BENCH_QUICK=1` shrinks everything (a smoke run).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use peftc::runtime::dense::DenseWeight;
use peftc::runtime::quant::tiled::{dequant_all, frozen_forward, DequantRows, DEFAULT_TILE_BYTES};
use peftc::runtime::quant::{
    GgmlConfig, GgmlFormat, GgmlWeight, Int8Rows, Packed4, Packed4Config, QuantFormat, QuantSpec,
};
use peftc::runtime::weight::FrozenWeight;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use std::time::Instant;

fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok()
}

fn dims() -> (usize, usize, usize) {
    if quick() {
        (512, 64, 2) // width, rows, layers
    } else {
        (2048, 512, 4)
    }
}

fn randn(rng: &mut ChaCha8Rng, n: usize, std: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let (u1, u2): (f32, f32) = (rng.gen_range(1e-7..1.0), rng.gen());
            std * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

fn best_of<F: FnMut()>(n: usize, mut f: F) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A dense f32 weight behind the same input-only backward as the quantized formats (the fair f32
/// baseline: `DenseWeight`'s plain matmul also computes a gradient for the frozen weight).
#[derive(Debug)]
struct F32Rows(Vec<f32>, (usize, usize));

impl DequantRows for F32Rows {
    fn dims(&self) -> (usize, usize) {
        self.1
    }
    fn dequant_rows(&self, row0: usize, out: &mut [f32]) {
        let start = row0 * self.1 .1;
        out.copy_from_slice(&self.0[start..start + out.len()]);
    }
}

#[derive(Debug)]
struct F32Frozen(Arc<dyn DequantRows>);

impl FrozenWeight for F32Frozen {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        frozen_forward(&self.0, x, DEFAULT_TILE_BYTES)
    }
    fn dequantize(&self, dtype: DType) -> candle_core::Result<Tensor> {
        dequant_all(self.0.as_ref())?.to_dtype(dtype)
    }
    fn dims(&self) -> (usize, usize) {
        self.0.dims()
    }
    fn storage_bytes(&self) -> usize {
        let (o, i) = self.0.dims();
        4 * o * i
    }
    fn format(&self) -> &str {
        "f32"
    }
}

/// User + system CPU seconds of this process (all threads), from `/proc/self/stat`. On a shared
/// machine this moves much less than wall time when other jobs compete for the cores.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn formats() -> Vec<(&'static str, Option<QuantSpec>)> {
    let mut q4t = QuantSpec::new(QuantFormat::Q4k);
    q4t.transposed_copy = true;
    vec![
        ("f32", None),
        ("f32, input-only bwd", None),
        ("nf4+dq", Some(QuantSpec::nf4())),
        ("int8", Some(QuantSpec::new(QuantFormat::Int8))),
        ("q8_0", Some(QuantSpec::new(QuantFormat::Q8_0))),
        ("q4k", Some(QuantSpec::new(QuantFormat::Q4k))),
        ("q4k+W^T", Some(q4t)),
    ]
}

fn storage() {
    let d = 2048;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let w = Tensor::from_vec(randn(&mut rng, d * d, 0.02), (d, d), &Device::Cpu).unwrap();
    println!("\n## Bytes per parameter ({d}x{d})\n\n| format | bytes/param | bits/param |\n|---|---:|---:|");
    let mut nf4 = QuantSpec::nf4();
    nf4.double_quant = false;
    let mut fp4 = QuantSpec::new(QuantFormat::Fp4);
    fp4.double_quant = true;
    let rows: Vec<(&str, QuantSpec)> = vec![
        ("nf4 + double quant", QuantSpec::nf4()),
        ("nf4", nf4),
        ("fp4 + double quant", fp4),
        ("int8 (row absmax)", QuantSpec::new(QuantFormat::Int8)),
        ("q8_0", QuantSpec::new(QuantFormat::Q8_0)),
        ("q4k", QuantSpec::new(QuantFormat::Q4k)),
        ("q5k", QuantSpec::new(QuantFormat::Q5k)),
        ("q6k", QuantSpec::new(QuantFormat::Q6k)),
    ];
    for (name, spec) in rows {
        let q = spec.quantize("w", &w).unwrap();
        let b = q.storage_bytes() as f64 / (d * d) as f64;
        println!("| {name} | {b:.4} | {:.3} |", 8.0 * b);
    }
    println!("| f32 | 4.0000 | 32.000 |");
}

fn dequant_speed() {
    let d = if quick() { 1024 } else { 4096 };
    let n = d * d;
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let data = randn(&mut rng, n, 0.02);
    let packed = Packed4::quantize(&data, (d, d), Packed4Config::default());
    let nodq = Packed4Config {
        double_quant_block: None,
        ..Default::default()
    };
    let packed_f = Packed4::quantize(&data, (d, d), nodq);
    let int8 = Int8Rows::quantize(&data, (d, d));
    let q4k = GgmlWeight::quantize(
        &Tensor::from_vec(data.clone(), (d, d), &Device::Cpu).unwrap(),
        GgmlFormat::Q4K,
        GgmlConfig::default(),
    )
    .unwrap();
    let mut out = vec![0f32; n];
    let reps = 5;
    println!(
        "\n## Dequantization ({d}x{d} = {:.0} MiB of f32 out, {} threads)\n\n| kernel | ms | GB/s f32 written | GB/s packed read |\n|---|---:|---:|---:|",
        (4 * n) as f64 / (1 << 20) as f64,
        rayon::current_num_threads()
    );
    let gbs = |bytes: usize, s: f64| bytes as f64 / s / 1e9;
    let src = data.clone();
    let t = best_of(reps, || out.copy_from_slice(&src));
    println!(
        "| memcpy f32 (yardstick: read + write) | {:.2} | {:.1} | {:.1} |",
        t * 1e3,
        gbs(4 * n, t),
        gbs(4 * n, t)
    );
    for (name, p) in [
        ("nf4 + double quant", &packed),
        ("nf4, f32 scales", &packed_f),
    ] {
        let t = best_of(reps, || p.dequant_rows(0, &mut out));
        println!(
            "| {name} | {:.2} | {:.1} | {:.1} |",
            t * 1e3,
            gbs(4 * n, t),
            gbs(p.storage_bytes(), t)
        );
    }
    let t = best_of(reps, || int8.dequant_rows(0, &mut out));
    println!(
        "| int8 | {:.2} | {:.1} | {:.1} |",
        t * 1e3,
        gbs(4 * n, t),
        gbs(n + 4 * d, t)
    );
    let t = best_of(reps, || {
        q4k.dequantize(DType::F32).unwrap();
    });
    println!(
        "| q4k (candle, allocates) | {:.2} | {:.1} | {:.1} |",
        t * 1e3,
        gbs(4 * n, t),
        gbs(q4k.storage_bytes(), t)
    );
    let t = best_of(reps, || {
        dequant_all(&packed).unwrap();
    });
    println!(
        "| nf4 + dq into a new tensor | {:.2} | {:.1} | {:.1} |",
        t * 1e3,
        gbs(4 * n, t),
        gbs(packed.storage_bytes(), t)
    );
}

struct Stack {
    bases: Vec<Arc<dyn FrozenWeight>>,
    loras: Vec<(Var, Var)>,
}

fn build(name: &str, spec: &Option<QuantSpec>) -> Stack {
    let (d, _, layers) = dims();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut bases: Vec<Arc<dyn FrozenWeight>> = Vec::new();
    let mut loras = Vec::new();
    for _ in 0..layers {
        // One f32 layer exists at a time while loading; it is dropped once quantized.
        let w = Tensor::from_vec(
            randn(&mut rng, d * d, 1.0 / (d as f32).sqrt()),
            (d, d),
            &Device::Cpu,
        )
        .unwrap();
        bases.push(match spec {
            None if name == "f32" => Arc::new(DenseWeight::new(w)),
            None => {
                let v = w.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                Arc::new(F32Frozen(Arc::new(F32Rows(v, (d, d)))))
            }
            Some(s) => Arc::new(s.quantize("w", &w).unwrap()),
        });
        let a = Var::from_vec(randn(&mut rng, 8 * d, 0.02), (8, d), &Device::Cpu).unwrap();
        let b = Var::zeros((d, 8), DType::F32, &Device::Cpu).unwrap();
        loras.push((a, b));
    }
    Stack { bases, loras }
}

fn step(s: &Stack, x: &Tensor, opt: &mut AdamW) -> (f64, f64) {
    let t0 = Instant::now();
    let mut h = x.clone();
    for (w, (a, b)) in s.bases.iter().zip(&s.loras) {
        let lora = h
            .matmul(&a.as_tensor().t().unwrap())
            .unwrap()
            .matmul(&b.as_tensor().t().unwrap())
            .unwrap();
        h = (w.forward(&h).unwrap() + lora * 2.0)
            .unwrap()
            .silu()
            .unwrap();
    }
    let loss = h.sqr().unwrap().mean_all().unwrap();
    let fwd = t0.elapsed().as_secs_f64();
    let grads = loss.backward().unwrap();
    opt.step(&grads).unwrap();
    (fwd, t0.elapsed().as_secs_f64())
}

/// Runs in a child process: load one stack, reset the peak, time steps, report.
fn child(name: &str) {
    let spec = formats()
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s)
        .unwrap();
    let (d, rows, _) = dims();
    let s = build(name, &spec);
    let storage: usize = s.bases.iter().map(|b| b.storage_bytes()).sum();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let x = Tensor::from_vec(randn(&mut rng, rows * d, 1.0), (rows, d), &Device::Cpu).unwrap();
    let vars: Vec<Var> = s
        .loras
        .iter()
        .flat_map(|(a, b)| [a.clone(), b.clone()])
        .collect();
    let mut opt = AdamW::new(
        vars,
        ParamsAdamW {
            lr: 1e-3,
            ..Default::default()
        },
    )
    .unwrap();
    let rss_loaded = proc_status("VmRSS:").unwrap_or(0);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    step(&s, &x, &mut opt); // warm-up
    let mut best = (f64::INFINITY, f64::INFINITY);
    let steps = if quick() { 2 } else { 5 };
    let cpu0 = cpu_seconds();
    for _ in 0..steps {
        let (f, t) = step(&s, &x, &mut opt);
        if t < best.1 {
            best = (f, t);
        }
    }
    let cpu = (cpu_seconds() - cpu0) / steps as f64;
    let hwm = proc_status("VmHWM:").unwrap_or(0);
    println!(
        "RESULT {name} {:.0} {} {:.1} {:.1} {} {}",
        cpu * 1e3,
        storage,
        best.0 * 1e3,
        best.1 * 1e3,
        rss_loaded / 1024,
        hwm / 1024
    );
}

fn training() {
    let (d, rows, layers) = dims();
    println!(
        "\n## LoRA step, {layers} layers {d}x{d}, rank 8, {rows} rows (best of 5; each row its own process)\n\n| base | base MiB | fwd ms | fwd+bwd+AdamW ms | vs f32 | CPU ms per step (all threads, mean) | RSS after load MiB | peak RSS of the step MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let exe = std::env::current_exe().unwrap();
    let mut f32_ms = None;
    for (name, _) in formats() {
        let out = std::process::Command::new(&exe)
            .arg("--child")
            .arg(name)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with("RESULT")) else {
            println!(
                "| {name} | failed: {} |",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            );
            continue;
        };
        // The name may contain spaces: read the six numbers from the end.
        let f: Vec<&str> = line.split_whitespace().collect();
        let (cpu, n) = (f[f.len() - 6], &f[f.len() - 5..]);
        let bytes: f64 = n[0].parse().unwrap();
        let step: f64 = n[2].parse().unwrap();
        let base = *f32_ms.get_or_insert(step);
        println!(
            "| {name} | {:.1} | {} | {} | {:.2}x | {cpu} | {} | {} |",
            bytes / (1 << 20) as f64,
            n[1],
            n[2],
            step / base,
            n[3],
            n[4]
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    println!("# peftc quantized base weights");
    storage();
    dequant_speed();
    training();
}
