//! What a stage executor returns ([`StageOutcome`]) and what it is given ([`StageContext`]):
//! input folders, a temporary output folder, a log file, a checkpoint folder, a cancel flag and
//! a progress handle. It must not hold scheduling logic.

use super::manifest::GateFailure;
use super::progress::ProgressHandle;
use crate::plan::{Digest, StageKey};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A shared flag set on Ctrl-C (or by watch mode); stages poll it at safe points.
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn new() -> Self {
        Self::default()
    }
    /// Asks every stage to stop at its next safe point.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
    /// `Err(Cancelled)` when the flag is set: `ctx.cancel.check()?` at a safe point.
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(Cancelled)
        } else {
            Ok(())
        }
    }
    /// The flag itself, for code that polls an `AtomicBool` (the trainer).
    pub fn as_atomic(&self) -> &AtomicBool {
        &self.0
    }
    /// Clears the flag (watch mode, before the next cycle).
    pub fn reset(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The error a stage returns when it stops because of [`CancelFlag`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Installs a Ctrl-C handler that sets `flag` (stages stop at safe points); a second Ctrl-C
/// exits at once with code 130. Fails if a handler is already installed in this process.
pub fn install_ctrlc(flag: CancelFlag) -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(move || {
        if flag.is_cancelled() {
            std::process::exit(130);
        }
        eprintln!("stopping at the next safe point (Ctrl-C again to quit now)");
        flag.cancel();
    })
}

/// What a finished stage produced. Files go into [`StageContext::out_dir`].
#[derive(Clone, Debug, PartialEq, Default)]
pub struct StageOutcome {
    /// Small JSON result (metrics, ...), part of the output digest.
    pub output: Value,
    /// Information not part of the output digest (timings, notes).
    pub metadata: Value,
    /// `Some` when a gate failed: dependants are blocked and the run exits with code 3.
    pub gate: Option<GateFailure>,
}

impl StageOutcome {
    /// A successful stage whose result is only its files.
    pub fn done() -> Self {
        Self::default()
    }
    /// A successful stage with a JSON result.
    pub fn with_output(output: Value) -> Self {
        StageOutcome {
            output,
            ..Self::default()
        }
    }
    /// A gate that failed, with a line and details (metric, threshold, baseline).
    pub fn gate_failed(message: impl Into<String>, details: Value) -> Self {
        StageOutcome {
            gate: Some(GateFailure {
                message: message.into(),
                details,
            }),
            ..Self::default()
        }
    }
    /// Adds metadata.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }
}

/// One input of a running stage: the producer's cache folder and result.
#[derive(Clone, Debug)]
pub struct InputArtifact {
    /// The producer's output files (read-only; inside the cache).
    pub dir: PathBuf,
    /// The producer's JSON result.
    pub output: Value,
    /// The producer's output digest.
    pub digest: Digest,
}

/// Everything a stage executor gets besides the [`crate::plan::Stage`] itself.
#[derive(Debug)]
pub struct StageContext {
    /// The stage's content key and its record.
    pub key: Digest,
    pub stage_key: StageKey,
    /// Inputs by slot.
    pub inputs: BTreeMap<String, InputArtifact>,
    /// File inputs by slot, resolved against the run root.
    pub files: BTreeMap<String, PathBuf>,
    /// Empty folder to write outputs into; moved into the cache on success.
    pub out_dir: PathBuf,
    /// Per-stage log file (overwritten per run); the engine creates it empty.
    pub log_path: PathBuf,
    /// Folder that survives cancellation, keyed by the stage key (training checkpoints).
    pub checkpoint_dir: PathBuf,
    /// Set on Ctrl-C; check it at safe points and return an error when set.
    pub cancel: CancelFlag,
    /// Inner progress (a bar inside long stages).
    pub progress: ProgressHandle,
}

impl StageContext {
    /// The input in `slot`.
    pub fn input(&self, slot: &str) -> Option<&InputArtifact> {
        self.inputs.get(slot)
    }
}
