//! Shape-checked reads of an architecture's weights from a [`TensorSource`].
//!
//! Architectures read through [`WeightReader`] so that a tensor of the wrong shape is an error
//! naming the tensor and the source, never a panic later in a matmul.

use crate::runtime::models::source::{LoadError, TensorSource};
use crate::runtime::weight::FrozenWeight;
use candle_core::{DType, Tensor};
use std::sync::Arc;

/// Reads tensors of one model.
#[derive(Clone, Copy)]
pub struct WeightReader<'a> {
    /// Where the weights are.
    pub src: &'a dyn TensorSource,
    /// The source, as shown in messages (folder or file).
    pub file: &'a str,
    /// dtype of dense tensors (norms, embeddings, biases).
    pub dtype: DType,
}

impl WeightReader<'_> {
    fn check(&self, name: &str, shape: &[usize]) -> Result<(), LoadError> {
        if !self.src.contains(name) {
            return Err(LoadError::MissingTensor {
                name: name.into(),
                file: self.file.into(),
            });
        }
        let found = self.src.shape(name)?;
        if found != shape {
            return Err(LoadError::ShapeMismatch {
                name: name.into(),
                file: self.file.into(),
                expected: shape.to_vec(),
                found,
            });
        }
        Ok(())
    }

    /// A dense tensor of this exact shape.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor, LoadError> {
        self.check(name, shape)?;
        self.src.tensor(name, self.dtype)
    }

    /// A linear weight stored `[out, in]`.
    pub fn linear(
        &self,
        name: &str,
        out: usize,
        inp: usize,
    ) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        self.check(name, &[out, inp])?;
        self.src.linear(name, self.dtype)
    }

    /// A GPT-2 `Conv1D` weight stored `[in, out]`, as a frozen `[out, in]` linear weight.
    pub fn conv1d(
        &self,
        name: &str,
        inp: usize,
        out: usize,
    ) -> Result<Arc<dyn FrozenWeight>, LoadError> {
        self.check(name, &[inp, out])?;
        self.src.conv1d(name, self.dtype)
    }

    /// Whether the source has this tensor.
    pub fn has(&self, name: &str) -> bool {
        self.src.contains(name)
    }
}
