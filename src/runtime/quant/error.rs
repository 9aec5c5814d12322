//! Errors of the quantization layer. Each names the tensor, file or option concerned.
//!
//! Must not panic on bad input: every invalid spec, shape or cache file becomes a variant here.

use std::path::PathBuf;

/// What can go wrong while quantizing, loading a cached quantized model or merging.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum QuantError {
    /// An option of a [`QuantSpec`](super::QuantSpec) is out of range.
    #[error("invalid quantization option `{option}`: {message}")]
    #[diagnostic(
        code(peftc::quant::bad_option),
        help("NF4/FP4 block sizes: 32..4096, powers of two; double-quant block: 256")
    )]
    BadOption { option: String, message: String },
    /// A weight cannot be stored in this format (shape, block size).
    #[error("tensor `{name}` of shape {shape:?} cannot be stored as {format}: {message}")]
    #[diagnostic(
        code(peftc::quant::unsupported_shape),
        help("k-quants need in_features divisible by 256, Q8_0 by 32; NF4, FP4 and int8 take any shape")
    )]
    UnsupportedShape {
        name: String,
        shape: Vec<usize>,
        format: String,
        message: String,
    },
    /// The delta given to a merge has another shape than the base weight.
    #[error("merge into `{name}`: delta has shape {found:?}, the base weight is {expected:?}")]
    #[diagnostic(code(peftc::quant::merge_shape))]
    MergeShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// A cache file is unreadable, truncated or describes something else.
    #[error("quantized cache {path}: {message}")]
    #[diagnostic(
        code(peftc::quant::bad_cache),
        help("delete the file; the next load quantizes again and rewrites it")
    )]
    BadCache { path: PathBuf, message: String },
    /// A GGUF file cannot be read.
    #[error("GGUF file {path}: {message}")]
    #[diagnostic(code(peftc::quant::bad_gguf))]
    BadGguf { path: PathBuf, message: String },
    /// Reading or writing a file (cache or GGUF) failed.
    #[error("{path}: {source}")]
    #[diagnostic(code(peftc::quant::io))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A tensor operation failed, with the tensor it concerned.
    #[error("tensor `{name}`: {source}")]
    #[diagnostic(code(peftc::quant::candle))]
    Candle {
        name: String,
        #[source]
        source: candle_core::Error,
    },
}

impl QuantError {
    /// Wraps a candle error with the tensor name.
    pub fn candle(name: &str) -> impl FnOnce(candle_core::Error) -> QuantError + '_ {
        move |source| QuantError::Candle {
            name: name.to_string(),
            source,
        }
    }
}
