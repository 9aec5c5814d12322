//! `--executor slurm` for `peftc run` and `peftc plan`: the Slurm flags, and what each stage's
//! job asks for, from the pipeline: a train's device and the checker's memory estimate become
//! `--gres=gpu:N`, `--mem` and `--cpus-per-task`; the flags override them.

use super::pipeline::pipeline_root;
use crate::check::hir::{DeviceKind, Program};
use crate::exec::{JobResources, SlurmConfig};
use crate::plan::lower::{train_ids, EscalationChoice};
use crate::plan::Plan;
use clap::{Args, ValueEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ExecutorKind {
    /// In this process, independent stages on threads.
    #[default]
    Local,
    /// As Slurm batch jobs, one per stage, over the shared cache folder.
    Slurm,
}

/// The Slurm flags.
#[derive(Debug, Clone, Args, Default)]
pub struct SlurmArgs {
    /// Where stages run: `local` (default) or `slurm` (one batch job per stage).
    #[arg(long, value_enum, env = "PEFTC_EXECUTOR", default_value = "local")]
    pub executor: ExecutorKind,
    /// Slurm partition of the jobs.
    #[arg(long, env = "PEFTC_SLURM_PARTITION")]
    pub partition: Option<String>,
    /// Slurm account of the jobs.
    #[arg(long, env = "PEFTC_SLURM_ACCOUNT")]
    pub account: Option<String>,
    /// `--time` of every job (Slurm syntax, e.g. `2:00:00`); default: the partition's.
    #[arg(long = "time", env = "PEFTC_SLURM_TIME")]
    pub time: Option<String>,
    /// `--mem` of train jobs instead of the checker's estimate (e.g. `32G`, `4000M`).
    #[arg(long = "mem", env = "PEFTC_SLURM_MEM")]
    pub mem: Option<String>,
    /// `--cpus-per-task` of train, eval, quantize and merge jobs (other stages get 1).
    #[arg(long = "cpus-per-task", env = "PEFTC_SLURM_CPUS", default_value_t = 4)]
    pub cpus_per_task: u32,
    /// GPUs per train job instead of the pipeline's (`device = cuda(..)` trains ask for 1).
    #[arg(long = "gpus", env = "PEFTC_SLURM_GPUS")]
    pub gpus: Option<u32>,
    /// One more `sbatch` argument, given as is (repeatable), e.g. `--sbatch-arg=--qos=high`.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// The `peftc` binary the nodes run (default: this one; it must be at the same path there).
    #[arg(long = "peftc-bin", env = "PEFTC_SLURM_PEFTC")]
    pub peftc_bin: Option<PathBuf>,
    /// Milliseconds between two looks at the jobs (`squeue`).
    #[arg(long = "poll-ms", env = "PEFTC_SLURM_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
}

/// Stage kinds that compute with the model: they get `--cpus-per-task` and the device.
const HEAVY: [&str; 4] = ["train", "eval", "quantize", "merge"];

/// Extra host memory a train job asks for beyond the checker's estimate: the process, the
/// tokenizer and the data (the estimate counts weights, adapters, optimizer and activations).
const MEM_HEADROOM_MIB: u64 = 1024;

impl SlurmArgs {
    /// The executor's configuration for `plan`, lowered from `program` with `escalation`.
    pub fn config(
        &self,
        file: &Path,
        cache_dir: &Path,
        device: &str,
        program: &Program,
        plan: &Plan,
        escalation: &EscalationChoice,
    ) -> anyhow::Result<SlurmConfig> {
        let abs = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                std::env::current_dir().unwrap_or_default().join(p)
            }
        };
        let peftc = match &self.peftc_bin {
            Some(p) => abs(p),
            None => std::env::current_exe()?,
        };
        let root = pipeline_root(file);
        let pipeline = root.join(file.file_name().unwrap_or_default());
        let mem_override = self.mem.as_deref().map(parse_mem_mib).transpose()?;
        let light = JobResources {
            cpus: 1,
            mem_mib: None,
            gpus: 0,
            time: self.time.clone(),
            device: "cpu".to_owned(),
        };
        let device_is_gpu = device.starts_with("cuda");
        let mut resources = BTreeMap::new();
        for stage in plan.stages() {
            let heavy = HEAVY.contains(&stage.kind.as_str());
            let res = if heavy {
                JobResources {
                    cpus: self.cpus_per_task.max(1),
                    mem_mib: None,
                    gpus: u32::from(device_is_gpu),
                    time: self.time.clone(),
                    device: device.to_owned(),
                }
            } else {
                light.clone()
            };
            resources.insert(stage.id.0.clone(), res);
        }
        for t in &program.trains {
            let on_gpu = device_is_gpu
                || t.device
                    .as_deref()
                    .and_then(|d| program.device(d))
                    .is_some_and(|d| d.kind == DeviceKind::Cuda);
            let mem = mem_override.or_else(|| {
                t.figures
                    .as_ref()
                    .map(|f| f.memory.total.div_ceil(1 << 20) + MEM_HEADROOM_MIB)
            });
            for (id, _) in train_ids(program, t, escalation) {
                if let Some(r) = resources.get_mut(&id) {
                    r.mem_mib = mem;
                    r.gpus = match (self.gpus, on_gpu) {
                        (Some(n), _) => n,
                        (None, true) => 1,
                        (None, false) => 0,
                    };
                    if on_gpu && !r.device.starts_with("cuda") {
                        // One GPU is visible in the job, as device 0.
                        r.device = "cuda:0".to_owned();
                    }
                }
            }
        }
        let mut escalation: Vec<(String, usize)> =
            escalation.iter().map(|(k, v)| (k.clone(), *v)).collect();
        escalation.sort();
        Ok(SlurmConfig {
            peftc,
            pipeline,
            cache_dir: abs(cache_dir),
            workdir: root,
            partition: self.partition.clone(),
            account: self.account.clone(),
            escalation,
            resources,
            default_resources: light,
            extra: self.sbatch_args.clone(),
            log_filter: std::env::var("PEFTC_LOG").ok(),
            poll: Duration::from_millis(self.poll_ms.max(50)),
        })
    }
}

/// `32G`, `4000M`, `1T`, or a number of MiB, as MiB.
pub fn parse_mem_mib(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("--mem `{text}`: expected a size such as 32G or 4000M"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 1,
        "G" | "GB" | "GIB" => 1024,
        "T" | "TB" | "TIB" => 1024 * 1024,
        "K" | "KB" | "KIB" => return Ok(n.div_ceil(1024)),
        _ => anyhow::bail!("--mem `{text}`: unknown unit (use K, M, G or T)"),
    };
    Ok(n * factor)
}
