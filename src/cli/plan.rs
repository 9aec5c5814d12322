//! `peftc plan FILE [--format text|json] [--dot] [--executor slurm]`: the stages a run would
//! execute, each cached or to run and why, with the checker's figures; with `--executor slurm`,
//! the `sbatch` lines a run would submit (a dry run, as a shell script). Runs nothing. Exit 0,
//! 1 errors, 2 I/O.

use super::pipeline::{cache_dir, checked_program, lock_path, pipeline_root, Purpose, Unusable};
use super::slurm::{ExecutorKind, SlurmArgs};
use crate::exec::{plan_status, Cache, Lockfile, StatusConfig};
use crate::plan::{lower, render};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

/// Show the stages of a pipeline, cached or to run, and why.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The `.peft` file.
    pub file: PathBuf,
    /// `text` (default) or `json`.
    #[arg(long, value_enum, default_value = "text")]
    pub format: PlanFormat,
    /// Print the stage graph in Graphviz dot instead.
    #[arg(long)]
    pub dot: bool,
    /// Cache folder (default `.peft/` next to the pipeline).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Device the run would use (for `--executor slurm`: which jobs ask for a GPU).
    #[arg(long, env = "PEFTC_DEVICE", default_value = "cpu")]
    pub device: String,
    #[command(flatten)]
    pub slurm: SlurmArgs,
}

pub fn run(args: &PlanArgs) -> ExitCode {
    let program = match checked_program(&args.file, Purpose::Inspect) {
        Ok(p) => p,
        Err(Unusable::Errors) => return ExitCode::from(1),
        Err(Unusable::Io(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match show(args, &program) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn show(args: &PlanArgs, program: &crate::check::Program) -> anyhow::Result<()> {
    let plan = lower::lower(program, &Default::default())?;
    let cache_folder = cache_dir(&args.file, args.cache_dir.as_deref());
    let cache = Cache::open(&cache_folder)?;
    let previous = Lockfile::read(&lock_path(&args.file))?;
    let config = StatusConfig {
        root: pipeline_root(&args.file),
        previous: previous.as_ref(),
        ..Default::default()
    };
    let status = plan_status(&plan, &cache, &config)?;
    if args.slurm.executor == ExecutorKind::Slurm {
        let slurm = args.slurm.config(
            &args.file,
            &cache_folder,
            &args.device,
            program,
            &plan,
            &Default::default(),
        )?;
        print!("{}", sbatch_script(&plan, &status, &slurm));
        return Ok(());
    }
    let out = if args.dot {
        render::dot(&plan, &status)
    } else {
        match args.format {
            PlanFormat::Text => render::text(&plan, &status),
            PlanFormat::Json => render::json(&plan, &status),
        }
    };
    print!("{out}");
    if !args.dot && args.format == PlanFormat::Text {
        print!("{}", data_summaries(&plan, &status, &cache));
        let drift = crate::stages::export_drift(&plan, &status, &cache);
        if !drift.is_empty() {
            println!("\nexports:");
            for line in drift {
                println!("  {line}");
            }
        }
    }
    Ok(())
}

/// The data summary (counts, token lengths, label balance) of every tokenize stage whose result
/// is cached; the others get theirs once `peftc run` has tokenized them.
fn data_summaries(
    plan: &crate::plan::Plan,
    status: &crate::plan::PlanStatus,
    cache: &Cache,
) -> String {
    let mut out = String::new();
    for st in &status.stages {
        let Some(stage) = plan.stages().iter().find(|s| s.id == st.id) else {
            continue;
        };
        if stage.kind != "tokenize" {
            continue;
        }
        let Some(key) = &st.key else { continue };
        let Ok(crate::exec::Lookup::Hit(entry)) = cache.lookup(key) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(entry.out_dir.join("summary.json")) else {
            continue;
        };
        let Ok(summary) = serde_json::from_str::<crate::runtime::data::DataSummary>(&text) else {
            continue;
        };
        out.push_str(&format!("\ndata of {}:\n{summary}", stage.name));
    }
    out
}

/// The dry run of `--executor slurm`: the `sbatch` lines a run would submit now, as a shell
/// script (each job's id in `jN`, dependants naming it in `--dependency=afterok:$jN`).
fn sbatch_script(
    plan: &crate::plan::Plan,
    status: &crate::plan::PlanStatus,
    config: &crate::exec::SlurmConfig,
) -> String {
    let executor = crate::exec::SlurmExecutor::new(config.clone());
    let subs = crate::exec::batch::batch_submissions(plan, status);
    let cached = status
        .stages
        .iter()
        .filter(|s| s.state == crate::plan::StageState::Cached)
        .count();
    let mut out = format!(
        "# peftc run --executor slurm would submit {} job(s); {cached} stage(s) cached, not submitted\n",
        subs.len()
    );
    let mut vars = std::collections::BTreeMap::new();
    for (n, (i, parents)) in subs.iter().enumerate() {
        let stage = &plan.stages()[*i];
        let var = format!("j{}", n + 1);
        let after: Vec<String> = parents
            .iter()
            .filter_map(|p| vars.get(p).map(|v| format!("${v}")))
            .collect();
        out.push_str(&format!("# {}\n", stage.name));
        out.push_str(&executor.dry_run_line(&var, stage, &after));
        out.push('\n');
        vars.insert(*i, var);
    }
    out
}
