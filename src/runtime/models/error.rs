//! Errors of model loading and running, each naming the file, field or tensor concerned.

use crate::runtime::models::source::LoadError;

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ModelError {
    /// Reading a weight failed (missing tensor, wrong shape, truncated file, `.bin` refused).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] LoadError),
    /// A file could not be read.
    #[error("cannot read {file}: {message}")]
    #[diagnostic(code(peftc::model::io))]
    Io { file: String, message: String },
    /// `config.json` is not valid or lacks a field.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::model::config))]
    Config { file: String, message: String },
    /// The architecture is not one peftc implements.
    #[error("{file}: unknown architecture `{model_type}`")]
    #[diagnostic(
        code(peftc::model::unknown_architecture),
        help("supported model_type values: {supported}")
    )]
    UnknownArchitecture {
        file: String,
        model_type: String,
        supported: String,
    },
    /// The tokenizer could not be loaded.
    #[error("{file}: cannot load tokenizer: {message}")]
    #[diagnostic(code(peftc::model::tokenizer))]
    Tokenizer { file: String, message: String },
    /// A tensor operation failed while running the model.
    #[error("{context}: {source}")]
    #[diagnostic(code(peftc::model::tensor))]
    Tensor {
        context: String,
        #[source]
        source: candle_core::Error,
    },
}

impl ModelError {
    /// Wraps a candle error with what was being done.
    pub fn tensor(context: &str) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.to_string();
        move |source| Self::Tensor { context, source }
    }
}
