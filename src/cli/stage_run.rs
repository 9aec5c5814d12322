//! `peftc stage-run FILE --stage ID` (hidden): what one batch job runs. It lowers the pipeline
//! exactly as the driver did (same escalation choice), then runs stage ID alone: every stage it
//! needs must already be in the shared cache (the jobs that built them ended before this one
//! started), so a missing one fails instead of being rebuilt here. The driver writes
//! `peftc.lock`, not the job. Exit 0 the stage is in the cache, 1 it failed, 2 usage or I/O,
//! 3 its gate failed (so that Slurm cancels its dependants), 130 cancelled.

use super::pipeline::{cache_dir, pipeline_root, run_checked};
use crate::exec::progress::PlainReporter;
use crate::exec::{install_ctrlc, run_summary, Cache, CancelFlag, RunConfig, StageRun};
use crate::plan::lower::{lower, EscalationChoice};
use crate::stages::{execute, RunEnv};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Run one stage of a pipeline whose inputs are cached (the entry point of a batch job).
#[derive(Debug, Args)]
pub struct StageRunArgs {
    /// The `.peft` file.
    pub file: PathBuf,
    /// The stage id.
    #[arg(long)]
    pub stage: String,
    /// Cache folder (shared with the driver).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Device of this job.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// `TRAIN=INDEX`: the escalation value the driver's plan uses for TRAIN.
    #[arg(long)]
    pub escalation: Vec<String>,
    /// Execute the stage even when cached.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &StageRunArgs) -> ExitCode {
    crate::runtime::allocator::configure();
    run_checked(&args.file, |program| run_stage(args, program))
}

fn run_stage(args: &StageRunArgs, program: &crate::check::Program) -> anyhow::Result<u8> {
    std::env::set_var("PEFTC_DEVICE", &args.device);
    crate::stages::device()?;
    let mut escalation = EscalationChoice::new();
    for e in &args.escalation {
        let (train, idx) = e
            .split_once('=')
            .and_then(|(t, i)| Some((t.to_owned(), i.parse::<usize>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("--escalation `{e}`: expected TRAIN=INDEX"))?;
        escalation.insert(train, idx);
    }
    let plan = lower(program, &escalation)?;
    plan.require(&args.stage)?;
    let cache = Cache::open(cache_dir(&args.file, args.cache_dir.as_deref()))?;
    let cancel = CancelFlag::new();
    let _ = install_ctrlc(cancel.clone());
    let env = RunEnv {
        pipeline: program.file.clone(),
        source: std::fs::read_to_string(&program.file).unwrap_or_default(),
    };
    let target = args.stage.as_str();
    let executor = |stage: &crate::plan::Stage, ctx: &crate::exec::StageContext| {
        if stage.id.as_str() != target {
            anyhow::bail!(
                "stage {} is not in the cache, though the job that builds it ended before this \
                 one started (is the cache folder shared between the nodes?)",
                stage.id
            );
        }
        execute(stage, ctx, &env)
    };
    let mut config = RunConfig::new(pipeline_root(&args.file));
    config.jobs = 1;
    config.only = vec![args.stage.clone()];
    if args.force {
        config.force = vec![args.stage.clone()];
    }
    config.cancel = cancel;
    config.reporter = Arc::new(PlainReporter::new(std::io::stderr()));
    let report = crate::exec::run(&plan, &cache, &config, &executor)?;
    eprint!("{}", run_summary(&report));
    let code = match report.get(target).map(|s| &s.state) {
        Some(StageRun::Ran | StageRun::Cached) => report.exit_code(),
        Some(StageRun::GateFailed { .. }) => 3,
        Some(StageRun::Cancelled) => 130,
        _ => 1,
    };
    Ok(code)
}
