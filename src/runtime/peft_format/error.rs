//! Errors reading and writing PEFT folders, each naming the file and key concerned.

/// What can go wrong with a PEFT folder.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PeftFormatError {
    /// A file could not be read or written.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::peft::io))]
    Io { file: String, message: String },
    /// `adapter_config.json` is invalid or describes something peftc does not load.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::peft::config))]
    Config { file: String, message: String },
    /// A weight in the adapter does not belong to any layer of the model.
    #[error("{file}: key `{key}` matches no layer of the model")]
    #[diagnostic(
        code(peftc::peft::unexpected_key),
        help("the adapter was probably trained on another base model or architecture")
    )]
    UnexpectedKey { file: String, key: String },
    /// A weight has another shape than the layer needs.
    #[error("{file}: `{key}` has shape {found:?}, the layer needs {expected:?}")]
    #[diagnostic(
        code(peftc::peft::shape),
        help("the adapter was trained on a base model of another size")
    )]
    Shape {
        file: String,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The adapter has no weight for the model.
    #[error("{file}: no adapter weight matches a layer of the model")]
    #[diagnostic(code(peftc::peft::empty))]
    Empty { file: String },
    /// An adapter operation failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Adapter(#[from] crate::runtime::adapters::error::AdapterError),
    /// Reading the base model failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(#[from] crate::runtime::models::source::LoadError),
    /// A tensor operation failed.
    #[error("{context}: {source}")]
    #[diagnostic(code(peftc::peft::tensor))]
    Tensor {
        context: String,
        #[source]
        source: candle_core::Error,
    },
}

impl PeftFormatError {
    /// Wraps a candle error with what was being done.
    pub fn tensor(context: &str) -> impl FnOnce(candle_core::Error) -> Self {
        let context = context.to_string();
        move |source| Self::Tensor { context, source }
    }

    /// Wraps an I/O error with its file.
    pub fn io(file: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let file = file.display().to_string();
        move |e| Self::Io {
            file,
            message: e.to_string(),
        }
    }
}
