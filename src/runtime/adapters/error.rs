//! Errors of adapter operations, each naming the adapter and the layer concerned.

/// What can go wrong attaching, combining or merging adapters.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AdapterError {
    /// No linear layer matched the targets.
    #[error("target modules {targets} matched no linear layer of the model")]
    #[diagnostic(
        code(peftc::adapter::no_target),
        help(
            "layer paths look like {example}; targets match a whole path, or its last components"
        )
    )]
    NoTarget { targets: String, example: String },
    /// The target regex does not compile.
    #[error("target_modules regex `{pattern}` is invalid: {message}")]
    #[diagnostic(code(peftc::adapter::bad_regex))]
    BadRegex { pattern: String, message: String },
    /// The rank is 0 or larger than the layer allows.
    #[error("rank {r} is not valid for layer `{layer}` of shape {out}x{input}")]
    #[diagnostic(code(peftc::adapter::bad_rank), help("use 1 <= r <= min(in, out)"))]
    BadRank {
        r: usize,
        layer: String,
        out: usize,
        input: usize,
    },
    /// An adapter name is unknown.
    #[error("no adapter named `{name}` on the model")]
    #[diagnostic(code(peftc::adapter::unknown))]
    Unknown { name: String },
    /// A weighted combination cannot be built.
    #[error("cannot combine adapters {adapters:?}: {reason}")]
    #[diagnostic(code(peftc::adapter::combine))]
    Combine {
        adapters: Vec<String>,
        reason: String,
    },
    /// A tensor operation failed on a layer.
    #[error("layer `{layer}`: {source}")]
    #[diagnostic(code(peftc::adapter::tensor))]
    Tensor {
        layer: String,
        #[source]
        source: candle_core::Error,
    },
}

impl AdapterError {
    /// Wraps a candle error with the layer it concerns.
    pub fn tensor(layer: &str) -> impl FnOnce(candle_core::Error) -> Self {
        let layer = layer.to_string();
        move |source| Self::Tensor { layer, source }
    }
}
