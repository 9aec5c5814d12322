//! Atomic file writes and safetensors serialisation with `{"format": "pt"}` metadata (what
//! transformers and PEFT expect).

use crate::runtime::peft_format::error::PeftFormatError;
use candle_core::{DType, Tensor};
use safetensors::{Dtype, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PeftFormatError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, bytes).map_err(PeftFormatError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(PeftFormatError::io(path))
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn raw(t: &Tensor) -> candle_core::Result<Raw> {
    let shape = t.dims().to_vec();
    let flat = t.flatten_all()?;
    let (dtype, data) = match t.dtype() {
        DType::F16 => (
            Dtype::F16,
            flat.to_vec1::<half::f16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::BF16 => (
            Dtype::BF16,
            flat.to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        _ => (
            Dtype::F32,
            flat.to_dtype(DType::F32)?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    };
    Ok(Raw { dtype, shape, data })
}

/// Writes named tensors (f32, f16 or bf16 kept; others as f32) to a safetensors file, atomically.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), PeftFormatError> {
    let ctx = path.display().to_string();
    let raws: Vec<(String, Raw)> = tensors
        .iter()
        .map(|(n, t)| raw(t).map(|r| (n.clone(), r)))
        .collect::<candle_core::Result<_>>()
        .map_err(PeftFormatError::tensor(&ctx))?;
    let views: Vec<(&str, &Raw)> = raws.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let meta: HashMap<String, String> = [("format".to_string(), "pt".to_string())]
        .into_iter()
        .collect();
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| PeftFormatError::Io {
        file: ctx.clone(),
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), PeftFormatError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| PeftFormatError::Io {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}
