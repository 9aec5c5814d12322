//! Where a model's weights come from: a safetensors folder, a GGUF file, or a quantizing wrapper
//! around either. Model code asks a [`TensorSource`] for tensors by their Hugging Face names and
//! never opens files itself.

use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Tensor};
use std::sync::Arc;

/// Errors while reading weights; each names the file and the tensor.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    /// A tensor the architecture needs is not in any file.
    #[error("tensor `{name}` is missing from {file}")]
    #[diagnostic(code(peftc::load::missing_tensor))]
    MissingTensor { name: String, file: String },
    /// A tensor has another shape than the config implies.
    #[error("tensor `{name}` in {file} has shape {found:?}, expected {expected:?}")]
    #[diagnostic(code(peftc::load::shape_mismatch))]
    ShapeMismatch {
        name: String,
        file: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Any other failure, with the file it concerns.
    #[error("{file}: {message}")]
    #[diagnostic(code(peftc::load::other))]
    Other { file: String, message: String },
}

/// A read-only store of named tensors with Hugging Face names.
pub trait TensorSource: Send + Sync {
    /// Whether a tensor of this name exists.
    fn contains(&self, name: &str) -> bool;
    /// The shape of a tensor, without reading its data.
    fn shape(&self, name: &str) -> Result<Vec<usize>, LoadError>;
    /// A dense tensor (norms, embeddings, biases) converted to `dtype`.
    fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, LoadError>;
    /// A linear layer's `[out, in]` weight as a frozen weight, in its stored or quantized form.
    fn linear(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError>;
    /// A GPT-2 `Conv1D` weight, stored `[in, out]`, as a frozen `[out, in]` linear weight (in
    /// its quantized form when the source quantizes).
    fn conv1d(&self, name: &str, dtype: DType) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        transposed_dense(name, &self.tensor(name, dtype)?)
    }
}

/// `[in, out]` to a dense frozen `[out, in]` weight.
pub fn transposed_dense(name: &str, t: &Tensor) -> Result<Arc<dyn FrozenWeight>, LoadError> {
    let w = t
        .t()
        .and_then(|t| t.contiguous())
        .map_err(|e| LoadError::Other {
            file: name.into(),
            message: format!("transposing a Conv1D weight: {e}"),
        })?;
    Ok(Arc::new(crate::runtime::dense::DenseWeight::new(w)))
}
