//! Typed errors of the training loop. Each variant names what it concerns (the parameter, the
//! file, the config field, the phase); none of them is a panic.

use miette::Diagnostic;
use std::path::PathBuf;
use thiserror::Error;

/// What went wrong while training.
#[derive(Debug, Error, Diagnostic)]
pub enum TrainError {
    /// A config field has a value the loop cannot run with.
    #[error("train config: `{field}` {reason}")]
    #[diagnostic(code(peftc::train::invalid_config))]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// The data set is empty.
    #[error("no training examples")]
    #[diagnostic(code(peftc::train::no_examples))]
    NoExamples,
    /// The model lists nothing to train.
    #[error("the model has no trainable parameters")]
    #[diagnostic(
        code(peftc::train::nothing_to_train),
        help("attach an adapter or list modules_to_save")
    )]
    NothingToTrain,
    /// A trainable parameter received no gradient from the first backward pass: something
    /// between it and the loss cuts the graph (a fused op without backward, a detach).
    #[error("trainable parameter `{param}` received no gradient after the first backward pass")]
    #[diagnostic(
        code(peftc::train::no_gradient),
        help("the model's training path must not use fused ops without backward (rms_norm, layer_norm, rope, softmax_last_dim, QMatMul)")
    )]
    NoGradient {
        /// PEFT name of the parameter.
        param: String,
    },
    /// The loss became NaN or infinite.
    #[error("loss is not finite ({loss}) at step {step}")]
    #[diagnostic(
        code(peftc::train::non_finite_loss),
        help("lower the learning rate or clip gradients")
    )]
    NonFiniteLoss {
        /// Optimizer step (1-based) being computed.
        step: u64,
        /// The value.
        loss: f64,
    },
    /// A batch lacks the labels the model's head needs.
    #[error("batch has no {what} labels (examples {first}..{last})")]
    #[diagnostic(code(peftc::train::missing_labels))]
    MissingLabels {
        /// `causal` or `class`.
        what: &'static str,
        /// First example index of the batch in the data set.
        first: usize,
        /// Last example index.
        last: usize,
    },
    /// A tensor operation failed.
    #[error("{phase}: {source}")]
    #[diagnostic(code(peftc::train::tensor))]
    Tensor {
        /// Where: `forward`, `loss`, `backward`, `optimizer`, `collate`...
        phase: &'static str,
        /// The candle error.
        #[source]
        source: candle_core::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    #[diagnostic(code(peftc::train::io))]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A checkpoint is unreadable or does not fit this run.
    #[error("checkpoint {path}: {reason}")]
    #[diagnostic(
        code(peftc::train::checkpoint),
        help("delete the checkpoints folder to start over")
    )]
    Checkpoint {
        /// The checkpoint folder or file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The cancel flag was set; a checkpoint was written at the step reached.
    #[error("training cancelled at step {step}")]
    #[diagnostic(code(peftc::train::cancelled))]
    Cancelled {
        /// Optimizer steps completed.
        step: u64,
        /// The checkpoint written (none when the run has no output folder).
        checkpoint: Option<PathBuf>,
    },
}

/// Attaches a phase to candle results.
pub(crate) trait TensorContext<T> {
    fn phase(self, phase: &'static str) -> Result<T, TrainError>;
}

impl<T> TensorContext<T> for candle_core::Result<T> {
    fn phase(self, phase: &'static str) -> Result<T, TrainError> {
        self.map_err(|source| TrainError::Tensor { phase, source })
    }
}

/// Attaches a path to I/O results.
pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, TrainError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, TrainError> {
        self.map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
