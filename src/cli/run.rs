//! `peftc run FILE [--only STAGE] [--force STAGE] [--device D] [--executor local|slurm]`: checks
//! the pipeline, plans it, runs the stages that are not cached (independent ones concurrently, in
//! this process or as Slurm jobs), updates `peftc.lock`, and escalates `escalate [...]` values
//! while a gate downstream fails (on Slurm: the next value's jobs are submitted after the gate of
//! the previous value failed). Ctrl-C stops stages at safe
//! points and keeps checkpoints. Exit 0 success, 1 errors or a failed stage, 2 usage or I/O,
//! 3 a gate failed, 130 cancelled.

use super::pipeline::{cache_dir, lock_path, pipeline_root, run_checked};
use super::slurm::{ExecutorKind, SlurmArgs};
use crate::check::hir::{Program, SearchMode};
use crate::exec::progress::stderr_reporter;
use crate::exec::{
    install_ctrlc, run_summary, Cache, CancelFlag, Lockfile, RunConfig, RunReport, StageRun,
};
use crate::plan::lower::{lower, EscalationChoice};
use crate::stages::{execute, preflight, publish_all, RunEnv};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run a pipeline: train, evaluate, gate and export what is not cached.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The `.peft` file.
    pub file: PathBuf,
    /// Run only these stages (and what they need).
    #[arg(long)]
    pub only: Vec<String>,
    /// Re-run these stages even when cached.
    #[arg(long)]
    pub force: Vec<String>,
    /// Device: `cpu`, `cuda:N` or `metal` (needs a build with that feature). By default the
    /// device the trains are declared `on`, else the CPU.
    #[arg(long, env = "PEFTC_DEVICE")]
    pub device: Option<String>,
    /// Stages run at once when independent.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Cache folder (default `.peft/` next to the pipeline).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

pub fn run(args: &RunArgs) -> ExitCode {
    crate::runtime::allocator::configure();
    run_checked(&args.file, |program| run_program(args, program))
}

fn run_program(args: &RunArgs, program: &Program) -> anyhow::Result<u8> {
    // Stages read the device from the environment, like a user setting PEFTC_DEVICE.
    let declared = declared_device(program);
    let device = match (&args.device, &declared) {
        (Some(d), Some((name, spec))) if d != spec => {
            eprintln!(
                "note: trains are declared on `{name}` ({spec}), but --device {d} runs them on {d}"
            );
            d.clone()
        }
        (Some(d), _) => d.clone(),
        (None, Some((_, spec))) => spec.clone(),
        (None, None) => "cpu".to_string(),
    };
    std::env::set_var("PEFTC_DEVICE", &device);
    let slurm = args.slurm.executor == ExecutorKind::Slurm;
    if slurm {
        if !crate::exec::slurm::slurm_available() {
            anyhow::bail!("--executor slurm: sbatch, squeue and scancel are not on PATH");
        }
    } else {
        let opened = crate::stages::device()?;
        if let Some((free, total)) = crate::stages::free_memory(&opened) {
            fits_free_memory(program, &device, free, total)?;
        }
    }
    let cache_folder = cache_dir(&args.file, args.cache_dir.as_deref());
    let cache = Cache::open(&cache_folder)?;
    let cancel = CancelFlag::new();
    let _ = install_ctrlc(cancel.clone());
    let env = RunEnv {
        pipeline: program.file.clone(),
        source: std::fs::read_to_string(&program.file).unwrap_or_default(),
    };
    let executor =
        |stage: &crate::plan::Stage, ctx: &crate::exec::StageContext| execute(stage, ctx, &env);
    let mut escalation = EscalationChoice::new();
    loop {
        let plan = lower(program, &escalation)?;
        let lock = lock_path(&args.file);
        let previous = Lockfile::read(&lock)?;
        let mut config = RunConfig::new(pipeline_root(&args.file));
        config.jobs = args.jobs.max(1);
        config.exclusive_kinds = ["train", "eval", "quantize", "merge"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        config.only = args.only.clone();
        config.force = args.force.clone();
        config.cancel = cancel.clone();
        config.reporter = stderr_reporter();
        // An explicit PEFTC_LOG also filters what stages write to their logs (default `info`).
        if let Ok(filter) = std::env::var("PEFTC_LOG") {
            config.stage_log_filter = filter;
        }
        // Before any stage runs: every export destination must be free or peftc's own.
        let refused = preflight(&plan, &args.only)?;
        if !refused.is_empty() {
            for e in &refused {
                eprintln!("error: {e}");
            }
            eprintln!("{}: nothing was run", args.file.display());
            return Ok(1);
        }
        let mut report = if slurm {
            let slurm_config = args.slurm.config(
                &args.file,
                &cache_folder,
                &device,
                program,
                &plan,
                &escalation,
            )?;
            let batch = crate::exec::SlurmExecutor::new(slurm_config);
            crate::exec::run_batch(&plan, &cache, &config, &batch)?
        } else {
            crate::exec::run(&plan, &cache, &config, &executor)?
        };
        for line in publish_all(&plan, &mut report, cache.hasher()) {
            eprintln!("{line}");
        }
        cache.save_stat_cache()?;
        let updated = Lockfile::update(previous.as_ref(), &plan, &report);
        if let Some(prev) = &previous {
            for d in prev.drift(&updated) {
                tracing::info!("lock drift: {d:?}");
            }
        }
        updated.write(&lock)?;
        eprint!("{}", run_summary(&report));
        eprint!("{}", memory_summary(program));
        eprint!("{}", sweep_summary(&report));
        if let Some(next) = escalate(program, &report, &escalation) {
            escalation = next;
            continue;
        }
        record_escalation(program, &report, &escalation);
        return Ok(report.exit_code());
    }
}

/// Refuses the run when a train's memory estimate (`peftc check --figures`, which counts fewer
/// bytes than a run uses, never more) is above the device's free memory measured now.
fn fits_free_memory(program: &Program, device: &str, free: u64, total: u64) -> anyhow::Result<()> {
    use crate::check::figures::human_bytes;
    for t in &program.trains {
        let Some(need) = t.figures.as_ref().map(|f| f.memory.total) else {
            continue;
        };
        if need > free {
            anyhow::bail!(
                "train `{}` needs about {} ({device} has {} free of {}, measured now); \
                 lower batch_size or max_len, quantize the base (nf4), or free the GPU",
                t.meta.name,
                human_bytes(need),
                human_bytes(free),
                human_bytes(total)
            );
        }
    }
    Ok(())
}

/// For every train stage that ran: its measured peak resident memory (`VmHWM` while it
/// trained) next to the checker's estimate (`peftc check --figures`, at the dataset's
/// `max_len`) and, when the run's longest batch was shorter, the same estimate at that length.
fn memory_summary(program: &Program) -> String {
    use crate::check::figures::{compute, human_bytes, train_config};
    let mut out = String::new();
    for peak in crate::runtime::process_memory::take_peaks() {
        let train = program
            .trains
            .iter()
            .find(|t| peak.id == format!("train.{}", t.meta.name));
        let estimate = train
            .and_then(|t| t.figures.as_ref())
            .map(|f| f.memory.total);
        let measured = human_bytes(peak.bytes);
        let _ = match estimate {
            Some(e) if e > 0 => {
                let at_len = train.and_then(|t| {
                    let model = program.model(&t.model)?;
                    let shape = model.shape.as_ref()?;
                    let declared = train_config(program, t, None);
                    (peak.longest_batch > 0 && peak.longest_batch < declared.max_len).then(|| {
                        let cfg = train_config(program, t, Some(peak.longest_batch));
                        compute(t, model, shape, cfg).memory.total
                    })
                });
                match at_len {
                    Some(a) if a > 0 => writeln!(
                        out,
                        "memory {}: peak resident {measured} measured, {} estimated at max_len, \
                         {} at the longest batch's {} tokens (measured / estimated = {:.2})",
                        peak.id,
                        human_bytes(e),
                        human_bytes(a),
                        peak.longest_batch,
                        peak.bytes as f64 / a as f64
                    ),
                    _ => writeln!(
                        out,
                        "memory {}: peak resident {measured} measured, {} estimated \
                         (measured / estimated = {:.2})",
                        peak.id,
                        human_bytes(e),
                        peak.bytes as f64 / e as f64
                    ),
                }
            }
            _ => writeln!(out, "memory {}: peak resident {measured} measured", peak.id),
        };
    }
    out
}

/// The device the trains are declared `on` (the first that is not the CPU) as `--device` spells
/// it, with the device's name.
fn declared_device(program: &Program) -> Option<(String, String)> {
    use crate::check::hir::DeviceKind;
    program
        .trains
        .iter()
        .filter_map(|t| program.device(t.device.as_deref()?))
        .find_map(|d| match d.kind {
            DeviceKind::Cpu => None,
            DeviceKind::Cuda => Some((d.meta.name.clone(), format!("cuda:{}", d.index))),
            DeviceKind::Metal => Some((d.meta.name.clone(), "metal".to_string())),
        })
}

/// One block per swept train: each point's rank value and gate verdict, and the point chosen.
fn sweep_summary(report: &RunReport) -> String {
    let mut out = String::new();
    for s in report.stages.iter().filter(|s| s.kind == "select") {
        let points = s.output["points"]
            .as_array()
            .or_else(|| s.gate.as_ref().and_then(|g| g.details["points"].as_array()))
            .cloned()
            .unwrap_or_default();
        if points.is_empty() {
            continue;
        }
        let by = s.output["rank"]["by"].as_str().unwrap_or("rank");
        out.push_str(&format!(
            "{}: {} points, ranked by {by}\n",
            s.name,
            points.len()
        ));
        for p in &points {
            let label = p["point"].as_str().unwrap_or("");
            let chosen = s.output["selected"].as_str() == Some(label);
            let verdict = match p["failed"].as_str() {
                Some(f) => format!("failed: {f}"),
                None => "gates pass".to_string(),
            };
            out.push_str(&format!(
                "  {} {label:<24} {:>10.4}  {verdict}\n",
                if chosen { "*" } else { " " },
                p["score"].as_f64().unwrap_or(f64::NAN)
            ));
        }
    }
    out
}

/// The next escalation choice when a gate over an escalating train failed and a value is left.
fn escalate(
    program: &Program,
    report: &RunReport,
    current: &EscalationChoice,
) -> Option<EscalationChoice> {
    let mut next = current.clone();
    let mut changed = false;
    for t in &program.trains {
        let Some(search) = t.searches.iter().find(|s| s.mode == SearchMode::Escalate) else {
            continue;
        };
        let idx = current.get(&t.meta.name).copied().unwrap_or(0);
        if idx + 1 >= search.values.len() || !gate_failed_over(program, report, &t.meta.name) {
            continue;
        }
        eprintln!(
            "escalating `{}`: a gate failed with {} = {}; trying {} = {}",
            t.meta.name,
            search.field,
            search.values[idx],
            search.field,
            search.values[idx + 1]
        );
        next.insert(t.meta.name.clone(), idx + 1);
        changed = true;
    }
    changed.then_some(next)
}

fn gate_failed_over(program: &Program, report: &RunReport, train: &str) -> bool {
    // A swept train's gates are decided per point by its select stage.
    let select_failed = matches!(
        report.get(&format!("select.{train}")).map(|s| &s.state),
        Some(StageRun::GateFailed { .. })
    );
    select_failed
        || program.evals.iter().any(|e| {
            let over = match &e.subject {
                crate::check::hir::EvalSubject::Train { train: t } => t == train,
                crate::check::hir::EvalSubject::Combined { adapters, .. } => {
                    adapters.refs().iter().any(|r| r.train == train)
                }
                _ => false,
            };
            over && matches!(
                report
                    .get(&format!("gate.{}", e.meta.name))
                    .map(|s| &s.state),
                Some(StageRun::GateFailed { .. })
            )
        })
}

fn record_escalation(program: &Program, report: &RunReport, choice: &EscalationChoice) {
    for t in &program.trains {
        let Some(search) = t.searches.iter().find(|s| s.mode == SearchMode::Escalate) else {
            continue;
        };
        let idx = choice.get(&t.meta.name).copied().unwrap_or(0);
        if !gate_failed_over(program, report, &t.meta.name) {
            eprintln!(
                "`{}` passed its gates with {} = {}",
                t.meta.name, search.field, search.values[idx]
            );
        }
    }
}
