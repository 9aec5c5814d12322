//! Errors found while assembling a [`crate::plan::Plan`]: duplicate ids, unknown inputs, cycles.

/// A plan that cannot be scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    /// Two stages share one id.
    #[error("two stages have the id `{id}`")]
    #[diagnostic(
        code(peftc::plan::duplicate_stage),
        help("stage ids must be unique in a plan")
    )]
    DuplicateStage { id: String },
    /// An input names a stage that is not in the plan.
    #[error("stage `{stage}` reads input `{slot}` from `{missing}`, which is not in the plan")]
    #[diagnostic(code(peftc::plan::unknown_input))]
    UnknownInput {
        stage: String,
        slot: String,
        missing: String,
    },
    /// The stages' inputs form a cycle.
    #[error("the stages form a cycle: {}", cycle.join(" -> "))]
    #[diagnostic(
        code(peftc::plan::cycle),
        help("a stage cannot depend on its own output")
    )]
    Cycle { cycle: Vec<String> },
    /// `--only` / `--force` named a stage that is not in the plan.
    #[error("no stage `{id}` in the plan (stages: {})", known.join(", "))]
    #[diagnostic(code(peftc::plan::no_such_stage))]
    NoSuchStage { id: String, known: Vec<String> },
}
