//! The command line: one file per subcommand, each turning arguments into a call into the library
//! and an exit code. Exit codes: 0 success (warnings allowed), 1 errors in the input, 2 usage or
//! I/O failure, 3 a gate failed.

pub mod cache;
pub mod check;
pub mod explain;
pub mod fmt;
pub mod gpu_check;
pub mod lsp;
pub mod pipeline;
pub mod plan;
pub mod run;
pub mod serve;
pub mod slurm;
pub mod stage_run;
pub mod watch;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Declarative, checked and incremental LoRA / QLoRA / adapter fine-tuning.
#[derive(Debug, Parser)]
#[command(name = "peftc", version, about)]
pub struct Cli {
    /// Log filter for tracing (e.g. `info`, `peftc=debug`); also read from PEFTC_LOG.
    #[arg(long, global = true, env = "PEFTC_LOG", default_value = "warn")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a pipeline: names, types, the model's modules and shapes, memory; before any compute.
    Check(check::CheckArgs),
    /// Explain a diagnostic code with an example and its fix.
    Explain(explain::ExplainArgs),
    /// Show the stages of a pipeline, cached or to run, and why.
    Plan(plan::PlanArgs),
    /// Run a pipeline: train, evaluate, gate and export what is not cached.
    Run(run::RunArgs),
    /// Inspect and clean the stage cache.
    Cache(cache::CacheArgs),
    /// Format `.peft` files in the canonical layout.
    Fmt(fmt::FmtArgs),
    /// Run the language server over stdin and stdout (for editors).
    Lsp(lsp::LspArgs),
    /// Serve a base model and many adapters, switched per request (OpenAI-compatible HTTP).
    Serve(serve::ServeArgs),
    /// Re-check on every save of the pipeline, its imports, data and local models; re-run what changed.
    Watch(watch::WatchArgs),
    /// Run one stage whose inputs are cached: the entry point of a batch job.
    #[command(hide = true)]
    StageRun(stage_run::StageRunArgs),
    /// Compare a GPU with the CPU (parity) and time training on it: `scripts/gpu-check.sh`.
    #[command(hide = true)]
    GpuCheck(gpu_check::GpuCheckArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    match cli.command {
        Command::Check(a) => check::run(&a),
        Command::Explain(a) => explain::run(&a),
        Command::Plan(a) => plan::run(&a),
        Command::Run(a) => run::run(&a),
        Command::Cache(args) => cache::run(args),
        Command::Fmt(a) => fmt::run(&a),
        Command::Lsp(a) => lsp::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Watch(args) => watch::run(args),
        Command::StageRun(a) => stage_run::run(&a),
        Command::GpuCheck(a) => gpu_check::run(&a),
    }
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
