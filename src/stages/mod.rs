//! # stages: what each stage kind of a pipeline does
//!
//! The execution engine ([`crate::exec`]) is generic over stage kinds; this module is the
//! executor it is given for `.peft` pipelines: one file per kind of [`StageKind`], each reading its
//! canonical config and its inputs' folders and calling into [`crate::runtime`]. It must not
//! schedule, cache or hash (the engine does) and must not read `.peft` syntax (the planner does).

mod adapters;
mod audit;
mod eval;
mod export;
mod gate;
mod import_stage;
mod loaded;
mod merge;
mod model_stage;
mod outputs;
pub mod publish;
mod quantize;
mod select;
mod tokenize;
mod train;

pub use eval::EvalOutput;
pub use loaded::{device, free_memory, load_local, quant_spec, Loaded};
pub use outputs::{drift as export_drift, preflight, publish_all};

use crate::exec::{StageContext, StageOutcome};
use crate::plan::configs::StageKind;
use crate::plan::Stage;
use anyhow::bail;
use std::path::PathBuf;

/// What every stage of one run may need to know about the run itself.
#[derive(Clone, Debug, Default)]
pub struct RunEnv {
    /// The `.peft` file.
    pub pipeline: PathBuf,
    /// Its source text (recorded in lineage).
    pub source: String,
}

/// Executes one stage.
pub fn execute(stage: &Stage, ctx: &StageContext, env: &RunEnv) -> anyhow::Result<StageOutcome> {
    let Some(kind) = StageKind::parse(&stage.kind) else {
        bail!("unknown stage kind `{}`", stage.kind);
    };
    let _span = tracing::info_span!("stage", id = %stage.id, kind = kind.name()).entered();
    match kind {
        StageKind::Model => model_stage::run(stage, ctx),
        StageKind::Quantize => quantize::run(stage, ctx),
        StageKind::Tokenize => tokenize::run(stage, ctx, env),
        StageKind::Train => train::run(stage, ctx),
        StageKind::Eval => eval::run(stage, ctx),
        StageKind::Gate => gate::run(stage, ctx),
        StageKind::Select => select::run(stage, ctx),
        StageKind::Merge => merge::run(stage, ctx),
        StageKind::Export => export::run(stage, ctx, env),
        StageKind::Import => import_stage::run(stage, ctx),
    }
}
