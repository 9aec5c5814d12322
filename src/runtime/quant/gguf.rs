//! GGUF files as a source of frozen weights: the GGML-quantized tensors candle can multiply
//! (Q8_0, Q4_K, Q5_K, Q6_K) come back as [`GgmlWeight`]s without re-quantizing; any other
//! stored type (F32, F16, BF16, Q4_0, ...) is dequantized to a dense f32 weight.
//!
//! Names are the file's own (llama.cpp's `blk.0.attn_q.weight`); mapping them to Hugging Face
//! names is the model loader's business. Must not interpret metadata.

use super::error::QuantError;
use super::ggml::{GgmlFormat, GgmlWeight};
use crate::runtime::dense::DenseWeight;
use crate::runtime::weight::FrozenWeight;
use candle_core::quantized::{gguf_file::Content, GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An opened GGUF file (header read; tensor data read on demand).
#[derive(Debug)]
pub struct GgufWeights {
    path: PathBuf,
    content: Content,
}

impl GgufWeights {
    /// Reads the header of `path`.
    pub fn open(path: &Path) -> Result<Self, QuantError> {
        let (mut f, _) = crate::safe_fs::open_regular(path).map_err(|source| QuantError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let content = Content::read(&mut f).map_err(|e| QuantError::BadGguf {
            path: path.to_path_buf(),
            message: format!("not a readable GGUF file: {e}"),
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            content,
        })
    }

    /// Tensor names in the file, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut n: Vec<&str> = self
            .content
            .tensor_infos
            .keys()
            .map(|s| s.as_str())
            .collect();
        n.sort_unstable();
        n
    }

    /// The stored GGML type and shape of a tensor.
    pub fn info(&self, name: &str) -> Option<(GgmlDType, Vec<usize>)> {
        self.content
            .tensor_infos
            .get(name)
            .map(|t| (t.ggml_dtype, t.shape.dims().to_vec()))
    }

    fn read(&self, name: &str) -> Result<QTensor, QuantError> {
        let (mut f, _) =
            crate::safe_fs::open_regular(&self.path).map_err(|source| QuantError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.content
            .tensor(&mut f, name, &Device::Cpu)
            .map_err(QuantError::candle(name))
    }

    /// A 2-D tensor as a frozen weight: quantized as stored when candle has a kernel for its type,
    /// else dense f32.
    pub fn linear(&self, name: &str) -> Result<Arc<dyn FrozenWeight>, QuantError> {
        let q = self.read(name)?;
        let format = match q.dtype() {
            GgmlDType::Q8_0 => Some(GgmlFormat::Q8_0),
            GgmlDType::Q4K => Some(GgmlFormat::Q4K),
            GgmlDType::Q5K => Some(GgmlFormat::Q5K),
            GgmlDType::Q6K => Some(GgmlFormat::Q6K),
            _ => None,
        };
        if q.shape().rank() != 2 {
            return Err(QuantError::UnsupportedShape {
                name: name.to_string(),
                shape: q.shape().dims().to_vec(),
                format: format!("{:?}", q.dtype()),
                message: "a linear weight must be 2-D".into(),
            });
        }
        Ok(match format {
            Some(f) => Arc::new(GgmlWeight::from_qtensors(f, Arc::new(q), None)),
            None => Arc::new(DenseWeight::new(
                q.dequantize(&Device::Cpu)
                    .map_err(QuantError::candle(name))?,
            )),
        })
    }

    /// Any tensor dequantized to `dtype` (norms, embeddings).
    pub fn tensor(&self, name: &str, dtype: DType) -> Result<Tensor, QuantError> {
        self.read(name)?
            .dequantize(&Device::Cpu)
            .and_then(|t| t.to_dtype(dtype))
            .map_err(QuantError::candle(name))
    }
}
