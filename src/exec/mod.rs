//! The execution engine: a content-addressed stage cache, a stat-cached file hasher, the
//! `peftc.lock` lockfile with drift detection, the scheduler that runs a [`crate::plan::Plan`]
//! through a caller-supplied stage executor, progress, run reports and file watching.
//!
//! It is generic over stage kinds: what a stage *does* is the executor's business
//! (`Fn(&Stage, &StageContext) -> anyhow::Result<StageOutcome>`). It must not know tensor math.

mod atomic;
pub mod cache;
mod error;
pub mod hasher;
pub mod lineage;
pub mod lockfile;
pub mod manifest;
mod outcome;
pub mod progress;
pub mod report;
mod report_types;
pub mod scheduler;
mod stage_run;
mod status;
mod summary;
pub mod watch;

pub use atomic::write_atomic;
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
pub use status::{plan_status, StatusConfig};
pub use summary::run_summary;
pub use watch::{FileWatcher, WatchBatch, WatchConfig};
