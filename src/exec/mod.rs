//! The execution engine: a content-addressed stage cache, a stat-cached file hasher, the
//! `peftc.lock` lockfile with drift detection, the scheduler that runs a [`crate::plan::Plan`]
//! through a caller-supplied stage executor (in-process threads, [`run`]) or a job system
//! ([`run_batch`] with [`SlurmExecutor`]), progress, run reports and file watching.
//!
//! It is generic over stage kinds: what a stage *does* is the executor's business
//! (`Fn(&Stage, &StageContext) -> anyhow::Result<StageOutcome>`). It must not know tensor math.
//!
//! ```no_run
//! use peftc::exec::{plan_status, run, Cache, Lockfile, RunConfig, StageOutcome, StatusConfig};
//! use peftc::plan::{render, Plan, Stage};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let plan = Plan::new(vec![
//!     Stage::new("tokenize", "tokenize", json!({"max_len": 128})).file("data", "train.jsonl"),
//!     Stage::new("train", "train", json!({"r": 8, "lr": 2e-4})).input("data", "tokenize"),
//! ])?;
//! let root = std::path::Path::new(".");
//! let cache = Cache::open(root.join(".peft"))?;
//! let previous = Lockfile::read(&root.join("peftc.lock"))?;
//!
//! // `peftc plan`: what would run, and why.
//! let status_config = StatusConfig { root: root.into(), previous: previous.as_ref(), ..Default::default() };
//! println!("{}", render::text(&plan, &plan_status(&plan, &cache, &status_config)?));
//!
//! // `peftc run`: the executor dispatches on the stage kind.
//! let executor = |stage: &Stage, ctx: &peftc::exec::StageContext| -> anyhow::Result<StageOutcome> {
//!     std::fs::write(ctx.out_dir.join("out.txt"), stage.kind.as_bytes())?;
//!     Ok(StageOutcome::done())
//! };
//! let report = run(&plan, &cache, &RunConfig::new(root), &executor)?;
//! let lock = Lockfile::update(previous.as_ref(), &plan, &report);
//! lock.write(&root.join("peftc.lock"))?;
//! std::process::exit(i32::from(report.exit_code()));
//! # }
//! ```

mod atomic;
pub mod batch;
pub mod cache;
mod error;
pub mod hasher;
pub mod lineage;
pub mod lockfile;
pub mod manifest;
pub mod nfslock;
mod outcome;
pub mod progress;
pub mod report;
mod report_types;
pub mod scheduler;
pub mod slurm;
mod stage_run;
mod status;
mod summary;
pub mod watch;

pub use atomic::{unique_suffix, write_atomic};
pub use batch::{run_batch, BatchExecutor, JobId, JobState, Submission};
pub use cache::{Cache, Entry, GcConfig, Lookup};
pub use error::{ExecError, Result};
pub use hasher::FileHasher;
pub use lineage::{merge_lineage, LINEAGE_FILE};
pub use lockfile::{Drift, LockedStage, Lockfile};
pub use manifest::{GateFailure, Manifest};
pub use outcome::{
    install_ctrlc, CancelFlag, Cancelled, InputArtifact, StageContext, StageOutcome,
};
pub use progress::{
    NullReporter, PlainReporter, ProgressHandle, Reporter, StageEvent, TerminalReporter,
};
pub use report::{read_loss_jsonl, write_report, LossPoint, MetricRow, ReportInput};
pub use report_types::{RunReport, StageReport, StageRun};
pub use scheduler::{run, RunConfig, StageExecutor};
pub use slurm::{JobResources, SlurmConfig, SlurmExecutor};
pub use status::{plan_status, StatusConfig};
pub use summary::run_summary;
pub use watch::{FileWatcher, WatchBatch, WatchConfig};
