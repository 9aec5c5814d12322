//! `peftc plan FILE [--format text|json] [--dot]`: the stages a run would execute, each cached or
//! to run and why, with the checker's figures. Runs nothing. Exit 0, 1 errors, 2 I/O.

use super::pipeline::{cache_dir, checked_program, lock_path, pipeline_root, Purpose, Unusable};
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
    let cache = Cache::open(cache_dir(&args.file, args.cache_dir.as_deref()))?;
    let previous = Lockfile::read(&lock_path(&args.file))?;
    let config = StatusConfig {
        root: pipeline_root(&args.file),
        previous: previous.as_ref(),
        ..Default::default()
    };
    let status = plan_status(&plan, &cache, &config)?;
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
